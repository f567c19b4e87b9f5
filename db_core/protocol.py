"""THE wire messages, and their msgpack codec. Server, CLI and TUI all use this module.

Every frame is one msgpack map with a type tag ``"t"``; requests carry an
``"id"`` (a client-chosen unsigned integer) that the reply echoes. Rows travel
as arrays of column values in declaration order (Identity and bytes as bin,
Timestamp as integer microseconds, enums by variant name, options as nil or
the value, lists as arrays); the column types come in the ``identity``
message's schema. ``docs/protocol.md`` is the full reference.

Each message class owns its tag (``TAG``) and its map (``to_wire`` and
``from_wire``); ``CLIENT_MESSAGES`` and ``SERVER_MESSAGES``, the tables from
tag to class that ``decode_client`` and ``decode_server`` read, are built from
the classes. The server's hot paths (``encode_result``,
``encode_transaction_update``, ``SqlResultFrame``, ``encode_query_rows_packed``)
build the same bytes without the dataclasses; tests hold them equal.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Self, get_args

import msgpack

from .errors import DbError
from .logs import LEVELS

SUBPROTOCOL = "qc.msgpack.v1"

INVALID_TOKEN = "invalid token: "
"""How the reason of the 1008 close that refuses a token starts (docs/protocol.md 2.3, 11.4)."""

ReducerStatus = Literal["committed", "no_changes", "failed", "internal_error", "refused"]
"""How a call ended: ``committed`` (it changed rows), ``no_changes`` (it ran and wrote
nothing), ``failed`` (the reducer refused: rolled back, ``error`` says why),
``internal_error`` (a bug in the module, or the database cannot write) or ``refused``
(it did not run: rate limited, or the server could not take it)."""

WireData = bytes | bytearray | memoryview | str
"""What a websocket hands over: a text frame is refused (ProtocolError), only binary is msgpack."""


class ProtocolError(DbError):
    """A frame that is not a valid message; the text says what is wrong."""


class Message:
    """A wire message: a dataclass whose ``TAG`` is its ``"t"``."""

    __slots__ = ()
    TAG: ClassVar[str]

    def to_wire(self) -> dict[str, Any]:
        """The msgpack map of the message, ``"t"`` first; ``encode`` packs it."""
        raise NotImplementedError

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        """The message from its map, whose ``"t"`` is ``TAG``. Client messages are checked field by
        field (ProtocolError names the field); server messages are trusted."""
        raise NotImplementedError


def _field(m: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if name not in m:
        raise ProtocolError(f"{what} message needs the field `{name}`")
    value = m[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProtocolError(f"field `{name}` of a {what} message must be {expected}, got {type(value).__name__}")
    return value


def _request_id(m: dict[str, Any], what: str) -> int:
    rid: int = _field(m, "id", int, what)
    if rid < 0 or rid >= 1 << 64:
        raise ProtocolError("request ids are unsigned 64-bit integers")
    return rid


# -- client -> server ---------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class CallReducer(Message):
    TAG = "call"
    id: int
    reducer: str
    args: list[Any]

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "reducer": self.reducer, "args": self.args}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        # The common, well-formed call first; anything else is checked field by field below.
        rid, reducer, args = m.get("id"), m.get("reducer"), m.get("args")
        if type(rid) is int and 0 <= rid < 1 << 64 and type(reducer) is str and type(args) is list:
            return cls(rid, reducer, args)
        args = _field(m, "args", list, cls.TAG)
        return cls(_request_id(m, cls.TAG), _field(m, "reducer", str, cls.TAG), args)


@dataclasses.dataclass(slots=True)
class Subscribe(Message):
    TAG = "subscribe"
    id: int
    queries: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "queries": self.queries}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        queries = _field(m, "queries", list, cls.TAG)
        if not queries or not all(isinstance(q, str) for q in queries):
            raise ProtocolError(f"field `queries` of a {cls.TAG} message must be a non-empty list of strings")
        return cls(_request_id(m, cls.TAG), queries)


@dataclasses.dataclass(slots=True)
class Unsubscribe(Message):
    TAG = "unsubscribe"
    id: int
    subscription: int  # the id of the Subscribe request

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "subscription": self.subscription}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(_request_id(m, cls.TAG), _field(m, "subscription", int, cls.TAG))


@dataclasses.dataclass(slots=True)
class OneOffQuery(Message):
    TAG = "sql"
    id: int
    query: str

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "query": self.query}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(_request_id(m, cls.TAG), _field(m, "query", str, cls.TAG))


@dataclasses.dataclass(slots=True)
class Logs(Message):
    """Owner only: the last ``n`` module log lines (all if None) at ``level`` or above; ``follow`` streams more."""

    TAG = "logs"
    id: int
    n: int | None = None
    level: str | None = None  # a name of db_core.logs.LEVELS, in any case
    follow: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "n": self.n, "level": self.level, "follow": self.follow}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        n = m.get("n")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise ProtocolError(f"field `n` of a {cls.TAG} message must be a non-negative integer or nil")
        level = m.get("level")
        if level is not None and (not isinstance(level, str) or level.upper() not in LEVELS):
            raise ProtocolError(f"field `level` of a {cls.TAG} message must be one of "
                                f"{', '.join(name.lower() for name in LEVELS)}")
        return cls(_request_id(m, cls.TAG), n, level, bool(m.get("follow", False)))


@dataclasses.dataclass(slots=True)
class Publish(Message):
    """Create or update the endpoint's database from module source (owner only for an update)."""

    TAG = "publish"
    id: int
    module: str
    filename: str = "module.py"
    clear: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "module": self.module, "filename": self.filename, "clear": self.clear}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        filename = m.get("filename", "module.py")
        if not isinstance(filename, str):
            raise ProtocolError(f"field `filename` of a {cls.TAG} message must be str")
        return cls(_request_id(m, cls.TAG), _field(m, "module", str, cls.TAG), filename, bool(m.get("clear", False)))


