"""THE wire messages, and their msgpack codec. Server, CLI and TUI all use this module.

Every frame is one msgpack map with a type tag ``"t"``; requests carry an
``"id"`` (a client-chosen unsigned integer) that the reply echoes. Rows travel
as arrays of column values in declaration order (Identity and bytes as bin,
Timestamp as integer microseconds, enums by variant name, options as nil or
the value, lists as arrays); the column types come in the ``identity``
message's schema. ``docs/protocol.md`` is the full reference.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import msgpack

from .errors import DbError

SUBPROTOCOL = "qc.msgpack.v1"


class ProtocolError(DbError):
    """A frame that is not a valid message; the text says what is wrong."""


# -- client -> server ---------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class CallReducer:
    id: int
    reducer: str
    args: list[Any]


@dataclasses.dataclass(slots=True)
class Subscribe:
    id: int
    queries: list[str]


@dataclasses.dataclass(slots=True)
class Unsubscribe:
    id: int
    subscription: int  # the id of the Subscribe request


@dataclasses.dataclass(slots=True)
class OneOffQuery:
    id: int
    query: str


@dataclasses.dataclass(slots=True)
class Logs:
    """Owner only: the last ``n`` module log lines (all if None) at ``level`` or above; ``follow`` streams more."""

    id: int
    n: int | None = None
    level: str | None = None
    follow: bool = False


@dataclasses.dataclass(slots=True)
class Publish:
    """Create or update the endpoint's database from module source (owner only for an update)."""

    id: int
    module: str
    filename: str = "module.py"
    clear: bool = False


@dataclasses.dataclass(slots=True)
class DeleteDatabase:
    """Owner only: delete the endpoint's database and its data."""

    id: int


ClientMessage = CallReducer | Subscribe | Unsubscribe | OneOffQuery | Logs | Publish | DeleteDatabase


# -- server -> client -----------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class IdentityToken:
    identity: bytes
    token: str
    connection_id: bytes
    database: str
    schema: dict[str, Any]


