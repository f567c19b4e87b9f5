"""How the datastore turns rows and transactions into bytes for the commit log and snapshots.

Rows travel as tuples of wire values (msgpack-friendly). A row shorter than
its table (written before columns were appended) is padded with the defaults.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import msgpack

from .schema import ReducerDef, TableDef, _identity
from .tx import TableUpdate, TxData
from .types import ConnectionId, Identity, Timestamp

FORMAT = 1

WireRows = tuple[list[Any], list[Any]]  # one table's (inserts, deletes), each row a tuple of wire values


class TableCodec:
    """Encode/decode the rows of one table."""

    __slots__ = ("tdef", "encode", "decode", "decode_columns", "ncols", "_last")

    def __init__(self, tdef: TableDef) -> None:
        self.tdef = tdef
        names = [c.name for c in tdef.columns]
        self.ncols = len(names)
        getter: Callable[[Any], Any] = attrgetter(*names)
        to_wire = [c.type.to_wire for c in tdef.columns]
        from_wire = [c.type.from_wire for c in tdef.columns]
        defaults = [c.default for c in tdef.columns]
        row_type = tdef.row_type
        ncols = self.ncols

        if len(names) == 1:
            single = getter
            getter = lambda row: (single(row),)  # noqa: E731
        if all(f is _identity for f in to_wire):
            self.encode: Callable[[Any], Any] = getter
        else:
            self.encode = lambda row: tuple(f(v) for f, v in zip(to_wire, getter(row), strict=True))

        active = [(i, f) for i, f in enumerate(from_wire) if f is not _identity]

        def decode(values: Any) -> Any:
            if len(values) != ncols:
                values = _pad(values, ncols, defaults, tdef.name)
                return row_type(*(f(v) for f, v in zip(from_wire, values, strict=True)))
            if not active:
                return row_type(*values)
            vals = list(values)
            for i, f in active:
                vals[i] = f(vals[i])
            return row_type(*vals)

        def decode_columns(columns: list[Any], count: int) -> list[Any]:
            # Column-wise decoding: one C-level map per column, then one constructor call per row.
            while len(columns) < ncols:
                columns.append([to_wire[len(columns)](defaults[len(columns)])] * count)
            cols = [_decode_column(col, f, count) for f, col in zip(from_wire, columns, strict=False)]  # extra: ignored
            return bulk(*cols) if count else []

        bulk = _bulk_builder(row_type, names)

        self.decode = decode
        self.decode_columns = decode_columns
        # The last update encoded, with its wire rows (one tuple: read and replaced atomically).
        self._last: tuple[TableUpdate, WireRows] | None = None

    def encode_update(self, upd: TableUpdate) -> WireRows:
        """``upd``'s inserts and deletes as wire values.

        The commit log encodes each update as it appends it; delivery asks again for the same
        update right after (the commit listeners run next) and gets the very same lists, so rows
        are encoded once for the log and the wire. Only the latest update is remembered.
        """
        last = self._last
        if last is not None and last[0] is upd:
            return last[1]
        enc = self.encode
        rows = ([enc(r) for r in upd.inserts], [enc(r) for r in upd.deletes])
        self._last = (upd, rows)
        return rows


def _bulk_builder(row_type: type, names: list[str]) -> Callable[..., list[Any]]:
    """A loader that builds rows from columns by setting slots directly.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` per
    field; the slot descriptors are twice as fast, which is most of start-up
    time at a million rows. Values are already checked: they come from our log.
    """
    args = ", ".join(f"c{i}" for i in range(len(names)))
    sets = "; ".join(f"s{i}(o, v{i})" for i in range(len(names)))
    vals = ", ".join(f"v{i}" for i in range(len(names)))
    src = (
        f"def bulk({args}):\n"
        f"    out = []\n"
        f"    append = out.append\n"
        f"    for {vals}{',' if len(names) == 1 else ''} in zip({args}):\n"
        f"        o = new(row_type); {sets}; append(o)\n"
        f"    return out\n"
    )
    namespace: dict[str, Any] = {"new": object.__new__, "row_type": row_type}
    for i, name in enumerate(names):
        namespace[f"s{i}"] = row_type.__dict__[name].__set__
    exec(src, namespace)  # noqa: S102 - generated from column names we validated
    bulk: Callable[..., list[Any]] = namespace["bulk"]
    return bulk


def _pad(values: Any, ncols: int, defaults: list[Any], table: str) -> list[Any]:
    padded: list[Any] = list(values)
    if len(padded) > ncols:
        raise ValueError(f"stored row of `{table}` has {len(padded)} columns, the table has {ncols}")
    for i in range(len(padded), ncols):
        padded.append(defaults[i])
    return padded


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


_packer_opts = dict(use_bin_type=True, default=_default)


class TxCodec:
    """Commit-log records: one per committed, non-empty transaction."""

    def __init__(self, tables: dict[str, TableCodec], reducers: dict[str, ReducerDef]) -> None:
        self.tables = tables
        self.reducers = reducers
        self._packer = msgpack.Packer(**_packer_opts)
        # Per reducer: None when its arguments are already wire values (the common case).
        self._arg_encoders = {
            name: None if all(t.to_wire is _identity for _, t in r.params) else [t.to_wire for _, t in r.params]
            for name, r in reducers.items()
        }

    def encode(self, tx: TxData) -> bytes:
        args: Any = tx.args
        encoders = self._arg_encoders.get(tx.reducer) if tx.reducer else None
        if encoders is not None:
            args = [f(a) for f, a in zip(encoders, args, strict=True)]
        tables = self.tables
        changes = []
        for name, upd in tx.tables.items():
            changes.append((name, *tables[name].encode_update(upd)))
        record: bytes = self._packer.pack((tx.timestamp, tx.reducer, tx.caller_identity, tx.caller_connection_id,
                                           args, changes, tx.sequences or None))
        return record

    def decode(self, offset: int, payload: bytes) -> TxData:
        ts, reducer, caller, conn, args, changes, sequences = msgpack.unpackb(payload, raw=False, use_list=True)
        tables: dict[str, TableUpdate] = {}
        for name, ins, dels in changes:
            codec = self.tables.get(name)
            if codec is None:
                raise ValueError(f"log record {offset} names unknown table `{name}`")
            tables[name] = TableUpdate(name, [codec.decode(v) for v in ins], [codec.decode(v) for v in dels])
        return TxData(offset, Timestamp(ts), reducer, Identity(caller), ConnectionId(conn) if conn else None,
                      tuple(args), tables, sequences or {})


def _encode_column(values: list[Any], kind: str) -> Any:
    """A snapshot column: packed int64s, dictionary-encoded, or a plain list.

    The packed forms decode without a temporary Python object per row, which
    keeps start-up fast and the heap unfragmented at a million rows.
    """
    n = len(values)
    if n >= 64 and kind in ("int", "timestamp"):
        try:
            return {"i64": array("q", values).tobytes()}
        except OverflowError:
            return values
    if n >= 64 and kind in ("identity", "connection_id", "bytes", "str", "bool", "enum", "option"):
        try:
            uniques: dict[Any, int] = {}
            idx = array("I", [uniques.setdefault(v, len(uniques)) for v in values])
        except TypeError:  # unhashable wire values (lists inside options)
            return values
        if len(uniques) * 4 <= n:
            return {"dict": list(uniques), "idx": idx.tobytes()}
    return values


def _decode_column(col: Any, from_wire: Callable[[Any], Any], count: int) -> list[Any]:
    if isinstance(col, dict):
        if "i64" in col:
            packed = array("q")
            packed.frombytes(col["i64"])
            return packed.tolist() if from_wire is _identity else list(map(from_wire, packed))
        values = [from_wire(v) for v in col["dict"]]
        idx = array("I")
        idx.frombytes(col["idx"])
        return list(map(values.__getitem__, idx))
    return col if from_wire is _identity else list(map(from_wire, col))


def encode_snapshot(offset: int, schema: dict[str, Any], tables: Iterable[tuple[TableCodec, list[Any], dict[str, int]]],
                    timestamp: int = 0) -> bytes:
    """All tables' rows, column-wise (fast to decode), plus sequences and the schema."""
    out: dict[str, Any] = {}
    for codec, rows, sequences in tables:
        enc = codec.encode
        encoded = [enc(r) for r in rows]
        kinds = [c.type.kind for c in codec.tdef.columns]
        columns = [list(c) for c in zip(*encoded, strict=True)] if encoded else [[] for _ in range(codec.ncols)]
        out[codec.tdef.name] = {
            "count": len(rows),
            "columns": [_encode_column(col, kind) for col, kind in zip(columns, kinds, strict=True)],
            "sequences": sequences,
        }
    packed: bytes = msgpack.packb({"format": FORMAT, "offset": offset, "timestamp": timestamp, "schema": schema,
                                   "tables": out}, **_packer_opts)
    return packed


def decode_snapshot(payload: bytes) -> dict[str, Any]:
    snapshot: dict[str, Any] = msgpack.unpackb(payload, raw=False, use_list=True)
    return snapshot
