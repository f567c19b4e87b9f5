"""Staying connected: the SDK's reconnect loop and the outbox of calls made while offline.

    link = Reconnector("127.0.0.1:3000", "quickstart-chat", token=saved, on_token=save)
    async def session(client):          # one connection's life
        await client.subscribe(["SELECT * FROM message"])
        link.ready(client)              # now the outbox may go out
        async for event in client.events(): ...
    asyncio.create_task(link.run(session))
    pending = link.call("send_message", "hi")   # sent now, or once connected again
    result = await pending.future

``run`` connects (with the token, saving the one the server mints), hands the
connection to ``session`` and, when it ends, waits with jittered exponential
backoff and connects again, until ``close()``. A refusal that retrying cannot
fix (an unknown database, a token the server rejects) ends ``run`` with
``Refused`` (its ``why`` says which). Every change of state is reported to
``on_status``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import random
from collections.abc import Awaitable, Callable
from typing import Any

from db_core.protocol import INVALID_TOKEN, ReducerResult

from .client import Client
from .errors import ClientError, ConnectFailed, Refusal, Refused

BACKOFF_FIRST = 0.25
BACKOFF_MAX = 8.0


class LinkState(enum.StrEnum):
    """What ``on_status`` reports: trying to connect, connected and set up, or waiting to retry."""

    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"


@dataclasses.dataclass(eq=False)
class Pending:
    """A call in the outbox; ``future`` gets its ReducerResult (or the error it was refused with)."""

    reducer: str
    args: tuple[Any, ...]
    tag: Any = None
    future: asyncio.Future[ReducerResult] = dataclasses.field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    in_flight: bool = False
    attempted: bool = False   # sent over a connection at least once: it may have committed


StatusCallback = Callable[[LinkState, str, float | None, str], None]   # state, text, retry_in, reason


class Reconnector:
    """Keeps one database connected and owns the calls waiting for it.

    States reported to ``on_status``: ``connecting``, ``online`` (after ``ready``),
    ``offline`` (with the reason and the seconds until the next attempt)."""

    def __init__(self, server: str, database: str, token: str | None = None, *,
                 on_token: Callable[[str], None] | None = None, on_status: StatusCallback | None = None,
                 before_connect: Callable[[], Awaitable[None]] | None = None,
                 first_delay: float = BACKOFF_FIRST, max_delay: float = BACKOFF_MAX) -> None:
        self.server, self.database, self.token = server, database, token
        self.on_token = on_token
        self.on_status = on_status or (lambda *_: None)
        self.before_connect = before_connect
        self.first_delay, self.max_delay = first_delay, max_delay
        self.client: Client | None = None
        self.outbox: list[Pending] = []
        self._ready = False
        self._closing = asyncio.Event()  # an Event, not a bool: set by close() while run() awaits
        self._wake = asyncio.Event()
        self._last_reason = ""
        self._calls: set[asyncio.Task[None]] = set()   # referenced so they are not collected mid-call
        self._resume: asyncio.TimerHandle | None = None  # set while rate limited: when sending resumes

    @property
    def online(self) -> bool:
        return self.client is not None and self._ready and not self.client.closed.is_set()

    def call(self, reducer: str, *args: Any, tag: Any = None) -> Pending:
        """Call now if online, else on the next connection, in order."""
        pending = Pending(reducer, args, tag)
        self.outbox.append(pending)
        if self.online and self._resume is None:
            self._send(pending)
        return pending

    def settle(self, pending: Pending, result: ReducerResult) -> None:
        """Resolve a call without (re)sending it, e.g. one found committed after a reconnect."""
        if pending in self.outbox:
            self.outbox.remove(pending)
        if not pending.future.done():
            pending.future.set_result(result)

    def ready(self, client: Client) -> None:
        """The session is set up (subscribed): report online and send the outbox."""
        if client is not self.client:
            return
        self._ready = True
        self.on_status(LinkState.ONLINE, f"Connected to {self.server}", None, "")
        self._send_outbox()

    def _send_outbox(self) -> None:
        if self._resume is None:
            for pending in list(self.outbox):
                self._send(pending)

    def _rate_limited(self, seconds: float) -> None:
        """The server refused a call for its rate: hold the outbox (order kept) for ``seconds``."""
        loop = asyncio.get_running_loop()
        if self._resume is not None:
            if self._resume.when() >= loop.time() + seconds:
                return
            self._resume.cancel()

        def resume() -> None:
            self._resume = None
            if self.online:
                self._send_outbox()

        self._resume = loop.call_later(seconds, resume)

    async def close(self) -> None:
        """Disconnect for good; ``run`` returns."""
        self._closing.set()
        self._wake.set()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self.client is not None:
            await self.client.close()

    async def run(self, session: Callable[[Client], Awaitable[None]]) -> None:
        """Connect, run ``session``, reconnect after a loss; until ``close()``. Raises Refused."""
        attempt = 0
        while not self._closing.is_set():
            reason = await self._connect_once(session)
            if self._closing.is_set():
                return
            attempt = 0 if reason is None else attempt + 1
            delay = min(self.max_delay, self.first_delay * 2 ** attempt) * random.uniform(0.8, 1.2)
            why = reason or (self._last_reason or "connection lost")
            wait = f"{delay:.1f}" if delay < 1 else f"{delay:.0f}"
            self.on_status(LinkState.OFFLINE, f"Offline: {why}; reconnecting in {wait} s", delay, why)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def _connect_once(self, session: Callable[[Client], Awaitable[None]]) -> str | None:
        """One connection's life: None if it was up and then lost, else why it could not start."""
        if self.before_connect is not None:
            try:
                await self.before_connect()
            except ClientError as exc:
                return str(exc)
        self.on_status(LinkState.CONNECTING, f"Connecting to {self.server}…", None, "")
        try:
            client = await Client.connect(self.server, self.database, self.token)
        except ConnectFailed as exc:
            if exc.no_database:
                raise Refused(f"The server has no database named {self.database!r}.", Refusal.NO_DATABASE) from None
            if exc.token_refused:
                why = (exc.close_reason or "").removeprefix(INVALID_TOKEN)
                raise Refused(f"The server refused the saved identity ({why}).", Refusal.INVALID_TOKEN) from None
            return str(exc)
        if client.token != self.token:
            self.token = client.token
            if self.on_token is not None:
                self.on_token(client.token)
        self.client = client
        try:
            await session(client)
        except ClientError as exc:
            self._last_reason = client.close_reason or str(exc)
        finally:
            self._ready = False
            self.client = None
            await client.close()
        for pending in self.outbox:
            pending.in_flight = False   # unanswered: it goes out again (or is settled) next time
        return None

    def _send(self, pending: Pending) -> None:
        if pending.in_flight or self.client is None:
            return
        pending.in_flight = True
        task = asyncio.ensure_future(self._do_call(self.client, pending))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _do_call(self, client: Client, pending: Pending) -> None:
        pending.attempted = True
        try:
            result = await client.call(pending.reducer, *pending.args)
        except ClientError:
            return   # the connection dropped: it stays in the outbox for the next one
        if result.retry_after is not None:
            # Rate limited: nothing ran. It goes again, before anything sent after it, once allowed.
            pending.in_flight = False
            self._rate_limited(result.retry_after)
            return
        self.settle(pending, result)


__all__ = ["LinkState", "Pending", "Reconnector", "Refusal", "Refused", "BACKOFF_FIRST", "BACKOFF_MAX"]
