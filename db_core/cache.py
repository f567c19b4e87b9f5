"""The client-side replica: subscribed rows in, row events out. No I/O.

Feed it a subscription's initial rows and then every transaction update;
it keeps each table's rows reference-counted (overlapping queries may deliver
the same row twice) and indexed by primary key, and returns what changed as
events: an insert, a delete, or an update when one transaction deleted and
inserted rows with the same primary key.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class RowEventKind(enum.StrEnum):
    """What happened to a row: it came, it went, or it changed (same primary key)."""

    INSERT = "insert"
    DELETE = "delete"
    UPDATE = "update"


_INSERT, _DELETE, _UPDATE = RowEventKind.INSERT, RowEventKind.DELETE, RowEventKind.UPDATE


@dataclasses.dataclass(frozen=True, slots=True)
class RowEvent:
    """``kind`` is ``insert`` (old is None), ``delete`` (new is None) or ``update``."""

    kind: RowEventKind
    table: str
    old: Any
    new: Any


class _TableCache:
    __slots__ = ("counts", "by_key", "key_of")

    def __init__(self, key_of: Callable[[Any], Any] | None) -> None:
        self.counts: dict[Any, int] = {}
        self.by_key: dict[Any, Any] | None = {} if key_of is not None else None
        self.key_of = key_of


class ClientCache:
    """Rows of subscribed tables, keyed by primary key where the table has one."""

    def __init__(self, primary_keys: dict[str, Callable[[Any], Any] | None] | None = None) -> None:
        self._key_fns = dict(primary_keys or {})
        self._tables: dict[str, _TableCache] = {}

    def _table(self, name: str) -> _TableCache:
        t = self._tables.get(name)
        if t is None:
            t = self._tables[name] = _TableCache(self._key_fns.get(name))
        return t

    def apply(self, table: str, inserts: Iterable[Any] = (), deletes: Iterable[Any] = ()) -> list[RowEvent]:
        """Apply one update of one table (a transaction's, or a subscription's first rows as
        ``inserts``); returns what changed, to hand on to whoever shows the rows: deletes before
        inserts, a delete and an insert of the same primary key paired into an update."""
        t = self._table(table)
        counts = t.counts
        gone: list[Any] = []
        for row in deletes:
            n = counts.get(row, 0)
            if n <= 1:
                if n == 1:
                    del counts[row]
                    gone.append(row)
                # A delete of a row we never had is ignored: the server is the source of truth.
            else:
                counts[row] = n - 1
        came: list[Any] = []
        for row in inserts:
            n = counts.get(row, 0)
            counts[row] = n + 1
            if n == 0:
                came.append(row)
        if t.key_of is None:
            return [RowEvent(_DELETE, table, r, None) for r in gone] + [RowEvent(_INSERT, table, None, r) for r in came]
        key_of = t.key_of
        by_key = t.by_key
        assert by_key is not None
        removed: dict[Any, Any] = {}
        for row in gone:
            key = key_of(row)
            if by_key.get(key) == row:
                del by_key[key]
            removed[key] = row
        events: list[RowEvent] = []
        paired: set[Any] = set()
        for row in came:
            key = key_of(row)
            by_key[key] = row
            old = removed.get(key)
            if old is not None and key not in paired:
                paired.add(key)
                events.append(RowEvent(_UPDATE, table, old, row))
            else:
                events.append(RowEvent(_INSERT, table, None, row))
        deletes_out = [RowEvent(_DELETE, table, row, None) for key, row in removed.items() if key not in paired]
        return deletes_out + events

    def rows(self, table: str) -> list[Any]:
        """The rows of ``table``, each once, in no particular order."""
        t = self._tables.get(table)
        return [] if t is None else list(t.counts)

    def iter(self, table: str) -> Iterator[Any]:
        """``rows`` without the copy: do not ``apply`` while iterating."""
        t = self._tables.get(table)
        return iter(()) if t is None else iter(t.counts)

    def count(self, table: str) -> int:
        """How many distinct rows ``table`` has."""
        t = self._tables.get(table)
        return 0 if t is None else len(t.counts)

    def multiplicity(self, table: str, row: Any) -> int:
        """How many subscribed queries deliver ``row`` (0: not cached)."""
        t = self._tables.get(table)
        return 0 if t is None else t.counts.get(row, 0)

    def find(self, table: str, key: Any) -> Any | None:
        """The row with primary key ``key`` (tables with a primary key only)."""
        t = self._tables.get(table)
        if t is None or t.by_key is None:
            return None
        return t.by_key.get(key)

    def clear(self, table: str | None = None) -> list[RowEvent]:
        """Forget rows (e.g. on unsubscribe or reconnect); returns delete events for them, to hand on
        as ``apply``'s."""
        names = [table] if table is not None else list(self._tables)
        events: list[RowEvent] = []
        for name in names:
            t = self._tables.pop(name, None)
            if t is not None:
                events += [RowEvent(_DELETE, name, row, None) for row in t.counts]
        return events
