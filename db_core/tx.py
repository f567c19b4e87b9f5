"""One transaction's changes, applied write-through with an undo record.

Reducers run one at a time, so a transaction writes straight into the tables
and remembers its net inserts and deletes per table. Rollback reverses them;
commit turns them into the one ``TxData`` that feeds the log, subscriptions
and the caller's result.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .errors import NoSuchRow
from .table import Table
from .types import ConnectionId, Identity, Timestamp


@dataclasses.dataclass(slots=True)
class TableUpdate:
    """Rows one transaction inserted into and deleted from one table."""

    table: str
    inserts: list[Any]
    deletes: list[Any]


@dataclasses.dataclass(slots=True)
class TxData:
    """What one committed transaction did: the single object every consumer reads."""

    offset: int
    timestamp: Timestamp
    reducer: str | None
    caller_identity: Identity
    caller_connection_id: ConnectionId | None
    args: tuple[Any, ...]
    tables: dict[str, TableUpdate]
    sequences: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.tables


_NO_TIME = Timestamp(0)


class _Changes:
    """Net changes to one table. Inserts are keyed by object id (hashing a row
    is a Python-level call); deletes by value, so re-inserting a deleted row nets out."""

    __slots__ = ("inserts", "deletes")

    def __init__(self) -> None:
        self.inserts: dict[int, Any] = {}
        self.deletes: dict[Any, None] = {}

    def added(self, row: Any) -> None:
        if self.deletes and row in self.deletes:
            del self.deletes[row]
        else:
            self.inserts[id(row)] = row

    def removed(self, stored: Any) -> None:
        if self.inserts.pop(id(stored), None) is None:
            self.deletes[stored] = None


class Transaction:
    """Mutations of one transaction. Every method keeps tables consistent even if it raises.

    ``timestamp`` is the transaction's time (the datastore picks it; a bare transaction that
    fills tables for a test or a tool has 0).
    """

    __slots__ = ("timestamp", "changes", "seq_touched", "seq_saved")

    def __init__(self, timestamp: Timestamp = _NO_TIME) -> None:
        self.timestamp = timestamp
        self.changes: dict[Table, _Changes] = {}
        self.seq_touched: dict[Table, dict[str, int]] = {}
        self.seq_saved: dict[Table, dict[str, int]] = {}

    def _changes(self, table: Table) -> _Changes:
        ch = self.changes.get(table)
        if ch is None:
            ch = self.changes[table] = _Changes()
        return ch

    def next_sequence(self, table: Table, column: str) -> int:
        if table not in self.seq_saved:
            self.seq_saved[table] = dict(table.sequences)
        value = table.sequences[column] + 1
        table.sequences[column] = value
        self.seq_touched.setdefault(table, {})[column] = value
        return value

    def insert(self, table: Table, row: Any) -> Any:
        """Insert a validated row; an identical stored row makes this a no-op."""
        existing = table.rows.get(table.key_of(row))
        if existing is not None and existing == row:
            return existing
        table.check_unique(row)
        table.add(row)
        ch = self.changes.get(table) or self._changes(table)
        ch.added(row)
        return row

    def delete(self, table: Table, row: Any) -> bool:
        """Delete the stored row equal to ``row``; False if there is none."""
        stored = table.rows.get(table.key_of(row))
        if stored is None or stored != row:
            return False
        table.remove(stored)
        self._changes(table).removed(stored)
        return True

    def update(self, table: Table, row: Any) -> Any:
        """Replace the row with the same primary key (atomic: checks before it writes)."""
        key = table.key_of(row)
        old = table.rows.get(key)
        if old is None:
            raise NoSuchRow(f"no row in `{table.name}` with {table.tdef.primary_key} = {key!r} to update")
        if old == row:
            return old
        table.check_unique(row, replacing=old)
        table.remove(old)
        table.add(row)
        ch = self._changes(table)
        ch.removed(old)
        ch.added(row)
        return row

    def rollback(self) -> None:
        """Undo every change, leaving the tables as they were before the transaction."""
        for table, ch in self.changes.items():
            for row in ch.inserts.values():
                table.remove(row)
            for row in ch.deletes:
                table.add(row)
        for table, saved in self.seq_saved.items():
            table.sequences.update(saved)
        self.changes.clear()

    def commit(self, offset: int, reducer: str | None, caller: Identity, connection_id: ConnectionId | None,
               args: tuple[Any, ...]) -> TxData:
        """The net changes as the ``TxData`` of ``offset``; the transaction is done."""
        tables: dict[str, TableUpdate] = {}
        for table, ch in self.changes.items():
            if ch.inserts or ch.deletes:
                tables[table.name] = TableUpdate(table.name, list(ch.inserts.values()), list(ch.deletes))
        sequences = {t.name: cols for t, cols in self.seq_touched.items()} if self.seq_touched else _NO_SEQUENCES
        return TxData(offset, self.timestamp, reducer, caller, connection_id, args, tables, sequences)


_NO_SEQUENCES: dict[str, dict[str, int]] = {}
