"""The async client SDK, shared by the CLI and chat-tui.

    client = await Client.connect("127.0.0.1:3000", "quickstart-chat", token=saved)
    await client.subscribe(["SELECT * FROM user", "SELECT * FROM message"])
    result = await client.call("send_message", "Hello!")
    async for event in client.events(): ...

Rows arrive decoded into one named tuple class per table (built from the
schema the server sends first), kept in a ``ClientCache``; every change is
also delivered as ``RowEvent``s. A Client is one connection; ``chat_server.reconnect``
keeps one up (backoff, the saved token, calls made while offline).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import itertools
import re
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from db_core.cache import ClientCache, RowEvent
from db_core.protocol import (SUBPROTOCOL, CallReducer, ErrorMessage, IdentityToken, OneOffQuery, OneOffResult,
                              ReducerResult, Subscribe, SubscribeApplied, SubscriptionError, TransactionUpdate,
                              Unsubscribe, UnsubscribeApplied, decode_server, encode)
from db_core.schema import ColType, col_type_from_json
from db_core.types import ConnectionId, Identity

DEFAULT_SERVER = "127.0.0.1:3000"
DEFAULT_PORT = 3000  # of a bare host without a scheme; with ws:// or wss:// the scheme's own (80, 443)
DB_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DB_NAME_MAX = 64  # characters: a directory name on every file system, and a readable URL
DB_NAME_RULE = f"use 1-{DB_NAME_MAX} lowercase letters, digits and single dashes, e.g. quickstart-chat"
_SCHEMES = {"ws": False, "http": False, "wss": True, "https": True}  # scheme -> secure
# Both used with fullmatch: "$" would let a trailing newline through.
_HOST_RE = re.compile(r"[\w-]+(\.[\w-]+)*\.?")  # a DNS name (an IDN too) or an IPv4 address
_PORT_RE = re.compile(r"[0-9]+")


class ClientError(Exception):
    """A request the server refused, or a connection that could not be made; the text says why."""


class ConnectFailed(ClientError):
    """The server could not be reached or refused the connection."""


class InvalidAddress(ClientError, ValueError):
    """A server or listen address that cannot be used; the text says what is wrong with it."""


class InvalidName(ClientError, ValueError):
    """A database name that breaks the rule (``DB_NAME_RE``, at most ``DB_NAME_MAX`` characters)."""


def valid_database_name(name: str) -> bool:
    """Whether ``name`` may name a database: the server's rule, which clients repeat before connecting."""
    return len(name) <= DB_NAME_MAX and DB_NAME_RE.fullmatch(name) is not None  # fullmatch: "$" allows a "\n"


def check_database_name(name: str) -> str:
    """Return ``name`` if it may name a database, else raise InvalidName saying the rule."""
    if not valid_database_name(name):
        shown = repr(name) if len(name) <= DB_NAME_MAX else f"of {len(name)} characters"
        raise InvalidName(f"invalid database name {shown}: {DB_NAME_RULE}")
    return name


