"""The app's link to the server: connect, subscribe, reconnect, send; it posts Textual messages.

``ChatConnection.run()`` is the app's one network worker. It connects with the
profile's token (saving the one the server mints), subscribes to every user and
to recent messages, and posts ``Welcome`` (the rows), ``Changes`` (each
transaction's row events), ``CallDone`` and ``Status`` messages to the app. When
the connection drops it posts ``Status("offline", …)`` at once and retries with
backoff; calls made meanwhile wait in an outbox and go out, in order, once it is
back. History beyond the recent window is fetched on demand (``load_older``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import time
from collections.abc import Callable
from typing import Any

from textual.message import Message

from chat_server.client import Client, ClientError, ConnectFailed
from chat_tui.launcher import LaunchError, ensure_local_server
from db_core.cache import RowEvent
from db_core.protocol import ReducerResult
from db_core.types import Identity

#: How many recent messages to show on connect; older ones come a page at a time.
RECENT_MESSAGES = 500
PAGE_MESSAGES = 500
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 8.0


@dataclasses.dataclass(eq=False)
class Outgoing:
    """A reducer call the user asked for; ``tag`` is the app's handle for it (e.g. a pending log entry)."""

    reducer: str
    args: tuple[Any, ...]
    tag: Any = None
    in_flight: bool = False
    attempted: bool = False   # sent over a connection at least once (it may have committed)


class Status(Message):
    """Connection state: ``starting`` | ``connecting`` | ``online`` | ``offline`` | ``failed`` (no retry)."""

    def __init__(self, state: str, text: str, retry_in: float | None = None, reason: str = "") -> None:
        super().__init__()
        self.state, self.text, self.retry_in, self.reason = state, text, retry_in, reason


class Welcome(Message):
    """Subscribed (first time or after a reconnect): every user and the recent messages."""

    def __init__(self, identity: Identity, server: str, users: list[Any], messages: list[Any],
                 has_older: bool, first: bool) -> None:
        super().__init__()
        self.identity, self.server = identity, server
        self.users, self.messages, self.has_older, self.first = users, messages, has_older, first


class Changes(Message):
    """One committed transaction's row events (``time`` is its timestamp, microseconds)."""

    def __init__(self, rows: list[RowEvent], time: int) -> None:
        super().__init__()
        self.rows, self.time = rows, time


class CallDone(Message):
    """The result of ``call``: status committed / no_changes / failed / internal_error / refused / lost."""

    def __init__(self, call: Outgoing, status: str, error: str | None) -> None:
        super().__init__()
        self.call, self.status, self.error = call, status, error


class Older(Message):
    """The messages sent in ``[since, before)``; ``since`` is None when none older remain."""

    def __init__(self, before: int, since: int | None, messages: list[Any]) -> None:
        super().__init__()
        self.before, self.since, self.messages = before, since, messages


