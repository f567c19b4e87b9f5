"""The module API: ``@table``, ``@reducer``, lifecycle hooks, ``ReducerContext``, ``log``.

A module is a plain Python module; ``ModuleDef.from_module`` collects the
tables and reducers declared in it. Table handles (``ctx.db.<table>``) are made
once per database and write through the transaction held in a shared slot.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast, dataclass_transform, overload

from .errors import ModuleLoadError, SchemaError
from .logs import LogRecord
from .schema import LIFECYCLE_KINDS, ReducerDef, TableDef, build_reducer, build_table
from .table import BTreeIndex, Table, UniqueIndex
from .tx import Transaction
from .types import ConnectionId, Identity, Timestamp

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


# -- decorators ------------------------------------------------------------------
@overload
def table(cls: C, /) -> C: ...
@overload
def table(*, name: str | None = None, public: bool = False) -> Callable[[C], C]: ...
# A type checker then knows a row's fields and constructor, as for a frozen dataclass.
@dataclass_transform(frozen_default=True)
def table(cls: C | None = None, *, name: str | None = None, public: bool = False) -> C | Callable[[C], C]:
    """Declare a table: the class becomes a frozen dataclass row type. Private unless ``public=True``."""

    def wrap(c: C) -> C:
        # dataclass(slots=True) returns a new class with the same fields: the type the author wrote
        return cast(C, build_table(c, name or c.__name__.lower(), public))

    return wrap(cls) if cls is not None else wrap


def _mark(func: F, lifecycle: str | None) -> F:
    if getattr(func, "__reducer__", None) is not None:
        raise SchemaError(f"`{func.__name__}` is declared as a reducer twice")
    func.__reducer__ = build_reducer(func, lifecycle)  # type: ignore[attr-defined]  # the mark the loader finds
    return func


def reducer(func: F) -> F:
    """Declare a reducer: ``def name(ctx: ReducerContext, arg: T, ...)``; each call is one transaction."""
    return _mark(func, None)


def init(func: F) -> F:
    """Runs once when the database is first created (and after a clear)."""
    return _mark(func, "init")


def client_connected(func: F) -> F:
    """Runs when a client connects; raising rejects the connection."""
    return _mark(func, "client_connected")


def client_disconnected(func: F) -> F:
    """Runs when a client disconnects (and at start-up for connections a crash left open)."""
    return _mark(func, "client_disconnected")


# -- the loaded module -------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class ModuleDef:
    """The tables and reducers of one module, validated."""

    name: str
    file: str | None
    tables: dict[str, TableDef]
    reducers: dict[str, ReducerDef]
    lifecycle: dict[str, ReducerDef]

    @classmethod
    def from_module(cls, module: ModuleType) -> "ModuleDef":
        tables: dict[str, TableDef] = {}
        reducers: dict[str, ReducerDef] = {}
        lifecycle: dict[str, ReducerDef] = {}
        for value in list(vars(module).values()):
            tdef = getattr(value, "__table__", None) if isinstance(value, type) else None
            if isinstance(tdef, TableDef) and not tdef.system:
                other = tables.get(tdef.name)
                if other is not None and other is not tdef:
                    raise SchemaError(f"two tables are named `{tdef.name}`")
                tables[tdef.name] = tdef
            rdef = getattr(value, "__reducer__", None) if callable(value) else None
            if isinstance(rdef, ReducerDef):
                if rdef.lifecycle:
                    other_r = lifecycle.get(rdef.lifecycle)
                    if other_r is not None and other_r is not rdef:
                        raise SchemaError(f"two `@{rdef.lifecycle}` reducers: `{other_r.name}` and `{rdef.name}`")
                    lifecycle[rdef.lifecycle] = rdef
                else:
                    reducers[rdef.name] = rdef
        for kind, rdef in lifecycle.items():
            if rdef.name in reducers:
                raise SchemaError(f"`{rdef.name}` is both a reducer and the `@{kind}` hook")
        assert set(lifecycle) <= set(LIFECYCLE_KINDS)
        file = getattr(module, "__file__", None)
        return cls(name=module.__name__, file=file, tables=tables, reducers=reducers, lifecycle=lifecycle)

    def all_reducers(self) -> dict[str, ReducerDef]:
        return {**self.reducers, **{r.name: r for r in self.lifecycle.values()}}


def load_module(source: ModuleType | str | os.PathLike[str]) -> ModuleType:
    """A module object as is, or import a ``.py`` file under a private name."""
    if isinstance(source, ModuleType):
        return source
    path = Path(source).resolve()
    if not path.is_file():
        raise ModuleLoadError(f"module file not found: {path}")
    name = f"_qc_module_{path.stem}_{abs(hash(str(path))) & 0xFFFFFFFF:x}_{time.monotonic_ns()}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModuleLoadError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except SchemaError:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:  # noqa: BLE001 - sys.exit() or KeyboardInterrupt in a module is a failed load, not ours
        sys.modules.pop(name, None)
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if f.filename == str(path)),
                     path.name)
        raise ModuleLoadError(f"cannot import {path.name}: {type(exc).__name__}: {exc} (at {where})") from None
    return module


# -- reducer context and table handles ----------------------------------------------
class TxSlot:
    """Holds the running transaction; handles refuse to work outside one."""

    __slots__ = ("tx",)

    def __init__(self) -> None:
        self.tx: Transaction | None = None


def _no_tx() -> Transaction:
    raise RuntimeError("ctx.db can only be used while its reducer is running")


class TableHandle:
    """``ctx.db.<table>``: insert, delete, iter, count, plus a handle per indexed column."""

    def __init__(self, table: Table, slot: TxSlot) -> None:
        self._table = table
        self._slot = slot
        tdef = table.tdef
        self._autoinc = tdef.autoinc
        for col in (tdef.primary_key, *tdef.unique):
            if col is not None:
                setattr(self, col, UniqueHandle(table, slot, table.index_for(col), col == tdef.primary_key))  # type: ignore[arg-type]  # declared: indexed
        for col in tdef.indexes:
            setattr(self, col, IndexHandle(table, slot, table.index_for(col)))  # type: ignore[arg-type]  # declared: indexed

    def insert(self, row: T) -> T:
        """Insert ``row``; AutoInc columns holding 0 get the next value. Returns the stored row."""
        tx = self._slot.tx or _no_tx()
        table = self._table
        table._check(row)
        if self._autoinc:
            fresh = {c: tx.next_sequence(table, c) for c in self._autoinc if getattr(row, c) == 0}
            if fresh:
                row = dataclasses.replace(row, **fresh)  # type: ignore[type-var]  # T is a dataclass row type
        stored: T = tx.insert(table, row)
        return stored

    def delete(self, row: Any) -> bool:
        """Delete the stored row equal to ``row``; False if there is none."""
        tx = self._slot.tx or _no_tx()
        return tx.delete(self._table, row)

    def iter(self) -> Iterator[Any]:
        """All rows (a stable copy: the reducer may change the table while iterating)."""
        if self._slot.tx is None:
            _no_tx()
        return iter(tuple(self._table.rows.values()))

    def count(self) -> int:
        if self._slot.tx is None:
            _no_tx()
        return len(self._table.rows)


class UniqueHandle:
    """``ctx.db.<table>.<unique column>``: find, delete, update (primary key only), filter, range."""

    __slots__ = ("_table", "_slot", "_index", "_is_pk", "_ctype")

    def __init__(self, table: Table, slot: TxSlot, index: UniqueIndex, is_pk: bool) -> None:
        self._table = table
        self._slot = slot
        self._index = index
        self._is_pk = is_pk
        self._ctype = table.tdef.column(index.column).type  # type: ignore[union-attr]  # an index is on a column

    def find(self, value: Any) -> Any | None:
        if self._slot.tx is None:
            _no_tx()
        return self._index.map.get(value)

    def filter(self, value: Any) -> list[Any]:
        return [] if (row := self.find(value)) is None else [row]

    def range(self, lo: Any = None, hi: Any = None, *, lo_inclusive: bool = True,
              hi_inclusive: bool = False) -> list[Any]:
        """Rows with lo <= value < hi (bounds None = unbounded), in key order."""
        if self._slot.tx is None:
            _no_tx()
        return self._index.range(lo, hi, (lo_inclusive, hi_inclusive))

    def delete(self, value: Any) -> bool:
        tx = self._slot.tx or _no_tx()
        row = self._index.map.get(value)
        return row is not None and tx.delete(self._table, row)

    def update(self, row: T) -> T:
        """Replace the row with the same primary key; NoSuchRow if there is none."""
        if not self._is_pk:
            raise TypeError(f"update() works on the primary key only; `{self._index.column}` is unique but not the key")
        tx = self._slot.tx or _no_tx()
        self._table._check(row)
        stored: T = tx.update(self._table, row)
        return stored


class IndexHandle:
    """``ctx.db.<table>.<indexed column>``: filter (equality), range, delete."""

    __slots__ = ("_table", "_slot", "_index")

    def __init__(self, table: Table, slot: TxSlot, index: BTreeIndex) -> None:
        self._table = table
        self._slot = slot
        self._index = index

    def filter(self, value: Any) -> list[Any]:
        if self._slot.tx is None:
            _no_tx()
        return self._index.find(value)

    def range(self, lo: Any = None, hi: Any = None, *, lo_inclusive: bool = True,
              hi_inclusive: bool = False) -> list[Any]:
        """Rows with lo <= value < hi (bounds None = unbounded), in key order."""
        if self._slot.tx is None:
            _no_tx()
        return self._index.range(lo, hi, (lo_inclusive, hi_inclusive))

    def delete(self, value: Any) -> int:
        tx = self._slot.tx or _no_tx()
        rows = self._index.find(value)
        for row in rows:
            tx.delete(self._table, row)
        return len(rows)


class DbView:
    """``ctx.db``: one attribute per table."""

    def __init__(self, handles: dict[str, TableHandle]) -> None:
        self.__dict__.update(handles)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"no table named `{name}` in this module")


class ReducerContext:
    """What a reducer gets: who called, when, the database, and a seeded RNG."""

    __slots__ = ("sender", "connection_id", "timestamp", "db", "identity", "_rng")

    def __init__(self, sender: Identity, connection_id: ConnectionId | None, timestamp: Timestamp,
                 db: DbView, identity: Identity) -> None:
        self.sender = sender
        self.connection_id = connection_id
        self.timestamp = timestamp
        self.db = db
        self.identity = identity
        self._rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        """A ``random.Random`` seeded from the transaction's timestamp (deterministic per call)."""
        if self._rng is None:
            self._rng = random.Random(int(self.timestamp))
        return self._rng