def join_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets (``[::1]:3000``): what ``split_host_port`` reads."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(text: str, *, default_port: int | None = None, lowest_port: int = 1) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` as (host, port), the host without brackets.

    Without ``default_port`` the port is required, and then an IPv6 address may also be written
    without brackets (``::1:3000``: the last colon is the port's). InvalidAddress says what is wrong."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise InvalidAddress("'[' without its ']'")
        if rest and not rest.startswith(":"):
            raise InvalidAddress(f"unexpected {rest!r} after ']'")
        port_text = rest[1:] if rest else None
    else:
        host, colon, after = text.rpartition(":")
        host, port_text = (host, after) if colon else (text, None)
    port = _port(port_text, default_port, lowest_port)
    if text.startswith("["):
        if not _is_ipv6(host):
            raise InvalidAddress(f"{host!r} in brackets is not an IPv6 address")
    elif ":" in host:
        if not (default_port is None and _is_ipv6(host)):
            if _is_ipv6(host) or _is_ipv6(text):
                raise InvalidAddress("an IPv6 address goes in brackets, e.g. [::1]:3000")
            raise InvalidAddress("more than one ':'; expected host:port, e.g. 127.0.0.1:3000")
    elif not host:
        raise InvalidAddress("no host before the port, e.g. 127.0.0.1:3000")
    elif not (len(host) <= 253 and _HOST_RE.fullmatch(host) and _idna_ok(host)):
        raise InvalidAddress(f"{host!r} is not a host name or IP address")
    return host, port


def _idna_ok(host: str) -> bool:
    # What the resolver will do with the name: a label over 63 characters fails there, not here.
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _port(text: str | None, default: int | None, lowest: int) -> int:
    if text is None:
        if default is None:
            raise InvalidAddress("no port, e.g. 127.0.0.1:3000")
        return default
    if not _PORT_RE.fullmatch(text):
        raise InvalidAddress(f"the port {text!r} is not a number" if text else "no port after ':'")
    port = int(text)
    if not lowest <= port <= 65535:
        raise InvalidAddress(f"port must be {lowest}-65535, not {port}")
    return port


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class ServerAddress:
    """A server as ``--server`` names it: ``ws(s)://``, ``http(s)://`` or bare ``host[:port]``."""

    secure: bool
    host: str  # an IPv6 address without brackets
    port: int
    prefix: str = ""  # a path the server is mounted under (behind a proxy), without a trailing "/"

    @property
    def netloc(self) -> str:
        return join_host_port(self.host, self.port)

    def url(self, database: str, endpoint: str) -> str:
        return f"{'wss' if self.secure else 'ws'}://{self.netloc}{self.prefix}/v1/database/{database}/{endpoint}"


def parse_server(server: str) -> ServerAddress:
    """Read a server address; InvalidAddress (one line, quoting it) says what is wrong.

    A bare ``host`` means port 3000; ``ws://host`` and ``wss://host`` mean 80 and 443, as URLs do."""
    try:
        return _parse_server(server.strip())
    except InvalidAddress as exc:
        raise InvalidAddress(f"invalid server address {server!r}: {exc}") from None


def _parse_server(text: str) -> ServerAddress:
    if not text:
        raise InvalidAddress("empty; expected host:port, e.g. 127.0.0.1:3000")
    if any(c.isspace() for c in text):
        raise InvalidAddress("it contains whitespace")
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() not in _SCHEMES:
            raise InvalidAddress(f"unknown scheme {scheme!r}: use ws://, wss://, http:// or https://")
        secure = _SCHEMES[scheme.lower()]
        default_port = 443 if secure else 80
    else:
        rest, secure, default_port = text, False, DEFAULT_PORT
    netloc, slash, path = rest.partition("/")
    if not netloc:
        raise InvalidAddress("no host, e.g. ws://127.0.0.1:3000")
    if "@" in netloc or "?" in rest or "#" in rest:
        raise InvalidAddress("a server address has no user, query or fragment")
    host, port = split_host_port(netloc, default_port=default_port)
    return ServerAddress(secure, host, port, ("/" + path).rstrip("/") if slash else "")


def ws_url(server: str, database: str, endpoint: str = "subscribe") -> str:
    """The websocket URL of ``database`` on ``server`` (http(s)://, ws(s)://, or bare host:port).

    ``endpoint`` is ``subscribe`` for a client (lifecycle hooks run) or ``cli``. Raises
    InvalidAddress or InvalidName (ClientErrors, and ValueErrors) for what cannot be connected to."""
    return parse_server(server).url(check_database_name(database), endpoint)


def argument_type(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse ``type=`` that runs ``check`` and reports its ValueError as the option's error."""
    def parse(text: str) -> str:
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return parse


@dataclasses.dataclass(slots=True)
class TableSchema:
    name: str
    columns: list[str]
    types: list[ColType]
    primary_key: str | None
    public: bool
    row: type

    def decode(self, values: list[Any]) -> Any:
        return self.row(*(t.from_wire(v) for t, v in zip(self.types, values)))


def table_schemas(schema: dict[str, Any]) -> dict[str, TableSchema]:
    out: dict[str, TableSchema] = {}
    for t in schema.get("tables", []):
        cols = [c["name"] for c in t["columns"]]
        types = [col_type_from_json(c["type"]) for c in t["columns"]]
        row = NamedTuple(_class_name(t["name"]), [(c, object) for c in cols])  # type: ignore[misc]
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


@dataclasses.dataclass(slots=True)
class TxEvent:
    """One transaction's effect on this client's subscriptions.

    ``initial`` marks a subscription's first rows (published even when empty, so a
    consumer of ``events()`` sees exactly where the subscription begins); its offset is -1,
    like the reset after a module update, which drops every cached row."""

    offset: int
    timestamp: int
    reducer: str | None
    caller: Identity
    rows: list[RowEvent]
    initial: bool = False


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
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[TxEvent | BaseException] = asyncio.Queue()
        self._subscriptions: dict[int, list[int]] = {}
        self._streams: dict[int, asyncio.Queue[Any]] = {}
        self._raw: asyncio.Queue[Any] | None = None
        self._reader = asyncio.create_task(self._read())
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.listeners: list[Callable[[TxEvent], None]] = []

    @classmethod
    async def connect(cls, server: str, database: str, token: str | None = None, *,
                      open_timeout: float = 10.0, endpoint: str = "subscribe",
                      ssl_context: ssl.SSLContext | None = None) -> "Client":
        """Connect (with ``token`` to be the same identity again); ConnectFailed with the reason if not."""
        url = ws_url(server, database, endpoint)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await connect(url, subprotocols=[SUBPROTOCOL], additional_headers=headers,  # type: ignore[list-item]
                               compression=None, open_timeout=open_timeout, max_size=64 << 20,
                               **({"ssl": ssl_context} if ssl_context is not None and url.startswith("wss:") else {}))
        except InvalidStatus as exc:
            body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
            raise ConnectFailed(f"{url}: HTTP {exc.response.status_code} {body}".strip()) from None
        except InvalidURI as exc:
            raise ConnectFailed(f"invalid server address {server!r}: {exc}") from None
        except InvalidHandshake as exc:
            raise ConnectFailed(f"{url}: no websocket handshake ({exc}); is the scheme (ws/wss) right?") from None
        except (TimeoutError, OSError) as exc:
            raise ConnectFailed(f"cannot reach {url}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            first = await ws.recv()
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd else "closed"
            raise ConnectFailed(f"the server refused the connection: {reason}") from None
        hello = decode_server(first)  # type: ignore[arg-type]
        if not isinstance(hello, IdentityToken):
            await ws.close()
            raise ConnectFailed("the server did not start with an identity message")
        return cls(ws, hello)

    # -- requests -----------------------------------------------------------------------
    async def request(self, make: Callable[[int], Any], *, stream: bool = False) -> Any:
        """Send ``make(request_id)`` and return the reply; with ``stream``, later messages
        with the same id are kept for ``stream(request_id)``."""
        if stream:
            rid = next(self._ids)
            self._streams[rid] = asyncio.Queue()
            return await self._request(make, rid)
        return await self._request(make)

    async def stream(self, rid: int) -> AsyncIterator[Any]:
        """Further messages answering request ``rid`` (e.g. followed log lines), until the connection closes."""
        queue = self._streams[rid]
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                return
            yield item

    async def subscribe_rows(self, queries: list[str]) -> list[Any]:
        """Subscribe and return the initial ``QueryRows`` as sent (wire rows); see ``raw_updates``."""
        self._raw = asyncio.Queue()
        reply = await self._request(lambda rid: Subscribe(rid, list(queries)))
        if isinstance(reply, (SubscriptionError, ErrorMessage)):  # ErrorMessage: e.g. no such database
            raise ClientError(reply.error)
        return reply.queries

    async def raw_updates(self) -> AsyncIterator[Any]:
        """Each transaction's ``TxUpdate`` as sent, after ``subscribe_rows``."""
        assert self._raw is not None, "call subscribe_rows first"
        while True:
            item = await self._raw.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def _request(self, make: Callable[[int], Any], rid: int | None = None) -> Any:
        rid = next(self._ids) if rid is None else rid
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        try:
            await self._ws.send(encode(make(rid)))
        except ConnectionClosed:
            self._waiters.pop(rid, None)
            raise ClientError(f"connection closed: {self.close_reason or 'lost'}") from None
        return await fut

    async def call(self, reducer: str, *args: Any) -> ReducerResult:
        """Call a reducer; returns its result (status committed/no_changes/failed/internal_error/refused)."""
        return await self._request(lambda rid: CallReducer(rid, reducer, [_to_wire(a) for a in args]))

    async def subscribe(self, queries: list[str]) -> int:
        """Subscribe; returns the subscription id once the initial rows are in the cache."""
        reply = await self._request(lambda rid: Subscribe(rid, list(queries)))
        if isinstance(reply, SubscriptionError):
            raise ClientError(reply.error)
        return reply.id

    async def unsubscribe(self, subscription: int) -> None:
        reply = await self._request(lambda rid: Unsubscribe(rid, subscription))
        if isinstance(reply, ErrorMessage):
            raise ClientError(reply.error)

    async def sql(self, query: str) -> OneOffResult:
        return await self._request(lambda rid: OneOffQuery(rid, query))

    async def events(self) -> AsyncIterator[TxEvent]:
        """Transaction events until the connection closes (then raises ClientError with the reason)."""
        while True:
            item = await self._events.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        await self._ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    # -- reading ------------------------------------------------------------------------
    def rows(self, table: str) -> list[Any]:
        return self.cache.rows(table)

    def decode_rows(self, table: str, rows: list[list[Any]]) -> list[Any]:
        """Wire rows of ``table`` (e.g. a one-off query's) as its row named tuples."""
        ts = self.tables[table]
        return [ts.decode(r) for r in rows]

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                self._handle(decode_server(frame))  # type: ignore[arg-type]
            reason = self._ws.close_reason or "closed by the server"
        except ConnectionClosed as exc:
            reason = (exc.rcvd.reason if exc.rcvd else "") or "connection lost"
        except Exception as exc:  # a bug or a bad frame must not leave waiters hanging
            reason = f"client error: {exc!r}"
        self.close_reason = reason
        error = ClientError(f"connection closed: {reason}")
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(error)
        self._waiters.clear()
        self._events.put_nowait(error)
        for queue in self._streams.values():
            queue.put_nowait(error)
        if self._raw is not None:
            self._raw.put_nowait(error)
        self.closed.set()

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, IdentityToken):
            # The database was updated with a new module: new schema; our subscriptions'
            # rows are dropped here and arrive again (checked against it) right after.
            self.schema = msg.schema
            self.tables = table_schemas(msg.schema)
            events = self.cache.clear()
            self.cache = _cache_for(self.tables)
            if events:
                self._publish_event(TxEvent(-1, 0, None, self.identity, events))
            return
        if isinstance(msg, TransactionUpdate):
            if self._raw is not None:
                for tx in msg.txs:
                    self._raw.put_nowait(tx)
            for tx in msg.txs:
                events: list[RowEvent] = []
                for q in tx.updates:
                    events += self.cache.apply(q.table, self.decode_rows(q.table, q.inserts),
                                               self.decode_rows(q.table, q.deletes))
                self._publish_event(TxEvent(tx.offset, tx.timestamp, tx.reducer, Identity(tx.caller), events))
            return
        if isinstance(msg, SubscribeApplied):
            events = []
            for q in msg.queries:
                events += self.cache.apply(q.table, self.decode_rows(q.table, q.inserts), ())
            self._subscriptions[msg.id] = [q.query_id for q in msg.queries]
            self._publish_event(TxEvent(-1, 0, None, self.identity, events, initial=True))
        elif isinstance(msg, UnsubscribeApplied):
            for q in msg.queries:
                self.cache.apply(q.table, (), self.decode_rows(q.table, q.deletes))
            self._subscriptions.pop(msg.subscription, None)
        rid = getattr(msg, "id", None)
        fut = self._waiters.pop(rid, None) if rid is not None else None
        if fut is not None and not fut.done():
            fut.set_result(msg)
        elif rid in self._streams:
            self._streams[rid].put_nowait(msg)
        elif isinstance(msg, SubscriptionError):
            # Unsolicited: the server dropped a live subscription (e.g. the module was updated
            # and the query no longer checks). Whoever reads the updates must hear of it.
            error = ClientError(f"subscription ended by the server: {msg.error}")
            self._events.put_nowait(error)
            if self._raw is not None:
                self._raw.put_nowait(error)

    def _publish_event(self, event: TxEvent) -> None:
        for listener in self.listeners:
            listener(event)
        self._events.put_nowait(event)


def _to_wire(value: Any) -> Any:
    if isinstance(value, (Identity, ConnectionId)):
        return bytes(value)
    if isinstance(value, tuple):
        return [_to_wire(v) for v in value]
    return value


__all__ = ["Client", "ClientError", "ConnectFailed", "InvalidAddress", "InvalidName", "ServerAddress", "TxEvent",
           "argument_type", "check_database_name", "join_host_port", "parse_server", "split_host_port",
           "valid_database_name", "ws_url", "DEFAULT_SERVER"]
