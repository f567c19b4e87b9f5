"""Reading the tables as of one offset while later transactions commit.

A long query runs in slices, between which reducers commit. ``ReadView(tables, offset)`` answers
every read (all rows, an index lookup, an index range, a count) as of ``offset``: the caller feeds
it each later ``TxData`` (``apply``), and it corrects what the live tables say by the rows those
transactions inserted (hidden) and deleted (shown again). A full scan reads a snapshot of its
table that the readers copy, a piece per slice, and share; the table keeps it, with the changes
since, for later readers: a writer never pays for a reader beyond noting its change. ``LiveView``
has the same methods over the live tables, for readers that hold the writer off (an embedded call
under the database's lock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Any

from .table import BTreeIndex, Table, UniqueIndex
from .tx import TxData

Index = UniqueIndex | BTreeIndex
_CHUNK = 256  # rows taken from a scan at a time by a plain iteration
PIECE = 16_384  # rows copied into a table's snapshot per call: ~0.3 ms, within a reader's slice


class LiveView:
    """The live tables, read directly: correct only while no transaction can commit."""

    sliced = False  # readers may pause between chunks (a ReadView), or must not (this one)

    def rows(self, table: Table) -> Iterable[Any]:
        return iter(table)

    def count(self, table: Table) -> int:
        return len(table.rows)

    def find(self, table: Table, index: Index, value: Any) -> list[Any]:
        return index.find(value)

    def range(self, table: Table, index: Index, lo: Any, hi: Any, inclusive: tuple[bool, bool]) -> list[Any]:
        return index.range(lo, hi, inclusive)

    def finder(self, table: Table, index: Index) -> Callable[[Any], Iterable[Any]]:
        """``value -> rows`` for many lookups in one index (the inner side of a join)."""
        m = index.map
        if isinstance(index, UniqueIndex):
            def find_one(value: Any) -> Iterable[Any]:
                row = m.get(value)
                return () if row is None else (row,)
            return find_one

        def find_all(value: Any) -> Iterable[Any]:
            return m.get(value, ())

        return find_all


class ReadView(LiveView):
    """The tables as of ``offset``; ``apply`` every transaction committed after it, in order."""

    sliced = True

    def __init__(self, offset: int) -> None:
        self.offset = offset
        # Per table, rows inserted (+1) or deleted (-1) since ``offset``; a row re-inserted nets to 0.
        self._net: dict[str, dict[Any, int]] = {}
        self._gone_by: dict[tuple[str, str], dict[Any, list[Any]]] = {}  # deleted rows by column value

    def apply(self, tx: TxData) -> None:
        """Note one later transaction's changes (call right after it commits)."""
        for name, upd in tx.tables.items():
            net = self._net.setdefault(name, {})
            for row in upd.deletes:
                n = net.get(row, 0) - 1
                if n:
                    net[row] = n
                else:
                    del net[row]
            for row in upd.inserts:
                n = net.get(row, 0) + 1
                if n:
                    net[row] = n
                else:
                    del net[row]
            if self._gone_by:
                for key in [k for k in self._gone_by if k[0] == name]:
                    del self._gone_by[key]

    def _changes(self, table: Table) -> dict[Any, int] | None:
        net = self._net.get(table.name)
        return net or None

    def rows(self, table: Table) -> Iterable[Any]:
        # The table's snapshot (copied a piece per slice, or kept from an earlier reader with the
        # changes since), corrected by the changes since the offset as they are when it is ready:
        # the table is then exactly as the snapshot says.
        return LazyScan(table, self._corrections)

    def _corrections(self, table: Table) -> tuple[set[int], list[Any]]:
        """What the table has now that the offset had not (ids: a row inserted since is the very
        object the table holds, and testing identity spares a row's costly hash), and the rows the
        offset had that it no longer has."""
        net = self._changes(table)
        if net is None:
            return set(), []
        return {id(row) for row, n in net.items() if n > 0}, [row for row, n in net.items() if n < 0]

    def close(self) -> None:
        """The reader is done (or gone): nothing to release; a snapshot goes with its last reader."""

    def count(self, table: Table) -> int:
        net = self._changes(table)
        n = len(table.rows)
        return n if net is None else n - sum(1 for v in net.values() if v > 0) + sum(1 for v in net.values() if v < 0)

    def _gone(self, table: Table, column: str) -> dict[Any, list[Any]]:
        """Rows deleted since ``offset``, by their value in ``column``."""
        key = (table.name, column)
        by = self._gone_by.get(key)
        if by is None:
            get = attrgetter(column)
            by = {}
            for row, n in self._net.get(table.name, {}).items():
                if n < 0:
                    by.setdefault(get(row), []).append(row)
            self._gone_by[key] = by
        return by

    def find(self, table: Table, index: Index, value: Any) -> list[Any]:
        live = index.find(value)
        net = self._changes(table)
        if net is None:
            return live
        return [r for r in live if net.get(r, 0) <= 0] + self._gone(table, index.column).get(value, [])

    def range(self, table: Table, index: Index, lo: Any, hi: Any, inclusive: tuple[bool, bool]) -> list[Any]:
        live = index.range(lo, hi, inclusive)
        net = self._changes(table)
        if net is None:
            return live
        key = index.ordered.key or _same
        klo = None if lo is None else key(lo)
        khi = None if hi is None else key(hi)

        def inside(value: Any) -> bool:
            if value != value:  # NaN: never in a range
                return False
            k = key(value)
            if klo is not None and (k < klo or (k == klo and not inclusive[0])):
                return False
            return not (khi is not None and (k > khi or (k == khi and not inclusive[1])))

        back = [r for v, rows in self._gone(table, index.column).items() if inside(v) for r in rows]
        return [r for r in live if net.get(r, 0) <= 0] + back

    def finder(self, table: Table, index: Index) -> Callable[[Any], Iterable[Any]]:
        # Copies of the buckets too: the caller may pause half-way through one while rows change.
        return lambda value: self.find(table, index, value)