# -- log ------------------------------------------------------------------------------
_sink = threading.local()
_basenames: dict[str, str] = {}
_new_record = tuple.__new__


class _Logger:
    """``log.trace/debug/info/warn/error(msg)``: records level, module file and line, time."""

    __slots__ = ()

    @staticmethod
    def _emit(level: str, message: object) -> None:
        frame = sys._getframe(2)
        path = frame.f_code.co_filename
        name = _basenames.get(path)
        if name is None:
            name = _basenames[path] = os.path.basename(path)
        # tuple.__new__ skips the NamedTuple's Python-level constructor: this is on the reducer hot path.
        record = _new_record(LogRecord, (time.time_ns() // 1000, level, name, frame.f_lineno, str(message)))
        sink = getattr(_sink, "log", None)
        if sink is None:
            print(record.format(), file=sys.stderr)
        else:
            sink.emit(record)

    def trace(self, message: object) -> None:
        self._emit("TRACE", message)

    def debug(self, message: object) -> None:
        self._emit("DEBUG", message)

    def info(self, message: object) -> None:
        self._emit("INFO", message)

    def warn(self, message: object) -> None:
        self._emit("WARN", message)

    warning = warn

    def error(self, message: object) -> None:
        self._emit("ERROR", message)


log = _Logger()