@dataclasses.dataclass(slots=True)
class QueryRows:
    """One query's rows (or delta) inside a message."""

    query_id: int
    table: str
    inserts: list[list[Any]]
    deletes: list[list[Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class SubscribeApplied:
    id: int
    queries: list[QueryRows]     # initial rows as inserts


@dataclasses.dataclass(slots=True)
class UnsubscribeApplied:
    id: int
    subscription: int
    queries: list[QueryRows]     # rows dropped, as deletes


@dataclasses.dataclass(slots=True)
class SubscriptionError:
    id: int
    error: str


@dataclasses.dataclass(slots=True)
class TxUpdate:
    offset: int
    timestamp: int
    reducer: str | None
    caller: bytes
    updates: list[QueryRows]


@dataclasses.dataclass(slots=True)
class TransactionUpdate:
    """The updates of one or more transactions that became durable together, in commit order."""

    txs: list[TxUpdate]


@dataclasses.dataclass(slots=True)
class ReducerResult:
    id: int
    status: str                  # committed | no_changes | failed | internal_error | refused
    error: str | None
    offset: int
    timestamp: int
    retry_after: float | None = None  # rate limited: resend no sooner than this many seconds from now


@dataclasses.dataclass(slots=True)
class OneOffResult:
    id: int
    columns: list[str]
    types: list[Any]
    rows: list[list[Any]]
    error: str | None
    affected: int | None = None


@dataclasses.dataclass(slots=True)
class ErrorMessage:
    """A request that could not be understood (or that broke a limit); ``id`` is echoed when known."""

    id: int | None
    error: str
    retry_after: float | None = None  # rate limited: the request may be sent again after this many seconds


@dataclasses.dataclass(slots=True)
class LogLines:
    """Module log lines, oldest first; with ``follow``, more arrive as they are written."""

    id: int
    lines: list[str]


@dataclasses.dataclass(slots=True)
class Done:
    """A publish or delete finished: ``detail`` says what happened (e.g. the migrations)."""

    id: int
    detail: list[str]


ServerMessage = (LogLines | Done | IdentityToken | SubscribeApplied | UnsubscribeApplied | SubscriptionError | TransactionUpdate
                 | ReducerResult | OneOffResult | ErrorMessage)

STATUSES = ("committed", "no_changes", "failed", "internal_error", "refused")


# -- encoding ----------------------------------------------------------------------------
def wire_rows(query_id: int, table: str, inserts: list[Any], deletes: list[Any]) -> list[Any]:
    """One query's rows as a message carries them (``QueryRows`` on the wire)."""
    return [query_id, table, inserts, deletes]


def _rows(q: QueryRows) -> list[Any]:
    return wire_rows(q.query_id, q.table, q.inserts, q.deletes)


def _unrows(v: Any) -> QueryRows:
    qid, table, ins, dels = v
    return QueryRows(qid, table, ins, dels)


_TO_WIRE: dict[type, Any] = {
    CallReducer: lambda m: {"t": "call", "id": m.id, "reducer": m.reducer, "args": m.args},
    Subscribe: lambda m: {"t": "subscribe", "id": m.id, "queries": m.queries},
    Unsubscribe: lambda m: {"t": "unsubscribe", "id": m.id, "subscription": m.subscription},
    OneOffQuery: lambda m: {"t": "sql", "id": m.id, "query": m.query},
    Logs: lambda m: {"t": "logs", "id": m.id, "n": m.n, "level": m.level, "follow": m.follow},
    Publish: lambda m: {"t": "publish", "id": m.id, "module": m.module, "filename": m.filename, "clear": m.clear},
    DeleteDatabase: lambda m: {"t": "delete", "id": m.id},
    LogLines: lambda m: {"t": "log_lines", "id": m.id, "lines": m.lines},
    Done: lambda m: {"t": "done", "id": m.id, "detail": m.detail},
    IdentityToken: lambda m: {"t": "identity", "identity": m.identity, "token": m.token,
                              "connection_id": m.connection_id, "database": m.database, "schema": m.schema},
    SubscribeApplied: lambda m: {"t": "subscribed", "id": m.id, "queries": [_rows(q) for q in m.queries]},
    UnsubscribeApplied: lambda m: {"t": "unsubscribed", "id": m.id, "subscription": m.subscription,
                                   "queries": [_rows(q) for q in m.queries]},
    SubscriptionError: lambda m: {"t": "subscription_error", "id": m.id, "error": m.error},
    TransactionUpdate: lambda m: {"t": "tx", "txs": [wire_tx(tx.offset, tx.timestamp, tx.reducer, tx.caller)
                                                     | {"updates": [_rows(q) for q in tx.updates]} for tx in m.txs]},
    ReducerResult: lambda m: {"t": "result", "id": m.id, "status": m.status, "error": m.error, "offset": m.offset,
                              "timestamp": m.timestamp} | _retry(m.retry_after),
    OneOffResult: lambda m: {"t": "sql_result", "id": m.id, "columns": m.columns, "types": m.types, "rows": m.rows,
                             "error": m.error, "affected": m.affected},
    ErrorMessage: lambda m: {"t": "error", "id": m.id, "error": m.error} | _retry(m.retry_after),
}


def _retry(seconds: float | None) -> dict[str, Any]:
    return {} if seconds is None else {"retry_after": seconds}


def to_wire(msg: ClientMessage | ServerMessage) -> dict[str, Any]:
    """The msgpack map for a message."""
    convert = _TO_WIRE.get(type(msg))
    if convert is None:
        raise TypeError(f"not a protocol message: {type(msg).__name__}")
    return convert(msg)


_packers = threading.local()


def _packb(obj: Any) -> bytes:
    # One Packer per thread (a Packer is not thread-safe): ``msgpack.packb`` builds a new one per
    # call, which is half the cost of packing a result.
    try:
        pack = _packers.pack
    except AttributeError:
        pack = _packers.pack = msgpack.Packer(use_bin_type=True).pack
    return pack(obj)


def encode(msg: ClientMessage | ServerMessage) -> bytes:
    return _packb(to_wire(msg))


def encode_result(request_id: int, status: str, error: str | None, offset: int, timestamp: int) -> bytes:
    """``encode(ReducerResult(...))`` without the dataclass: one per call, on the hot path."""
    return _packb({"t": "result", "id": request_id, "status": status, "error": error, "offset": offset,
                   "timestamp": timestamp})


def _field(m: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if name not in m:
        raise ProtocolError(f"{what} message needs the field `{name}`")
    value = m[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProtocolError(f"field `{name}` of a {what} message must be {expected}, got {type(value).__name__}")
    return value


def _request_id(m: dict[str, Any], what: str) -> int:
    rid = _field(m, "id", int, what)
    if rid < 0 or rid >= 1 << 64:
        raise ProtocolError("request ids are unsigned 64-bit integers")
    return rid


CLIENT_TYPES = ("call", "subscribe", "unsubscribe", "sql", "logs", "publish", "delete")


def decode_client(frame: bytes) -> ClientMessage:
    """Parse a client frame; ProtocolError (naming the problem) for anything malformed."""
    m = _unpack(frame)
    kind = m.get("t")
    if kind == "call":
        # The common, well-formed call first; anything else is checked field by field below.
        rid, reducer, args = m.get("id"), m.get("reducer"), m.get("args")
        if type(rid) is int and 0 <= rid < 1 << 64 and type(reducer) is str and type(args) is list:
            return CallReducer(rid, reducer, args)
        args = _field(m, "args", list, "call")
        return CallReducer(_request_id(m, "call"), _field(m, "reducer", str, "call"), args)
    if kind == "subscribe":
        queries = _field(m, "queries", list, "subscribe")
        if not queries or not all(isinstance(q, str) for q in queries):
            raise ProtocolError("field `queries` of a subscribe message must be a non-empty list of strings")
        return Subscribe(_request_id(m, "subscribe"), queries)
    if kind == "unsubscribe":
        return Unsubscribe(_request_id(m, "unsubscribe"), _field(m, "subscription", int, "unsubscribe"))
    if kind == "sql":
        return OneOffQuery(_request_id(m, "sql"), _field(m, "query", str, "sql"))
    if kind == "logs":
        n = m.get("n")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise ProtocolError("field `n` of a logs message must be a non-negative integer or nil")
        level = m.get("level")
        if level is not None and (not isinstance(level, str) or level.upper() not in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")):
            raise ProtocolError("field `level` of a logs message must be one of trace, debug, info, warn, error")
        return Logs(_request_id(m, "logs"), n, level, bool(m.get("follow", False)))
    if kind == "publish":
        filename = m.get("filename", "module.py")
        if not isinstance(filename, str):
            raise ProtocolError("field `filename` of a publish message must be str")
        return Publish(_request_id(m, "publish"), _field(m, "module", str, "publish"), filename, bool(m.get("clear", False)))
    if kind == "delete":
        return DeleteDatabase(_request_id(m, "delete"))
    raise ProtocolError(f"unknown message type {kind!r}; expected one of: {', '.join(CLIENT_TYPES)}")


def decode_server(frame: bytes) -> ServerMessage:
    """Parse a server frame (clients use this)."""
    m = _unpack(frame)
    kind = m.get("t")
    if kind == "identity":
        return IdentityToken(m["identity"], m["token"], m["connection_id"], m["database"], m["schema"])
    if kind == "subscribed":
        return SubscribeApplied(m["id"], [_unrows(q) for q in m["queries"]])
    if kind == "unsubscribed":
        return UnsubscribeApplied(m["id"], m["subscription"], [_unrows(q) for q in m["queries"]])
    if kind == "subscription_error":
        return SubscriptionError(m["id"], m["error"])
    if kind == "tx":
        return TransactionUpdate([
            TxUpdate(t["offset"], t["timestamp"], t["reducer"], t["caller"], [_unrows(q) for q in t["updates"]])
            for t in m["txs"]
        ])
    if kind == "result":
        return ReducerResult(m["id"], m["status"], m["error"], m["offset"], m["timestamp"], m.get("retry_after"))
    if kind == "sql_result":
        return OneOffResult(m["id"], m["columns"], m["types"], m["rows"], m["error"], m.get("affected"))
    if kind == "error":
        return ErrorMessage(m.get("id"), m["error"], m.get("retry_after"))
    if kind == "log_lines":
        return LogLines(m["id"], m["lines"])
    if kind == "done":
        return Done(m["id"], m["detail"])
    raise ProtocolError(f"unknown server message type {kind!r}")


def _unpack(frame: bytes) -> dict[str, Any]:
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError("frames must be binary (msgpack), not text")
    try:
        m = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
        raise ProtocolError(f"malformed msgpack: {str(exc) or type(exc).__name__}") from None
    if not isinstance(m, dict):
        raise ProtocolError(f"a message must be a msgpack map, got {type(m).__name__}")
    return m


# -- fan-out ---------------------------------------------------------------------------------
def wire_tx(offset: int, timestamp: int, reducer: str | None, caller: bytes) -> dict[str, Any]:
    """A transaction's entry of a ``tx`` frame without its ``updates``; built once per transaction."""
    return {"offset": offset, "timestamp": timestamp, "reducer": reducer, "caller": caller}


def encode_transaction_update(txs: list[tuple[dict[str, Any], list[list[Any]]]]) -> bytes:
    """A ``tx`` frame from each transaction's ``wire_tx`` and its ``wire_rows`` deltas, packed in
    one call. Equals ``encode(TransactionUpdate(...))``."""
    return _packb({"t": "tx", "txs": [header | {"updates": updates} for header, updates in txs]})


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
        self.frame = bytearray(b"\x87" + _fields([("t", "sql_result"), ("id", request_id), ("columns", columns),
                                                  ("types", types)]) + _packb("rows") + b"\xdd\0\0\0\0")
        self._count_at = len(self.frame) - 4
        self.count = 0

    def add(self, packed_rows: bytes, count: int) -> None:
        self.frame += packed_rows
        self.count += count

    def finish(self) -> bytearray:
        self.frame[self._count_at:self._count_at + 4] = self.count.to_bytes(4, "big")
        self.frame += _fields([("error", None), ("affected", None)])
        return self.frame


def encode_query_rows_packed(kind: str, request_id: int, subscription: int | None,
                             queries: list[tuple[int, str, int, bytes]]) -> bytes:
    """``encode(SubscribeApplied(...))`` (``kind`` "subscribed": rows as inserts) or
    ``encode(UnsubscribeApplied(...))`` ("unsubscribed": rows as deletes) from each query's
    (query id, table, row count, packed rows)."""
    head = [("t", kind), ("id", request_id)] + ([("subscription", subscription)] if kind == "unsubscribed" else [])
    parts = [bytes((0x80 | (len(head) + 1),)), _fields(head), _packb("queries"), array_header(len(queries))]
    empty = array_header(0)
    for qid, table, count, body in queries:
        rows = array_header(count) + body
        parts += [b"\x94", _packb(qid), _packb(table)] + ([rows, empty] if kind == "subscribed" else [empty, rows])
    return b"".join(parts)
