"""The committed state: tables, offsets, and the one way to change them.

Every write (a reducer, a lifecycle hook, SQL DML, a replayed log record) goes
through ``Datastore.transaction(body, meta)``: one at a time under the lock, it
runs ``body(tx, meta)`` in a ``Transaction``, rolls back if it raises, and otherwise
commits a ``TxData``, hands it to the durability, then to commit listeners
(as tinydb's ``Table._update_table`` is the one path of every write).

The datastore knows durability only through the ``Durability`` interface.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .durability import Durability, Image, InMemory
from .errors import StorageError
from .table import Table
from .tx import Transaction, TxData
from .types import ConnectionId, Identity, Timestamp

CommitListener = Callable[[TxData], None]


@dataclasses.dataclass(slots=True)  # not frozen: one is made per call, and frozen init costs ~1 us
class TxMeta:
    """Who runs a transaction and why: recorded in its ``TxData``.

    ``replayed``: the logged transaction being replayed at start-up; it keeps its offset and
    timestamp, is not logged again, and nobody is told of it.
    """

    reducer: str | None
    caller: Identity
    connection_id: ConnectionId | None = None
    args: tuple[Any, ...] = ()
    replayed: TxData | None = None

    @classmethod
    def replay(cls, tx: TxData) -> "TxMeta":
        return cls(tx.reducer, tx.caller_identity, tx.caller_connection_id, tx.args, tx)


M = TypeVar("M", bound=TxMeta)


class Datastore:
    """Tables and their commit order. ``durability`` defaults to ``InMemory`` (bare tables)."""

    def __init__(self, tables: dict[str, Table], durability: Durability | None = None) -> None:
        self.tables = tables
        self.durability: Durability = durability if durability is not None else InMemory()
        self.lock = threading.RLock()  # held by readers that must not see a transaction half-way
        self.closed = False
        self.next_offset = 0
        self.last_timestamp = 0
        self._commit_listeners: list[CommitListener] = []

    @property
    def last_offset(self) -> int:
        """The offset of the last committed transaction; -1 if none."""
        return self.next_offset - 1

    def add_commit_listener(self, callback: CommitListener) -> None:
        """Call ``callback(tx)`` with each non-empty TxData right after commit (under the lock)."""
        self._commit_listeners.append(callback)

    def remove_commit_listener(self, callback: CommitListener) -> None:
        self._commit_listeners.remove(callback)

    # -- writing ---------------------------------------------------------------------
    def transaction(self, body: Callable[[Transaction, M], object], meta: M) -> TxData:
        """Run ``body(tx, meta)`` as one transaction and commit it; the TxData it made.

        ``meta`` reaches the body so that a caller passes what the body needs in it (a
        ``TxMeta`` subclass) instead of a closure made per call (measured: ~0.25 us a call).

        An exception from ``body`` rolls back and propagates; so does a refusal to write
        (``StorageError``: closed, or the durability failed). The result is not yet durable:
        wait with ``durability.wait_for(tx.offset)``. An empty TxData (nothing changed)
        carries the offset of the last commit.
        """
        logged = meta.replayed
        if logged is None:
            if self.closed:
                raise StorageError("the database is closed")
            if self.durability.failed:
                raise self.durability.refusal()
        with self.lock:
            tx = Transaction(self._next_timestamp() if logged is None else logged.timestamp)
            try:
                body(tx, meta)
            except BaseException:
                tx.rollback()
                raise
            if logged is not None:
                return self._replayed(logged)
            return self._commit(tx, meta)

    def writer(self, caller: Identity) -> Callable[[Callable[[Transaction], object]], TxData]:
        """A ``transact`` function for ``run_sql``: runs a body as a transaction by ``caller``."""
        return lambda body: self.transaction(lambda tx, _meta: body(tx), TxMeta(None, caller))

    def replay(self, logged: TxData) -> None:
        """Apply one transaction read back from the log (at start-up, in offset order)."""
        self.transaction(self._apply_logged, TxMeta.replay(logged))

    def _apply_logged(self, _tx: Transaction, meta: TxMeta) -> None:
        assert meta.replayed is not None
        for name, upd in meta.replayed.tables.items():
            table = self.tables[name]
            for row in upd.deletes:
                table.remove(row)
            for row in upd.inserts:
                table.add(row)

    def _replayed(self, logged: TxData) -> TxData:
        for name, seqs in logged.sequences.items():
            self.tables[name].sequences.update(seqs)
        self.last_timestamp = max(self.last_timestamp, int(logged.timestamp))
        self.next_offset = logged.offset + 1
        return logged

    def _next_timestamp(self) -> Timestamp:
        # Strictly increasing, whatever the wall clock does (stands still within a microsecond, steps
        # back): commit order and `sent` order agree, and two identical rows written by two calls
        # differ in their timestamp instead of collapsing into one under set semantics.
        now = time.time_ns() // 1000
        if now <= self.last_timestamp:
            now = self.last_timestamp + 1
        self.last_timestamp = now
        return Timestamp(now)

    def _commit(self, tx: Transaction, meta: TxMeta) -> TxData:
        offset = self.next_offset
        txdata = tx.commit(offset, meta.reducer, meta.caller, meta.connection_id, meta.args)
        if not txdata.tables:
            txdata.offset = offset - 1
            return txdata
        durability = self.durability
        if durability.writes:
            try:
                durability.append(txdata)
            except BaseException:
                tx.rollback()  # not durable-to-be means not committed: the tables must not keep it either
                raise
        self.next_offset = offset + 1
        for listener in self._commit_listeners:
            listener(txdata)
        durability.published(offset)
        return txdata

    def undo(self, lost: list[TxData]) -> None:
        """Take back committed transactions that never became durable (newest first) and go on
        after the durable offset. Sequences are not wound back: nothing is written again."""
        with self.lock:
            for tx in lost:
                for name, upd in tx.tables.items():
                    table = self.tables[name]
                    for row in upd.inserts:  # decoded rows equal the stored ones: remove finds them
                        table.remove(row)
                    for row in upd.deletes:
                        table.add(row)
            self.next_offset = self.durability.durable_offset + 1

    # -- reading ---------------------------------------------------------------------
    def capture(self) -> Image:
        """The tables as they are between transactions, for a snapshot (rows are immutable)."""
        with self.lock:
            return Image(self.last_offset,
                         [(name, list(t.rows.values()), dict(t.sequences)) for name, t in self.tables.items()],
                         self.last_timestamp)

    def load(self, name: str, rows: list[Any], sequences: dict[str, int]) -> None:
        """Fill table ``name`` from a snapshot, before any transaction."""
        table = self.tables.get(name)
        if table is None:
            raise StorageError(f"snapshot holds table `{name}` that the module does not declare")
        table.load(rows)
        table.sequences.update(sequences)