class LazyScan:
    """The rows of one table as they are when its snapshot is ready, corrected by a view.

    ``take`` returns [] while the snapshot is being copied (``Table.snapshot_piece``, PIECE rows a
    call: a pause point for the reader), then the rows a chunk at a time (the snapshot's, less
    those removed since, then those added since), then None. Nothing it reads changes, so the
    scan may pause anywhere; ``corrections(table)`` is asked once, when the snapshot is ready:
    (ids of rows to hide, rows to add at the end).
    """

    __slots__ = ("_table", "_corrections", "_rows", "_pos", "_extra", "_hidden", "_back")

    def __init__(self, table: Table,
                 corrections: Callable[[Table], tuple[set[int], list[Any]]] | None = None) -> None:
        self._table = table
        self._corrections = corrections
        self._rows: list[Any] | None = None
        self._pos = 0
        self._extra: list[Any] = []  # the snapshot's added rows: read after its rows
        self._hidden: set[int] = set()
        self._back: list[Any] = []

    def take(self, n: int, meter: Any = None) -> list[Any] | None:
        """The next up to ``n`` rows; [] while the snapshot is not complete (pause, then call
        again; ``meter.copied`` counts the copying); None once all are out."""
        rows = self._rows
        if rows is None:
            snap = self._table.snapshot_piece(PIECE)
            if isinstance(snap, int):  # a piece copied, more to come: progress towards a pause
                if meter is not None:
                    meter.copied += snap
                return []
            rows, self._extra, hidden = snap
            if self._corrections is not None:
                since, self._back = self._corrections(self._table)
                hidden = hidden | since if hidden else since
            self._rows, self._hidden = rows, hidden
        pos = self._pos
        while pos >= len(rows):
            if not self._extra:
                back, self._back = self._back, []
                return back or None
            rows, self._extra, pos = self._extra, [], 0
            self._rows = rows
        chunk = rows[pos:pos + n]
        self._pos = pos + n
        hidden = self._hidden
        return [row for row in chunk if id(row) not in hidden] if hidden else chunk

    def __iter__(self) -> Iterator[Any]:
        while (chunk := self.take(_CHUNK)) is not None:
            yield from chunk


def _same(value: Any) -> Any:
    return value
