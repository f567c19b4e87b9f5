"""THE wire protocol: its messages and their msgpack codec. Server, CLI and TUI all use this module.

Every frame is one msgpack map with a type tag ``"t"``; requests carry an
``"id"`` (a client-chosen unsigned integer) that the reply echoes.
``docs/protocol.md`` is the full reference.

The message classes, each owning its tag and its map, and the tag tables
``CLIENT_MESSAGES`` and ``SERVER_MESSAGES`` are defined in ``db_core.messages``
and re-exported here, so this module stays the one place the wire messages are
imported from. Here: ``encode`` (message -> frame), ``decode_client`` and
``decode_server`` (frame -> message, ``ProtocolError`` for anything
malformed), and the server's hot paths (``encode_result``,
``encode_transaction_update``, ``SqlResultFrame``, ``encode_query_rows_packed``),
which build the same bytes without the dataclasses; tests hold them equal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgpack

from .messages import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    CallReducer,
    ClientMessage,
    DeleteDatabase,
    Done,
    ErrorMessage,
    IdentityToken,
    LogLines,
    Logs,
    Message,
    OneOffQuery,
    OneOffResult,
    ProtocolError,
    Publish,
    QueryRows,
    ReducerResult,
    ReducerStatus,
    ServerMessage,
    Subscribe,
    SubscribeApplied,
    SubscriptionError,
    TransactionUpdate,
    TxUpdate,
    Unsubscribe,
    UnsubscribeApplied,
    wire_rows,
    wire_tx,
)

__all__ = [
    # the protocol's constants
    "SUBPROTOCOL", "INVALID_TOKEN", "WireData",
    # the messages (db_core.messages)
    "Message", "ProtocolError", "ReducerStatus", "ClientMessage", "ServerMessage", "CLIENT_MESSAGES",
    "SERVER_MESSAGES", "CallReducer", "Subscribe", "Unsubscribe", "OneOffQuery", "Logs", "Publish",
    "DeleteDatabase", "IdentityToken", "SubscribeApplied", "UnsubscribeApplied", "SubscriptionError",
    "TransactionUpdate", "TxUpdate", "QueryRows", "ReducerResult", "OneOffResult", "ErrorMessage", "LogLines",
    "Done", "wire_rows", "wire_tx",
    # the codec
    "encode", "decode_client", "decode_server",
    # the server's hot paths
    "encode_result", "encode_transaction_update", "array_header", "pack_items", "pack", "SqlResultFrame",
    "encode_query_rows_packed",
]

SUBPROTOCOL = "qc.msgpack.v1"

INVALID_TOKEN = "invalid token: "
"""How the reason of the 1008 close that refuses a token starts (docs/protocol.md 2.3, 11.4)."""

WireData = bytes | bytearray | memoryview | str
"""What a websocket hands over: a text frame is refused (ProtocolError), only binary is msgpack."""

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