class ChatConnection:
    """Owns the SDK ``Client`` for the app; every outcome arrives as a posted message."""

    def __init__(self, post: Callable[[Message], Any], *, server: str, database: str,
                 token: str | None = None, on_token: Callable[[str], None] | None = None,
                 auto_start: bool = False, recent: int = RECENT_MESSAGES) -> None:
        self.post = post
        self.server, self.database = server, database
        self.token, self.on_token = token, on_token
        self.auto_start = auto_start
        self.recent = recent
        self.client: Client | None = None
        self.outbox: list[Outgoing] = []
        self.cutoff: int | None = None       # the subscription's `sent >=` bound, fixed for the session
        self._cutoff_known = False
        self._closing = False
        self._wake = asyncio.Event()
        self._ready = False                 # subscribed: calls may go out
        self._last_reason = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections = itertools.count()
        self._mine: set[tuple[int, str]] = set()   # (sent, text) of our messages seen, to settle lost calls

    # -- the app's side ---------------------------------------------------------------
    @property
    def online(self) -> bool:
        return self.client is not None and not self.client.closed.is_set()

    def call(self, reducer: str, *args: Any, tag: Any = None) -> Outgoing:
        """Call ``reducer`` now if online, else when back online; the result arrives as CallDone."""
        out = Outgoing(reducer, args, tag)
        self.outbox.append(out)
        if self.online and self._ready:
            self._start(out)
        return out

    def load_older(self, before: int) -> None:
        """Fetch the page of messages just before ``before`` (µs); arrives as ``Older``."""
        client = self.client
        if client is not None:
            self._spawn(self._older(client, before))

    async def close(self) -> None:
        """Disconnect for good (the server runs the disconnect hook at once)."""
        self._closing = True
        self._wake.set()
        if self.client is not None:
            await self.client.close()
        for task in list(self._tasks):
            task.cancel()

    # -- the worker -------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and stay connected until ``close()`` (or a refusal that retrying cannot fix)."""
        attempt = 0
        while not self._closing:
            reason = await self._connect_once()
            if reason is None or self._closing:
                return
            attempt = 0 if reason == "lost" else attempt + 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** attempt) * random.uniform(0.8, 1.2)
            if reason == "lost":
                reason = self._last_reason or "connection lost"
            wait = f"{delay:.1f}" if delay < 1 else f"{delay:.0f}"
            self.post(Status("offline", f"Offline: {reason}; reconnecting in {wait} s", retry_in=delay,
                             reason=reason))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def _connect_once(self) -> str | None:
        """One connection's life. Returns why it ended (to retry), or None to stop."""
        if self.auto_start:
            try:
                await ensure_local_server(self.server, on_status=lambda text: self.post(Status("starting", text)))
            except LaunchError as exc:
                return str(exc)
        self.post(Status("connecting", f"Connecting to {self.server}…"))
        try:
            client = await Client.connect(self.server, self.database, self.token)
        except ConnectFailed as exc:
            text = str(exc)
            if " HTTP 404" in text or "invalid token" in text:   # retrying cannot fix these
                self.post(Status("failed", _refusal(text, self.database)))
                return None
            return text
        if client.token != self.token:
            self.token = client.token
            if self.on_token is not None:
                self.on_token(client.token)
        self.client = client
        try:
            await self._session(client)
        except ClientError as exc:
            self._last_reason = client.close_reason or str(exc)
        finally:
            self._ready = False
            self.client = None
            await client.close()
        for out in self.outbox:
            out.in_flight = False  # answered or not, it is resolved on the next Welcome
        return "lost"

    async def _session(self, client: Client) -> None:
        first = next(self._connections) == 0
        if not self._cutoff_known:
            self.cutoff = await self._find_cutoff(client, None, self.recent)
            self._cutoff_known = True
        where = f" WHERE sent >= {self.cutoff}" if self.cutoff is not None else ""
        await client.subscribe(["SELECT * FROM user", f"SELECT * FROM message{where}"])
        async for event in client.events():
            if event.initial:
                users = [e.new for e in event.rows if e.table == "user" and e.new is not None]
                messages = [e.new for e in event.rows if e.table == "message" and e.new is not None]
                self._settle_lost_calls(client.identity, messages)
                self.post(Welcome(client.identity, self.server, users, messages, self.cutoff is not None, first))
                self.post(Status("online", f"Connected to {self.server}"))
                self._ready = True
                for out in list(self.outbox):
                    self._start(out)
            elif event.offset >= 0:
                self._note_mine(client.identity, [e.new for e in event.rows if e.table == "message" and e.new])
                self.post(Changes(event.rows, event.timestamp))

    def _note_mine(self, me: Identity, rows: list[Any]) -> list[tuple[int, str]]:
        """Remember our own messages seen; returns the ones not seen before."""
        new = []
        for m in rows:
            if Identity(m.sender) == me and (m.sent, m.text) not in self._mine:
                self._mine.add((m.sent, m.text))
                new.append((m.sent, m.text))
        return new

    def _settle_lost_calls(self, me: Identity, messages: list[Any]) -> None:
        """A send in flight when the connection dropped may have committed: it did if a message
        of ours with its text shows up that we had not seen before. Others go out again."""
        arrived = [text for _, text in self._note_mine(me, messages)]
        for out in [o for o in self.outbox if o.attempted and o.reducer == "send_message"]:
            if out.args[0] in arrived:
                arrived.remove(out.args[0])
                self.outbox.remove(out)
                self.post(CallDone(out, "committed", None))

    def _start(self, out: Outgoing) -> None:
        if out.in_flight or self.client is None:
            return
        out.in_flight = True
        self._spawn(self._do_call(self.client, out))

    async def _do_call(self, client: Client, out: Outgoing) -> None:
        try:
            out.attempted = True
            result = await client.call(out.reducer, *out.args)
        except ClientError:
            return  # the connection dropped: it stays in the outbox for the next connection
        if out in self.outbox:
            self.outbox.remove(out)
        if isinstance(result, ReducerResult):
            self.post(CallDone(out, result.status, result.error))
        else:
            self.post(CallDone(out, "refused", getattr(result, "error", None) or "refused by the server"))

    async def _older(self, client: Client, before: int) -> None:
        try:
            cutoff = await self._find_cutoff(client, before, PAGE_MESSAGES)
            cond = f"sent < {before}" + (f" AND sent >= {cutoff}" if cutoff is not None else "")
            result = await client.sql(f"SELECT * FROM message WHERE {cond}")
        except ClientError:
            return  # offline; the log asks again when the user scrolls up once more
        if result.error:
            return
        self.post(Older(before, cutoff, client.decode_rows("message", result.rows)))

    async def _find_cutoff(self, client: Client, before: int | None, want: int) -> int | None:
        """A `sent` bound giving roughly ``want`` (at most ~4x) messages before ``before``; None if
        all of them are that few. Counting is cheap on the server; rows are not, on the wire."""
        below = f" AND sent < {before}" if before is not None else ""

        async def count(since: int | None) -> int:
            cond = (f"sent >= {since}" if since is not None else "sent >= 0") + below
            result = await client.sql(f"SELECT COUNT(*) AS n FROM message WHERE {cond}")
            if result.error:
                raise ClientError(result.error)
            return int(result.rows[0][0])

        if await count(None) <= want * 2:
            return None
        anchor = before if before is not None else int(time.time() * 1_000_000) + 60_000_000
        near, far = 0, 60_000_000          # look-back widths (µs) with too few / maybe enough messages
        while (n := await count(anchor - far)) < want:
            near, far = far, far * 4
        # Too many in the window: narrow it (bisect on time) until the page is a sensible size.
        for _ in range(40):
            if n <= want * 4 or far - near <= 1:
                break
            mid = (near + far) // 2
            m = await count(anchor - mid)
            if m >= want:
                far, n = mid, m
            else:
                near = mid
        return anchor - far

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _refusal(text: str, database: str) -> str:
    if " HTTP 404" in text:
        return f"The server has no database named {database!r}."
    return (f"The server refused this profile's saved identity ({text.split('invalid token: ', 1)[-1]}). "
            "Start with another profile (--profile NAME) to be a new user there.")
