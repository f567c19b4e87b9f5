"""Reading the tables as of one offset while later transactions commit.

A long query runs in slices, between which reducers commit. ``ReadView(tables, offset)`` answers
every read (all rows, an index lookup, an index range, a count) as of ``offset``: the caller feeds
it each later ``TxData`` (``apply``), and it corrects what the live tables say by the rows those
transactions inserted (hidden) and deleted (shown again). Rows are immutable, so nothing is
copied until a table changes under the view. ``LiveView`` has the same methods over the live
tables, for readers that hold the writer off (an embedded call under the database's lock).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Any

from .table import BTreeIndex, Table, UniqueIndex
from .tx import TxData

Index = UniqueIndex | BTreeIndex
_CHUNK = 256  # rows taken from a scan at a time, between which the table may change


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
        self._scans: list[LazyScan] = []

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
        # The live rows, copied only if the table changes before the reader is through (most
        # scans end first, or are cut by a budget)...
        scan = LazyScan(table)
        self._scans.append(scan)
        net = self._changes(table)
        if net is None:
            return scan
        # ...corrected by the changes since the offset, as they are now, as the scan is: lazily,
        # so that the reader's slices share the cost (a row's hash is not cheap).
        # A row inserted since is the very object the table holds (a transaction's inserts are its
        # stored rows, and set semantics admits no second equal one while it lives): test identity,
        # not equality, whose hash is the costly part of a long scan.
        inserted = [row for row, n in net.items() if n > 0]  # held: their ids stay theirs
        hidden = {id(row) for row in inserted}
        back = [row for row, n in net.items() if n < 0]

        def corrected() -> Iterator[Any]:
            while chunk := scan.take(_CHUNK):  # each time from the scan's rows (a copy, once detached)
                if hidden:
                    yield from [row for row in chunk if id(row) not in hidden]
                else:
                    yield from chunk
            yield from back
            inserted.clear()

        return corrected()

    def close(self) -> None:
        """The reader is done (or gone): its paused scans no longer need telling of changes."""
        for scan in self._scans:
            scan.stop()
        self._scans.clear()

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
    """The rows of one table as of now, read a chunk at a time (``take``) straight from the live
    table until the table is about to change: then, told by the table (``detach``), it goes on
    from a copy of the table's rows as they were, at the position it had reached."""

    __slots__ = ("_table", "_it", "taken")

    def __init__(self, table: Table) -> None:
        self._table = table
        self._it: Iterator[Any] = iter(table.rows.values())
        self.taken = 0  # rows given out: the position in the table's rows, or in the copy
        table.scans.append(self)

    def take(self, n: int) -> list[Any]:
        """The next ``n`` rows (fewer at the end; none once all are out)."""
        chunk = list(itertools.islice(self._it, n))
        self.taken += len(chunk)
        return chunk

    def __iter__(self) -> Iterator[Any]:
        while chunk := self.take(_CHUNK):
            yield from chunk

    def detach(self, rows: list[Any] | None) -> None:
        """The table is about to change (it forgot the scan): go on from ``rows``, the table's rows
        as they are now, or stop if None (every scan is through)."""
        if rows is None or self.taken >= len(rows):
            self._it = iter(())
            return
        it: Any = iter(rows)
        it.__setstate__(self.taken)  # a list iterator starts at any index: no copy, no skipping
        self._it = it

    def stop(self) -> None:
        """The reader is done with it: stop reading and being told of changes."""
        self._it = iter(())
        if self in self._table.scans:
            self._table.scans.remove(self)


def _same(value: Any) -> Any:
    return value