@dataclasses.dataclass(slots=True)
class DeleteDatabase(Message):
    """Owner only: delete the endpoint's database and its data."""

    TAG = "delete"
    id: int

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(_request_id(m, cls.TAG))


ClientMessage = CallReducer | Subscribe | Unsubscribe | OneOffQuery | Logs | Publish | DeleteDatabase


# -- server -> client -----------------------------------------------------------------
def wire_rows(query_id: int, table: str, inserts: list[Any], deletes: list[Any]) -> list[Any]:
    """One query's rows as a message carries them (``QueryRows`` on the wire)."""
    return [query_id, table, inserts, deletes]


def wire_tx(offset: int, timestamp: int, reducer: str | None, caller: bytes) -> dict[str, Any]:
    """A transaction's entry of a ``tx`` frame without its ``updates``; built once per transaction."""
    return {"offset": offset, "timestamp": timestamp, "reducer": reducer, "caller": caller}


@dataclasses.dataclass(slots=True)
class QueryRows:
    """One query's rows (or delta) inside a message."""

    query_id: int
    table: str
    inserts: list[list[Any]]
    deletes: list[list[Any]] = dataclasses.field(default_factory=list)

    def to_wire(self) -> list[Any]:
        return wire_rows(self.query_id, self.table, self.inserts, self.deletes)

    @classmethod
    def from_wire(cls, v: list[Any]) -> Self:
        qid, table, inserts, deletes = v
        return cls(qid, table, inserts, deletes)


@dataclasses.dataclass(slots=True)
class IdentityToken(Message):
    TAG = "identity"
    identity: bytes
    token: str
    connection_id: bytes
    database: str
    schema: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "identity": self.identity, "token": self.token, "connection_id": self.connection_id,
                "database": self.database, "schema": self.schema}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m["identity"], m["token"], m["connection_id"], m["database"], m["schema"])


@dataclasses.dataclass(slots=True)
class SubscribeApplied(Message):
    TAG = "subscribed"
    id: int
    queries: list[QueryRows]     # initial rows as inserts

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "queries": [q.to_wire() for q in self.queries]}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m["id"], [QueryRows.from_wire(q) for q in m["queries"]])


@dataclasses.dataclass(slots=True)
class UnsubscribeApplied(Message):
    TAG = "unsubscribed"
    id: int
    subscription: int
    queries: list[QueryRows]     # rows dropped, as deletes

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "subscription": self.subscription,
                "queries": [q.to_wire() for q in self.queries]}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m["id"], m["subscription"], [QueryRows.from_wire(q) for q in m["queries"]])


@dataclasses.dataclass(slots=True)
class SubscriptionError(Message):
    TAG = "subscription_error"
    id: int
    error: str

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "error": self.error}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m["id"], m["error"])


@dataclasses.dataclass(slots=True)
class TxUpdate:
    offset: int
    timestamp: int
    reducer: str | None
    caller: bytes
    updates: list[QueryRows]

    def to_wire(self) -> dict[str, Any]:
        return wire_tx(self.offset, self.timestamp, self.reducer, self.caller) | {
            "updates": [q.to_wire() for q in self.updates]}

    @classmethod
    def from_wire(cls, t: dict[str, Any]) -> Self:
        return cls(t["offset"], t["timestamp"], t["reducer"], t["caller"],
                   [QueryRows.from_wire(q) for q in t["updates"]])


