"""The async client SDK, shared by the CLI and chat-tui.

    client = await Client.connect("127.0.0.1:3000", "quickstart-chat", token=saved)
    await client.subscribe(["SELECT * FROM user", "SELECT * FROM message"])
    result = await client.call("send_message", "Hello!")
    async for event in client.events(): ...

A Client is one connection; ``chat_server.reconnect`` keeps one up (backoff,
the saved token, calls made while offline). Everything the server sends takes
one of two ways: a reply settles the request that asked for it (``call``,
``sql``, ``subscribe``, ``logs``, ``publish``, ``delete``: each awaits its
answer, ``follow_logs`` iterates them), and every change to the subscribed rows
becomes one ``TxEvent``, read from ``events()`` (or seen by ``listeners`` as it
arrives). Rows are decoded once, into one named tuple class per table (built from
the schema the server sends first), kept in a ``ClientCache``.

The address and name helpers (``parse_server``, ``check_database_name``...) live in
``chat_server.address`` and the exceptions in ``chat_server.errors``; both are
re-exported here, the SDK's one import.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from db_core.cache import ClientCache, RowEvent
from db_core.protocol import (SUBPROTOCOL, CallReducer, ClientMessage, DeleteDatabase, Done, ErrorMessage,
                              IdentityToken, LogLines, Logs, OneOffQuery, OneOffResult, Publish, QueryRows,
                              ReducerResult, ServerMessage, Subscribe, SubscribeApplied, SubscriptionError,
                              TransactionUpdate, TxUpdate, Unsubscribe, UnsubscribeApplied, decode_server, encode)
from db_core.schema import ColType, col_type_from_json
from db_core.types import ConnectionId, Identity

# Re-exported: the SDK's names for chat-tui and the server (``__all__``).
from .address import (DB_NAME_RULE, DEFAULT_SERVER, Endpoint, argument_type, check_database_name, parse_server,
                      valid_database_name, ws_url)
from .errors import ClientError, ConnectFailed, InvalidAddress, InvalidName


@dataclasses.dataclass(slots=True)
class TableSchema:
    """A table as the ``identity`` message's schema describes it, with its row class."""

    name: str
    columns: list[str]
    types: list[ColType]
    primary_key: str | None
    public: bool
    row: type

    def decode(self, values: list[Any]) -> Any:
        """A wire row as this table's row named tuple (TypeError if it has too few values)."""
        return self.row(*(t.from_wire(v) for t, v in zip(self.types, values, strict=False)))


def table_schemas(schema: dict[str, Any]) -> dict[str, TableSchema]:
    """Each table of a schema object (docs/protocol.md section 5) by name."""
    out: dict[str, TableSchema] = {}
    for t in schema.get("tables", []):
        cols = [c["name"] for c in t["columns"]]
        types = [col_type_from_json(c["type"]) for c in t["columns"]]
        row = NamedTuple(_class_name(t["name"]), [(c, object) for c in cols])  # type: ignore[misc]  # built from the schema at run time
        out[t["name"]] = TableSchema(t["name"], cols, types, t.get("primary_key"), t.get("public", False), row)
    return out


def _cache_for(tables: dict[str, TableSchema]) -> ClientCache:
    """An empty cache keyed by each table's primary key."""
    return ClientCache({
        name: (lambda i: (lambda row: row[i]))(ts.columns.index(ts.primary_key))
        for name, ts in tables.items() if ts.primary_key
    })


def _class_name(table: str) -> str:
    return "".join(part.capitalize() for part in table.split("_")) or "Row"


@dataclasses.dataclass(frozen=True, slots=True)
class QueryDelta:
    """One query's decoded rows in one transaction (or a subscription's first rows, as inserts),
    as the server sent them: overlapping queries each carry their copy of a row."""

    query_id: int
    table: str
    inserts: list[Any]
    deletes: list[Any]


