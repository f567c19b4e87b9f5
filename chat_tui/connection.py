"""The app's link to the server, as Textual messages.

``ChatConnection.run()`` is the app's one network worker. The SDK's
``Reconnector`` keeps the connection up (backoff, the saved token, the outbox of
calls made while offline); this module adds the chat's session on top: it
subscribes to every user and to recent messages and posts ``Welcome`` (the
rows), ``Changes`` (each transaction's row events), ``CallDone`` and ``Status``
to the app. History beyond the recent window is fetched on demand
(``load_older``), and searched on the server a page at a time (``search_older``: ``SearchProgress``,
then ``Searched``).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections.abc import Callable
from typing import Any

from textual.message import Message

from chat_server.client import Client, ClientError
from chat_server.errors import Refusal
from chat_server.reconnect import Pending, Reconnector, Refused
from chat_tui.launcher import LaunchError, ensure_local_server
from chat_tui.search import OlderSearch
from db_core.cache import RowEvent
from db_core.protocol import ErrorMessage, OneOffResult, ReducerResult
from db_core.types import Identity

#: How many recent messages to show on connect; older ones come a page at a time.
RECENT_MESSAGES = 500
PAGE_MESSAGES = 500


class ConnState(enum.StrEnum):
    """Where the connection is (the SDK's ``Reconnector`` reports all but ``STARTING``)."""

    STARTING = "starting"
    """A local server is being started."""
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"
    """Lost; a retry is scheduled."""
    FAILED = "failed"
    """Refused for a reason retrying cannot fix: no retry."""


class CallStatus(enum.StrEnum):
    """How a reducer call ended (the server's ``ReducerResult.status``)."""

    COMMITTED = "committed"
    NO_CHANGES = "no_changes"
    FAILED = "failed"
    INTERNAL_ERROR = "internal_error"
    REFUSED = "refused"


class Status(Message):
    """The connection's state changed; ``text`` says so for the status bar, ``reason`` is why it
    went offline."""

    def __init__(self, state: ConnState, text: str, retry_in: float | None = None, reason: str = "") -> None:
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
    """One committed transaction's row events (``timestamp``: its time, microseconds)."""

    def __init__(self, rows: list[RowEvent], timestamp: int) -> None:
        super().__init__()
        self.rows, self.timestamp = rows, timestamp


class CallDone(Message):
    """The result of ``call``: its ``status``, and the server's ``error`` text if it gave one."""

    def __init__(self, call: Pending, status: CallStatus, error: str | None) -> None:
        super().__init__()
        self.call, self.status, self.error = call, status, error

    @property
    def failure(self) -> str | None:
        """Why the call failed (the error, else the status in words); None if it succeeded."""
        if self.status in (CallStatus.COMMITTED, CallStatus.NO_CHANGES):
            return None
        return self.error or self.status.replace("_", " ")


class Older(Message):
    """The messages sent in ``[since, before)``; ``since`` is None when none older remain."""

    def __init__(self, before: int, since: int | None, messages: list[Any]) -> None:
        super().__init__()
        self.before, self.since, self.messages = before, since, messages


class SearchProgress(Message):
    """A page of older history was searched (``search_older``) without a match; more follow."""

    def __init__(self, search: OlderSearch) -> None:
        super().__init__()
        self.search = search


class Searched(Message):
    """A search of older history (``search_older``) ended: ``messages`` (sent in ``[since,
    before)``, every one fetched, to be shown as a page of history) hold a match; or none matched
    (``messages`` empty: it reached the first message); or it failed and ``error`` says why."""

    def __init__(self, search: OlderSearch, since: int | None = None, messages: list[Any] | None = None,
                 error: str = "") -> None:
        super().__init__()
        self.search, self.since, self.messages, self.error = search, since, messages or [], error


# The server's refusals of a page too big to answer: a smaller page may pass.
_TOO_BIG = ("rows returned", "reply exceeded its budget")


class ChatConnection:
    """The chat's session over the SDK's ``Reconnector``; every outcome arrives as a posted message."""

    def __init__(self, post: Callable[[Message], Any], *, server: str, database: str,
                 token: str | None = None, on_token: Callable[[str], None] | None = None,
                 auto_start: bool = False, recent: int = RECENT_MESSAGES) -> None:
        self.post = post
        self.server = server
        self.recent = recent
        self.link = Reconnector(server, database, token, on_token=on_token, on_status=self._status,
                                before_connect=self._start_server if auto_start else None)
        # Starting a local server is for launch only: once connected, a lost server is waited for
        # (reconnecting with backoff), never started again behind its owner's back (a `kill`).
        self._may_start_server = auto_start
        self.cutoff: int | None = None       # the subscription's `sent >=` bound, fixed for the session
        self._cutoff_known = False
        self._connections = itertools.count()
        self._mine: set[tuple[int, str]] = set()   # (sent, text) of our messages seen, to settle lost calls
        self._tasks: set[asyncio.Task[Any]] = set()
        self._search: asyncio.Task[None] | None = None

    # -- the app's side ---------------------------------------------------------------
    @property
    def outbox(self) -> list[Pending]:
        return self.link.outbox

    def call(self, reducer: str, *args: Any, tag: Any = None) -> Pending:
        """Call ``reducer`` now if online, else when back online; the result arrives as CallDone."""
        pending = self.link.call(reducer, *args, tag=tag)
        pending.future.add_done_callback(lambda f: self._done(pending, f))
        return pending

    def load_older(self, before: int) -> None:
        """Fetch the page of messages just before ``before`` (µs); arrives as ``Older``."""
        client = self.link.client
        if client is not None:
            task = asyncio.ensure_future(self._older(client, before))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def search_older(self, search: OlderSearch) -> None:
        """Search the messages older than ``search.before`` on the server, newest first, a page at a
        time, until one matches (``SearchProgress`` after each page that does not, then ``Searched``).
        A search still running is cancelled."""
        self.cancel_search()
        client = self.link.client
        if client is None:
            self.post(Searched(search, error="offline"))
            return
        self._search = task = asyncio.ensure_future(self._search_older(client, search))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_search(self) -> None:
        """Stop the search of older history, if one is running: nothing more is asked or posted."""
        if self._search is not None:
            self._search.cancel()
            self._search = None

    def forget_before(self, sent: int) -> None:
        """The app dropped messages older than ``sent`` (µs): drop them from the SDK's cache
        too, and subscribe from there on the next connection, so a long session stays bounded."""
        self.cutoff = sent
        self._cutoff_known = True
        client = self.link.client
        if client is not None:
            old = [row for row in client.cache.iter("message") if row.sent < sent]
            client.cache.apply("message", (), old)

    async def close(self) -> None:
        """Disconnect for good (the server runs the disconnect hook at once)."""
        await self.link.close()
        for task in list(self._tasks):
            task.cancel()

    # -- the worker -------------------------------------------------------------------
    async def run(self) -> None:
        """Stay connected until ``close()``, or until a refusal that retrying cannot fix."""
        try:
            await self.link.run(self._session)
        except Refused as exc:
            hint = " Start with another profile (--profile NAME) to be a new user there." \
                if exc.why is Refusal.INVALID_TOKEN else ""
            self.post(Status(ConnState.FAILED, f"{exc}{hint}"))

    def _status(self, state: str, text: str, retry_in: float | None, reason: str) -> None:
        self.post(Status(ConnState(state), text, retry_in, reason))

    def _done(self, pending: Pending, future: asyncio.Future[ReducerResult]) -> None:
        if future.cancelled():
            return
        result = future.result()
        self.post(CallDone(pending, CallStatus(result.status), result.error))

    async def _start_server(self) -> None:
        if not self._may_start_server:
            return
        try:
            await ensure_local_server(self.server, on_status=lambda text: self.post(Status(ConnState.STARTING, text)))
        except LaunchError as exc:
            raise ClientError(str(exc)) from None

    async def _session(self, client: Client) -> None:
        self._may_start_server = False
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
                self.link.ready(client)
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
        for pending in [p for p in self.outbox if p.attempted and p.reducer == "send_message"]:
            if pending.args[0] in arrived:
                arrived.remove(pending.args[0])
                self.link.settle(pending, ReducerResult(0, "committed", None, -1, 0))

    async def _older(self, client: Client, before: int) -> None:
        try:
            cutoff = await self._find_cutoff(client, before, PAGE_MESSAGES)
            cond = f"sent < {before}" + (f" AND sent >= {cutoff}" if cutoff is not None else "")
            result = await client.sql(f"SELECT * FROM message WHERE {cond}")
        except ClientError:
            return  # offline; the log asks again when the user scrolls up once more
        if isinstance(result, ErrorMessage) or result.error:
            return
        self.post(Older(before, cutoff, client.decode_rows("message", result.rows)))

    async def _search_older(self, client: Client, search: OlderSearch) -> None:
        """Fetch ``search``'s times, then its pages as rows of the wire (decoded only once one holds
        a match)."""
        pages: list[list[Any]] = []
        try:
            while not search.done:
                wanted = search.times_wanted()
                if wanted is not None:
                    lo, hi = wanted
                    times = _answer(await client.sql(f"SELECT sent FROM message WHERE {_between(lo, hi)}"),
                                    search.fewer_times)
                    if times is not None:
                        search.got_times(lo, [row[0] for row in times.rows])
                    continue
                lo, hi = search.page()
                result = _answer(await client.sql(f"SELECT * FROM message WHERE {_between(lo, hi)}"),
                                 search.smaller_page)
                if result is None:
                    continue
                pages.append(result.rows)
                search.passed(lo, len(result.rows))
                if search.matches(result.rows, result.columns.index("sender"), result.columns.index("text")):
                    rows = [row for page in pages for row in page]
                    self.post(Searched(search, None if search.done else lo, client.decode_rows("message", rows)))
                    return
                self.post(SearchProgress(search))
        except ClientError as exc:
            self.post(Searched(search, error=str(exc) or "offline"))
            return
        self.post(Searched(search))

    async def _find_cutoff(self, client: Client, before: int | None, want: int) -> int | None:
        """A `sent` bound giving roughly ``want`` (at most ~4x) messages before ``before``; None if
        all of them are that few. Counting is cheap on the server; rows are not, on the wire."""
        below = f" AND sent < {before}" if before is not None else ""

        async def count(since: int | None) -> int:
            return await _count(client, (f"sent >= {since}" if since is not None else "sent >= 0") + below)

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


def _between(lo: int | None, hi: int) -> str:
    """The SQL condition ``lo <= sent < hi`` (lo None: no lower bound)."""
    return f"sent < {hi}" + (f" AND sent >= {lo}" if lo is not None else "")


def _answer(result: OneOffResult | ErrorMessage, smaller: Callable[[], bool]) -> OneOffResult | None:
    """``result`` if the query was answered; None if the server found it too big and ``smaller()``
    made the next one smaller (ask again); ClientError if it was refused otherwise."""
    if not isinstance(result, ErrorMessage) and not result.error:
        return result
    error = result.error or "refused"
    if any(why in error for why in _TOO_BIG) and smaller():
        return None
    raise ClientError(error)


async def _count(client: Client, cond: str) -> int:
    """How many messages meet ``cond`` (SQL); ClientError if the server refuses."""
    result = await client.sql(f"SELECT COUNT(*) AS n FROM message WHERE {cond}")
    if isinstance(result, ErrorMessage) or result.error:
        raise ClientError(result.error)
    return int(result.rows[0][0])