@dataclasses.dataclass(slots=True)
class TransactionUpdate(Message):
    """The updates of one or more transactions that became durable together, in commit order."""

    TAG = "tx"
    txs: list[TxUpdate]

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "txs": [tx.to_wire() for tx in self.txs]}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        # TxUpdate.from_wire inlined: one call less per transaction, as every client decodes every commit
        rows = QueryRows.from_wire
        return cls([TxUpdate(t["offset"], t["timestamp"], t["reducer"], t["caller"], [rows(q) for q in t["updates"]])
                    for t in m["txs"]])


@dataclasses.dataclass(slots=True)
class ReducerResult(Message):
    TAG = "result"
    id: int
    status: ReducerStatus
    error: str | None
    offset: int
    timestamp: int
    retry_after: float | None = None  # rate limited: resend no sooner than this many seconds from now

    def to_wire(self) -> dict[str, Any]:
        m: dict[str, Any] = {"t": self.TAG, "id": self.id, "status": self.status, "error": self.error,
                             "offset": self.offset, "timestamp": self.timestamp}
        if self.retry_after is not None:
            m["retry_after"] = self.retry_after
        return m

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m["id"], m["status"], m["error"], m["offset"], m["timestamp"], m.get("retry_after"))


@dataclasses.dataclass(slots=True)
class OneOffResult(Message):
    TAG = "sql_result"
    id: int
    columns: list[str]
    types: list[Any]
    rows: list[list[Any]]
    error: str | None
    affected: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "columns": self.columns, "types": self.types, "rows": self.rows,
                "error": self.error, "affected": self.affected}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m["id"], m["columns"], m["types"], m["rows"], m["error"], m.get("affected"))


@dataclasses.dataclass(slots=True)
class ErrorMessage(Message):
    """A request that could not be understood (or that broke a limit); ``id`` is echoed when known."""

    TAG = "error"
    id: int | None
    error: str
    retry_after: float | None = None  # rate limited: the request may be sent again after this many seconds

    def to_wire(self) -> dict[str, Any]:
        m: dict[str, Any] = {"t": self.TAG, "id": self.id, "error": self.error}
        if self.retry_after is not None:
            m["retry_after"] = self.retry_after
        return m

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m.get("id"), m["error"], m.get("retry_after"))


@dataclasses.dataclass(slots=True)
class LogLines(Message):
    """Module log lines, oldest first; with ``follow``, more arrive as they are written."""

    TAG = "log_lines"
    id: int
    lines: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "lines": self.lines}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m["id"], m["lines"])


@dataclasses.dataclass(slots=True)
class Done(Message):
    """A publish or delete finished: ``detail`` says what happened (e.g. the migrations)."""

    TAG = "done"
    id: int
    detail: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TAG, "id": self.id, "detail": self.detail}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Self:
        return cls(m["id"], m["detail"])


ServerMessage = (LogLines | Done | IdentityToken | SubscribeApplied | UnsubscribeApplied | SubscriptionError
                 | TransactionUpdate | ReducerResult | OneOffResult | ErrorMessage)


def _by_tag(union: Any) -> dict[str, Any]:
    table = {cls.TAG: cls for cls in get_args(union)}
    assert len(table) == len(get_args(union)), "two message classes share a tag"
    return table


CLIENT_MESSAGES: dict[str, type[ClientMessage]] = _by_tag(ClientMessage)
"""Tag -> class of every client message, in the order of ``ClientMessage``."""
SERVER_MESSAGES: dict[str, type[ServerMessage]] = _by_tag(ServerMessage)
"""Tag -> class of every server message."""
# Keyed by object: a frame's "t" may be anything until it is looked up.
_CLIENT_PARSERS: dict[object, Callable[[dict[str, Any]], ClientMessage]] = {
    tag: cls.from_wire for tag, cls in CLIENT_MESSAGES.items()}
_SERVER_PARSERS: dict[object, Callable[[dict[str, Any]], ServerMessage]] = {
    tag: cls.from_wire for tag, cls in SERVER_MESSAGES.items()}


# -- encoding and decoding ------------------------------------------------------------------
_packers = threading.local()


def _packb(obj: Any) -> bytes:
    # One Packer per thread (a Packer is not thread-safe): ``msgpack.packb`` builds a new one per
    # call, which is half the cost of packing a result.
    try:
        pack = _packers.pack
    except AttributeError:
        pack = _packers.pack = msgpack.Packer(use_bin_type=True).pack
    packed: bytes = pack(obj)
    return packed


def encode(msg: ClientMessage | ServerMessage) -> bytes:
    """The frame of a message."""
    return _packb(msg.to_wire())