@dataclasses.dataclass(slots=True)
class TxEvent:
    """One transaction's effect on this client's subscriptions.

    ``rows`` are the cache's row events (each row once, updates paired), ``updates``
    what each query received. ``initial`` marks a subscription's first rows (published
    even when empty, so a consumer of ``events()`` sees exactly where the subscription
    begins); its offset is -1, like the reset after a module update, which drops every
    cached row. Only real transactions have an offset of 0 or more."""

    offset: int
    timestamp: int
    reducer: str | None
    caller: Identity
    rows: list[RowEvent]
    initial: bool = False
    updates: list[QueryDelta] = dataclasses.field(default_factory=list)


class Client:
    """One websocket connection to one database."""

    def __init__(self, ws: ClientConnection, hello: IdentityToken) -> None:
        self._ws = ws
        self.identity = Identity(hello.identity)
        self.token = hello.token
        self.connection_id = ConnectionId(hello.connection_id)
        self.database = hello.database
        self.schema = hello.schema
        self.tables = table_schemas(hello.schema)
        self.cache = _cache_for(self.tables)
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[ServerMessage]] = {}       # request id -> its one reply
        self._follows: dict[int, asyncio.Queue[LogLines | ErrorMessage | ClientError]] = {}  # followed logs
        self._events: asyncio.Queue[TxEvent | ClientError] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.listeners: list[Callable[[TxEvent], None]] = []
        """Called with each TxEvent as it arrives, before ``events()`` yields it."""

    @classmethod
    async def connect(cls, server: str, database: str, token: str | None = None, *,
                      open_timeout: float = 10.0, endpoint: Endpoint = "subscribe",
                      ssl_context: ssl.SSLContext | None = None) -> Client:
        """Connect (with ``token`` to be the same identity again); ConnectFailed with the reason if not."""
        url = ws_url(server, database, endpoint)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        tls: dict[str, Any] = {"ssl": ssl_context} if ssl_context is not None and url.startswith("wss:") else {}
        try:
            ws = await connect(url, subprotocols=[Subprotocol(SUBPROTOCOL)], additional_headers=headers,
                               compression=None, open_timeout=open_timeout, max_size=64 << 20, **tls)
        except InvalidStatus as exc:
            body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
            status = exc.response.status_code
            raise ConnectFailed(f"{url}: HTTP {status} {body}".strip(), status=status) from None
        except InvalidURI as exc:
            raise ConnectFailed(f"invalid server address {server!r}: {exc}") from None
        except InvalidHandshake as exc:
            raise ConnectFailed(f"{url}: no websocket handshake ({exc}); is the scheme (ws/wss) right?") from None
        except (TimeoutError, OSError) as exc:
            raise ConnectFailed(f"cannot reach {url}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            first = await ws.recv()
        except ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)
            raise ConnectFailed(f"the server refused the connection: {reason or 'closed'}", close_code=code,
                                close_reason=reason) from None
        hello = decode_server(first)
        if not isinstance(hello, IdentityToken):
            await ws.close()
            raise ConnectFailed("the server did not start with an identity message")
        return cls(ws, hello)

    # -- requests: each returns (or iterates) its reply ------------------------------------
    async def request(self, make: Callable[[int], ClientMessage]) -> ServerMessage:
        """Send ``make(request_id)`` and return the server's reply, whatever it is: the low-level
        way the methods below are built on. ClientError if the connection closes first."""
        rid = next(self._ids)
        fut: asyncio.Future[ServerMessage] = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        try:
            await self._send(make(rid))
        except ClientError:
            self._replies.pop(rid, None)
            raise
        return await fut

    async def call(self, reducer: str, *args: Any) -> ReducerResult:
        """Call a reducer; its result says how it ended (``status``, a ``ReducerStatus``). A call the
        server could not take at all (an ``error`` reply, e.g. no such database) is ``refused``."""
        reply = await self.request(lambda rid: CallReducer(rid, reducer, [_to_wire(a) for a in args]))
        if isinstance(reply, ReducerResult):
            return reply
        return ReducerResult(_rid_of(reply), "refused", _error_of(reply) or "refused by the server", -1, 0)

    async def subscribe(self, queries: list[str]) -> int:
        """Subscribe; returns the subscription id once the initial rows are in the cache (and their
        TxEvent, ``initial``, is queued for ``events()``). ClientError with the server's reason if refused."""
        reply = await self.request(lambda rid: Subscribe(rid, list(queries)))
        if not isinstance(reply, SubscribeApplied):  # ErrorMessage: e.g. no such database
            raise ClientError(_error_of(reply))
        return reply.id

    async def unsubscribe(self, subscription: int) -> None:
        """Drop a subscription (its rows leave the cache); ClientError if the server refuses."""
        reply = await self.request(lambda rid: Unsubscribe(rid, subscription))
        if isinstance(reply, ErrorMessage):
            raise ClientError(reply.error)

    async def sql(self, query: str) -> OneOffResult | ErrorMessage:
        """Run one SQL statement. A statement that failed is a result with its ``error``; one the
        server did not take (rate limited: ``retry_after``; no such database) an ErrorMessage.
        Both have ``error``."""
        reply = await self.request(lambda rid: OneOffQuery(rid, query))
        if isinstance(reply, (OneOffResult, ErrorMessage)):
            return reply
        raise ClientError(_error_of(reply))

    async def logs(self, n: int | None = None, level: str | None = None) -> list[str]:
        """The module log (owner only): the last ``n`` lines (all if None) at ``level`` or above."""
        reply = await self.request(lambda rid: Logs(rid, n, level))
        if not isinstance(reply, LogLines):
            raise ClientError(_error_of(reply))
        return reply.lines

    async def follow_logs(self, n: int | None = None, level: str | None = None) -> AsyncIterator[list[str]]:
        """``logs``, then each batch of lines as the module writes them, until the connection closes
        (then the iteration ends). ClientError if refused, or closed before the first batch."""
        rid = next(self._ids)
        queue: asyncio.Queue[LogLines | ErrorMessage | ClientError] = asyncio.Queue()
        self._follows[rid] = queue
        try:
            await self._send(Logs(rid, n, level, True))
            first = True
            while True:
                item = await queue.get()
                if isinstance(item, ClientError):
                    if first:
                        raise item
                    return
                if isinstance(item, ErrorMessage):
                    raise ClientError(item.error)
                first = False
                yield item.lines
        finally:
            self._follows.pop(rid, None)

    async def publish(self, source: str, filename: str = "module.py", *, clear: bool = False) -> list[str]:
        """Create or update this database from module source (``clear``: delete its data first); the
        lines say what happened (e.g. the migrations). ClientError with the server's reason if refused."""
        return self._done(await self.request(lambda rid: Publish(rid, source, filename, clear)))

    async def delete(self) -> list[str]:
        """Delete this database and its data (owner only); the lines say what happened."""
        return self._done(await self.request(lambda rid: DeleteDatabase(rid)))

    @staticmethod
    def _done(reply: ServerMessage) -> list[str]:
        if not isinstance(reply, Done):
            raise ClientError(_error_of(reply))
        return reply.detail

    async def _send(self, msg: ClientMessage) -> None:
        try:
            await self._ws.send(encode(msg))
        except ConnectionClosed:
            raise ClientError(f"connection closed: {self.close_reason or 'lost'}") from None

    # -- subscribed rows -------------------------------------------------------------------
    async def events(self) -> AsyncIterator[TxEvent]:
        """Each TxEvent in order, until the connection closes or the server ends a subscription
        (then ClientError with the reason). Read it while subscribed: events wait for it."""
        while True:
            item = await self._events.get()
            if isinstance(item, ClientError):
                raise item
            yield item

    def rows(self, table: str) -> list[Any]:
        """The cached rows of ``table``."""
        return self.cache.rows(table)

    def decode_rows(self, table: str, rows: list[list[Any]]) -> list[Any]:
        """Wire rows of ``table`` (e.g. a one-off query's) as its row named tuples."""
        ts = self.tables[table]
        return [ts.decode(r) for r in rows]

    async def close(self) -> None:
        """Close the connection and wait for the reader: pending requests fail, ``events()`` ends."""
        await self._ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    # -- reading -------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                self._handle(decode_server(frame))
            reason = self._ws.close_reason or "closed by the server"
        except ConnectionClosed as exc:
            reason = (exc.rcvd.reason if exc.rcvd else "") or "connection lost"
        except Exception as exc:  # a bug or a bad frame must not leave waiters hanging
            reason = f"client error: {exc!r}"
        self.close_reason = reason
        error = ClientError(f"connection closed: {reason}")
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(error)
        self._replies.clear()
        self._events.put_nowait(error)
        for queue in self._follows.values():
            queue.put_nowait(error)
        self.closed.set()

    def _handle(self, msg: ServerMessage) -> None:
        if isinstance(msg, TransactionUpdate):
            for tx in msg.txs:
                self._deliver(self._apply_tx(tx))
            return
        if isinstance(msg, IdentityToken):
            # The database was updated with a new module: new schema; our subscriptions'
            # rows are dropped here and arrive again (checked against it) right after.
            self.schema = msg.schema
            self.tables = table_schemas(msg.schema)
            dropped = self.cache.clear()
            self.cache = _cache_for(self.tables)
            if dropped:
                self._deliver(TxEvent(-1, 0, None, self.identity, dropped))
            return
        if isinstance(msg, SubscribeApplied):
            updates = [QueryDelta(q.query_id, q.table, self.decode_rows(q.table, q.inserts), []) for q in msg.queries]
            rows: list[RowEvent] = []
            for d in updates:
                rows += self.cache.apply(d.table, d.inserts, ())
            self._deliver(TxEvent(-1, 0, None, self.identity, rows, initial=True, updates=updates))
        elif isinstance(msg, UnsubscribeApplied):
            for q in msg.queries:
                self.cache.apply(q.table, (), self.decode_rows(q.table, q.deletes))
        rid = msg.id
        fut = self._replies.pop(rid, None) if rid is not None else None
        if fut is not None:
            if not fut.done():
                fut.set_result(msg)
        elif rid in self._follows and isinstance(msg, (LogLines, ErrorMessage)):
            self._follows[rid].put_nowait(msg)
        elif isinstance(msg, SubscriptionError):
            # Unsolicited: the server dropped a live subscription (e.g. the module was updated
            # and the query no longer checks). Whoever reads the updates must hear of it.
            self._events.put_nowait(ClientError(f"subscription ended by the server: {msg.error}"))

    def _apply_tx(self, tx: TxUpdate) -> TxEvent:
        updates = [self._delta(q) for q in tx.updates]
        rows: list[RowEvent] = []
        for d in updates:
            rows += self.cache.apply(d.table, d.inserts, d.deletes)
        return TxEvent(tx.offset, tx.timestamp, tx.reducer, Identity(tx.caller), rows, updates=updates)

    def _delta(self, q: QueryRows) -> QueryDelta:
        decode = self.tables[q.table].decode
        return QueryDelta(q.query_id, q.table, [decode(r) for r in q.inserts], [decode(r) for r in q.deletes])

    def _deliver(self, event: TxEvent) -> None:
        for listener in self.listeners:
            listener(event)
        self._events.put_nowait(event)


def _rid_of(reply: ServerMessage) -> int:
    """The request id a reply echoes (0 for one that has none)."""
    rid = getattr(reply, "id", None)
    return rid if isinstance(rid, int) else 0


def _error_of(reply: ServerMessage) -> str:
    """The server's reason for a reply that is not the answer asked for."""
    if isinstance(reply, (ErrorMessage, SubscriptionError)):
        return reply.error
    return f"unexpected reply from the server: {type(reply).__name__}"


def _to_wire(value: Any) -> Any:
    if isinstance(value, (Identity, ConnectionId)):
        return bytes(value)
    if isinstance(value, tuple):
        return [_to_wire(v) for v in value]
    return value


__all__ = ["Client", "ClientError", "ConnectFailed", "InvalidAddress", "InvalidName", "QueryDelta", "TableSchema",
           "TxEvent", "argument_type", "check_database_name", "parse_server", "table_schemas", "valid_database_name",
           "ws_url", "DB_NAME_RULE", "DEFAULT_SERVER"]
