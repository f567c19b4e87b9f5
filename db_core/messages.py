"""The wire messages: one dataclass per message type, owning its tag and its map.

Every frame is one msgpack map with a type tag ``"t"``; requests carry an
``"id"`` (a client-chosen unsigned integer) that the reply echoes. Rows travel
as arrays of column values in declaration order (Identity and bytes as bin,
Timestamp as integer microseconds, enums by variant name, options as nil or
the value, lists as arrays); the column types come in the ``identity``
message's schema. ``docs/protocol.md`` is the full reference.

Each message class owns its tag (``TAG``) and its map (``to_wire`` and
``from_wire``); ``CLIENT_MESSAGES`` and ``SERVER_MESSAGES``, the tables from
tag to class, are built from the classes. Client messages are checked field
by field as they are parsed (``ProtocolError`` names the field); server
messages are trusted. Packing the maps into frames is ``db_core.protocol``'s
job, and that is where everyone imports these classes from.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, Self, get_args

from .errors import DbError
from .logs import LEVELS

ReducerStatus = Literal["committed", "no_changes", "failed", "internal_error", "refused"]
"""How a call ended: ``committed`` (it changed rows), ``no_changes`` (it ran and wrote
nothing), ``failed`` (the reducer refused: rolled back, ``error`` says why),
``internal_error`` (a bug in the module, or the database cannot write) or ``refused``
(it did not run: rate limited, or the server could not take it)."""


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