def decode_client(frame: bytes) -> ClientMessage:
    """Parse a client frame; ProtocolError (naming the problem) for anything malformed."""
    m = _unpack(frame)
    kind = m.get("t")
    try:
        parse = _CLIENT_PARSERS.get(kind)
    except TypeError:  # an unhashable tag (a list, a map): no type of ours
        parse = None
    if parse is None:
        raise ProtocolError(f"unknown message type {kind!r}; expected one of: {', '.join(CLIENT_MESSAGES)}")
    return parse(m)


def decode_server(frame: WireData) -> ServerMessage:
    """Parse a server frame (clients use this)."""
    m = _unpack(frame)
    kind = m.get("t")
    try:
        parse = _SERVER_PARSERS.get(kind)
    except TypeError:  # an unhashable tag
        parse = None
    if parse is None:
        raise ProtocolError(f"unknown server message type {kind!r}")
    return parse(m)


def _unpack(frame: WireData) -> dict[str, Any]:
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError("frames must be binary (msgpack), not text")
    try:
        m = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
        raise ProtocolError(f"malformed msgpack: {str(exc) or type(exc).__name__}") from None
    if not isinstance(m, dict):
        raise ProtocolError(f"a message must be a msgpack map, got {type(m).__name__}")
    return m


# -- the server's hot paths: the same bytes without the dataclasses ----------------------------
_RESULT, _TX = ReducerResult.TAG, TransactionUpdate.TAG  # globals: cheaper than the class attributes


def encode_result(request_id: int, status: str, error: str | None, offset: int, timestamp: int) -> bytes:
    """``encode(ReducerResult(...))`` without the dataclass: one per call, on the hot path."""
    return _packb({"t": _RESULT, "id": request_id, "status": status, "error": error, "offset": offset,
                   "timestamp": timestamp})


def encode_transaction_update(txs: list[tuple[dict[str, Any], list[list[Any]]]]) -> bytes:
    """A ``tx`` frame from each transaction's ``wire_tx`` and its ``wire_rows`` deltas, packed in
    one call. Equals ``encode(TransactionUpdate(...))``."""
    return _packb({"t": _TX, "txs": [header | {"updates": updates} for header, updates in txs]})


# -- replies built from packed parts (large answers are encoded a slice at a time) --------------
def array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` items."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def pack_items(items: list[Any]) -> bytes:
    """The packed ``items`` one after the other: an array's body, to follow ``array_header``."""
    return _packb(items)[len(array_header(len(items))):]


def pack(value: Any) -> bytes:
    """One value packed as the protocol packs it."""
    return _packb(value)


def _fields(pairs: list[tuple[str, Any]]) -> bytes:
    return b"".join(_packb(k) + _packb(v) for k, v in pairs)


class SqlResultFrame:
    """An ``sql_result`` built a chunk of rows at a time, in place: ``add`` packed rows (``pack_items``),
    then ``finish``. Decodes as ``OneOffResult(request_id, columns, types, rows, None)``; the rows'
    array has a 32-bit length (filled in at the end), so nothing is copied to finish it."""

    def __init__(self, request_id: int, columns: list[str], types: list[Any]) -> None:
        self.frame = bytearray(b"\x87" + _fields([("t", OneOffResult.TAG), ("id", request_id), ("columns", columns),
                                                  ("types", types)]) + _packb("rows") + b"\xdd\0\0\0\0")
        self._count_at = len(self.frame) - 4
        self.count = 0

    def add(self, packed_rows: bytes, count: int) -> None:
        """Append ``count`` rows packed by ``pack_items``; then ``add`` more or ``finish``."""
        self.frame += packed_rows
        self.count += count

    def finish(self) -> bytearray:
        """The whole frame, to send as is; the object is done."""
        self.frame[self._count_at:self._count_at + 4] = self.count.to_bytes(4, "big")
        self.frame += _fields([("error", None), ("affected", None)])
        return self.frame


def encode_query_rows_packed(kind: str, request_id: int, subscription: int | None,
                             queries: list[tuple[int, str, int, bytes]]) -> bytes:
    """``encode(SubscribeApplied(...))`` (``kind`` "subscribed": rows as inserts) or
    ``encode(UnsubscribeApplied(...))`` ("unsubscribed": rows as deletes) from each query's
    (query id, table, row count, packed rows)."""
    applied = kind == SubscribeApplied.TAG
    if not applied and kind != UnsubscribeApplied.TAG:
        raise ValueError(f"not a rows message: {kind!r}")
    head = [("t", kind), ("id", request_id)] + ([] if applied else [("subscription", subscription)])
    parts = [bytes((0x80 | (len(head) + 1),)), _fields(head), _packb("queries"), array_header(len(queries))]
    empty = array_header(0)
    for qid, table, count, body in queries:
        rows = array_header(count) + body
        parts += [b"\x94", _packb(qid), _packb(table)] + ([rows, empty] if applied else [empty, rows])
    return b"".join(parts)
