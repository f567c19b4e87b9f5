"""The rows and indexes of one table: no transactions, no log.

Rows are immutable objects. A table with a primary key maps key -> row; one
without maps row -> row, which gives set semantics and keeps insertion order.
Unique columns have a value -> row dict. Btree indexes map value -> rows and
build an ordered key list the first time a range is asked for.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Any, NamedTuple

from sortedcontainers import SortedKeyList

from .errors import UniqueConstraintViolation
from .schema import TableDef

# Builds of a snapshot (``Table.snapshot_piece``) that changes may cut short before one is done
# at once: under a steady stream of writes a piecewise build might never finish.
MAX_INTERRUPTED = 3
MIN_PATCH = 1024  # changes a snapshot carries along before it is dropped, at least (else an eighth of it)


class Snapshot(NamedTuple):
    """The rows of a table at one moment: ``rows`` (never changed: readers share it) plus ``added``
    minus the rows whose id is in ``removed``."""

    rows: list[Any]
    added: list[Any]
    removed: set[int]


class _Ordered:
    """Keys of a mapping in sort order, built on first use and then maintained."""

    __slots__ = ("_source", "_key", "_sorted")

    def __init__(self, source: dict[Any, Any], key: Callable[[Any], Any] | None) -> None:
        self._source = source
        self._key = key
        self._sorted: SortedKeyList | None = None

    def added(self, value: Any) -> None:
        if self._sorted is not None:
            self._sorted.add(value)

    def removed(self, value: Any) -> None:
        if self._sorted is not None:
            self._sorted.remove(value)

    def irange(self, lo: Any, hi: Any, inclusive: tuple[bool, bool]) -> Iterator[Any]:
        if self._sorted is None:
            keyfn = self._key or _same
            # NaN never compares; it cannot be found by a range anyway.
            self._sorted = SortedKeyList((k for k in self._source if k == k), key=keyfn)
        keyfn = self._key or _same
        found: Iterator[Any] = self._sorted.irange_key(
            None if lo is None else keyfn(lo), None if hi is None else keyfn(hi), inclusive=inclusive
        )
        return found

    def reset(self) -> None:
        self._sorted = None

    @property
    def key(self) -> Callable[[Any], Any] | None:
        """The sort key of the values (None: they order as they are)."""
        return self._key


def _same(value: Any) -> Any:
    return value


class BTreeIndex:
    """A non-unique index: value -> {row: None} (ordered, O(1) removal)."""

    __slots__ = ("column", "get", "map", "ordered")

    def __init__(self, column: str, sort_key: Callable[[Any], Any] | None) -> None:
        self.column = column
        self.get = attrgetter(column)
        self.map: dict[Any, dict[Any, None]] = {}
        self.ordered = _Ordered(self.map, sort_key)

    def add(self, row: Any) -> None:
        value = self.get(row)
        bucket = self.map.get(value)
        if bucket is None:
            self.map[value] = {row: None}
            self.ordered.added(value)
        else:
            bucket[row] = None

    def remove(self, row: Any) -> None:
        value = self.get(row)
        bucket = self.map[value]
        del bucket[row]
        if not bucket:
            del self.map[value]
            self.ordered.removed(value)

    def find(self, value: Any) -> list[Any]:
        bucket = self.map.get(value)
        return list(bucket) if bucket else []

    def range(self, lo: Any, hi: Any, inclusive: tuple[bool, bool] = (True, False)) -> list[Any]:
        out: list[Any] = []
        for key in self.ordered.irange(lo, hi, inclusive):
            out.extend(self.map[key])
        return out


class UniqueIndex:
    """A unique column: value -> row."""

    __slots__ = ("column", "get", "map", "ordered")

    def __init__(self, column: str, sort_key: Callable[[Any], Any] | None,
                 source: dict[Any, Any] | None = None) -> None:
        self.column = column
        self.get = attrgetter(column)
        # The primary key index shares the table's own key -> row dict.
        self.map: dict[Any, Any] = {} if source is None else source
        self.ordered = _Ordered(self.map, sort_key)

    def find(self, value: Any) -> list[Any]:
        row = self.map.get(value)
        return [] if row is None else [row]

    def range(self, lo: Any, hi: Any, inclusive: tuple[bool, bool] = (True, False)) -> list[Any]:
        m = self.map
        return [m[k] for k in self.ordered.irange(lo, hi, inclusive)]


class Table:
    """Rows of one table plus their indexes; constraint checks, no undo."""

    __slots__ = ("tdef", "name", "rows", "key_of", "pk_index", "uniques", "btrees", "sequences", "_check",
                 "_snapshot", "_building", "_build_it", "_interrupted", "_snap_added", "_snap_removed",
                 "snapshotted")

    def __init__(self, tdef: TableDef) -> None:
        self.tdef = tdef
        self.name = tdef.name
        self.rows: dict[Any, Any] = {}
        self.pk_index: UniqueIndex | None = None
        cols = {c.name: c for c in tdef.columns}
        if tdef.primary_key is not None:
            self.key_of: Callable[[Any], Any] = attrgetter(tdef.primary_key)
            self.pk_index = UniqueIndex(tdef.primary_key, cols[tdef.primary_key].type.sort_key, self.rows)
        else:
            self.key_of = _same
        self.uniques = [UniqueIndex(c, cols[c].type.sort_key) for c in tdef.unique]
        self.btrees = [BTreeIndex(c, cols[c].type.sort_key) for c in tdef.indexes]
        self.sequences: dict[str, int] = {c: 0 for c in tdef.autoinc}
        self._check = _row_checker(tdef)
        # The rows as one list for readers in slices (``snapshot_piece``): built by them a piece at a
        # time, dropped by the next change, never changed once complete (its readers keep it).
        self._snapshot: list[Any] | None = None
        self._building: list[Any] | None = None
        self._build_it: Iterator[Any] | None = None
        self._interrupted = 0  # builds a change cut short since the last complete one
        self._snap_added: dict[int, Any] = {}  # since the snapshot, by id: rows added, and snapshot rows removed
        self._snap_removed: dict[int, Any] = {}
        self.snapshotted = False  # a snapshot is complete or under way: a change drops it

    # -- reads ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows.values())

    def index_for(self, column: str) -> UniqueIndex | BTreeIndex | None:
        if self.pk_index is not None and self.pk_index.column == column:
            return self.pk_index
        for idx in self.uniques:
            if idx.column == column:
                return idx
        for bidx in self.btrees:
            if bidx.column == column:
                return bidx
        return None

    # -- writes -----------------------------------------------------------------
    def validate(self, row: Any) -> None:
        """TypeError naming table and column if ``row`` is not a well-typed row of this table."""
        self._check(row)

    def check_unique(self, row: Any, replacing: Any = None) -> None:
        """Raise UniqueConstraintViolation if inserting ``row`` (after removing ``replacing``) breaks a constraint."""
        if self.pk_index is not None:
            key = self.key_of(row)
            existing = self.rows.get(key)
            if existing is not None and existing is not replacing:
                raise UniqueConstraintViolation(self.name, self.pk_index.column, key)
        for idx in self.uniques:
            value = idx.get(row)
            existing = idx.map.get(value)
            if existing is not None and existing is not replacing:
                raise UniqueConstraintViolation(self.name, idx.column, value)

    def add(self, row: Any) -> None:
        """Store a row already checked; the caller guarantees no constraint is broken."""
        key = self.key_of(row)
        if self.pk_index is not None and key in self.rows:  # without a key the row is its own (hashed) key
            raise AssertionError(f"duplicate key {key!r} in {self.name}")
        self.rows[key] = row
        if self.snapshotted:
            self._changed(row, None)
        if self.pk_index is not None:
            self.pk_index.ordered.added(key)
        for idx in self.uniques:
            value = idx.get(row)
            idx.map[value] = row
            idx.ordered.added(value)
        for bidx in self.btrees:
            bidx.add(row)

    def remove(self, row: Any) -> None:
        """Remove a row known to be stored (the stored object or an equal one)."""
        key = self.key_of(row)
        stored = self.rows.pop(key)
        if self.snapshotted:
            self._changed(None, stored)
        if self.pk_index is not None:
            self.pk_index.ordered.removed(key)
        for idx in self.uniques:
            value = idx.get(row)
            del idx.map[value]
            idx.ordered.removed(value)
        for bidx in self.btrees:
            bidx.remove(row)

    # -- snapshots for readers in slices ---------------------------------------------
    def snapshot_piece(self, n: int) -> Snapshot | int:
        """Go on building the list of all rows by up to ``n`` of them: once it is complete, the
        rows as they are now as a ``Snapshot``, else the rows copied by this call (``n``): call
        again after a pause.

        Readers pay for the copy, a piece per slice; a writer never copies for a reader (a copy of
        100k rows is ~2 ms, and a young collection walks it while it is new, ~5 ms more). A
        complete snapshot serves every later reader, the changes since it rides along (``added``,
        ``removed``), until they pass an eighth of it. A change cuts a build short (the copy is
        restarted); one cut short ``MAX_INTERRUPTED`` times in a row is done at once.
        """
        snap = self._snapshot
        if snap is not None:
            return Snapshot(snap, list(self._snap_added.values()), set(self._snap_removed))
        if self._build_it is None:
            if self._interrupted >= MAX_INTERRUPTED:
                return self._complete(list(self.rows.values()))
            self._building, self._build_it = [], iter(self.rows.values())
            self.snapshotted = True
        assert self._building is not None
        piece = list(itertools.islice(self._build_it, n))
        self._building += piece
        if len(piece) < n:
            return self._complete(self._building)
        return n

    def _complete(self, rows: list[Any]) -> Snapshot:
        self._snapshot, self._building, self._build_it = rows, None, None
        self._snap_added, self._snap_removed = {}, {}
        self._interrupted = 0
        self.snapshotted = True
        return Snapshot(rows, [], set())

    def _changed(self, added: Any, removed: Any) -> None:
        """Note one change (after it was made) for the snapshot, or drop what is built of one."""
        snap = self._snapshot
        if snap is None:  # a build under way: its iterator of the rows is dead now
            self._interrupted += 1
            self._drop_snapshot()
            return
        if added is not None:
            self._snap_added[id(added)] = added
        elif self._snap_added.pop(id(removed), None) is None:  # a snapshot row: kept alive, so its id is its
            self._snap_removed[id(removed)] = removed
        if len(self._snap_added) + len(self._snap_removed) > max(MIN_PATCH, len(snap) >> 3):
            self._drop_snapshot()

    def _drop_snapshot(self) -> None:
        self._snapshot = self._building = self._build_it = None
        self._snap_added, self._snap_removed = {}, {}
        self.snapshotted = False

    def load(self, rows: Iterable[Any]) -> None:
        """Bulk-load rows at start-up (no checks beyond duplicate keys)."""
        if self.snapshotted:
            self._drop_snapshot()
        if not self.uniques and not self.btrees:
            key_of = self.key_of
            if key_of is _same:
                self.rows.update(zip(rows, rows, strict=True) if isinstance(rows, list) else ((r, r) for r in rows))
            else:
                self.rows.update((key_of(r), r) for r in rows)
            if self.pk_index is not None:
                self.pk_index.ordered.reset()
            return
        for row in rows:
            self.add(row)


def _row_checker(tdef: TableDef) -> Callable[[Any], None]:
    row_type = tdef.row_type
    checks = [(c.name, attrgetter(c.name), c.type.check, c.type.name) for c in tdef.columns]
    table = tdef.name

    def check(row: Any) -> None:
        if type(row) is not row_type:
            raise TypeError(
                f"table `{table}` takes {row_type.__name__} rows, got {type(row).__name__}"
            )
        for name, get, ok, tname in checks:
            if not ok(get(row)):
                value = get(row)
                raise TypeError(
                    f"table `{table}`, column `{name}`: expected {tname}, got {type(value).__name__} {value!r:.60}"
                )

    return check
