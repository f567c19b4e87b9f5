"""The embedded database: a module's tables and reducers over a durable commit log.

    db = Database.open(path_or_None, module)
    conn = db.connect(identity)
    r = db.call("send_message", "hi", sender=identity, connection_id=conn)
    db.disconnect(conn); db.close()

This facade wires the parts: the ``Datastore`` (committed state; every write is
one ``transaction``), its ``Durability`` (the commit log and snapshots, or
nothing in memory), ``Reducers`` (lookup, argument checks, running a call) and
recovery (the data directory at start-up). Reducers run one at a time (a lock
makes the embedded API thread-safe). ``call`` returns once the transaction is
durable; ``submit`` returns at once and the caller waits with
``wait_durable(result.offset)`` or a durable listener, so many calls share one
fsync.

When the commit log fails (a full disk), the database only reads from then on,
until it is reopened: writes raise ``StorageError``, failure listeners are told
(from the log's thread), and the owner calls ``revert_undurable`` on its own
thread so that the tables hold exactly what is on disk again.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .calls import CallResult, CallStatus, Reducers, noop, reducer_args
from .codec import TableCodec, TxCodec
from .commitlog import SnapshotStore
from .commitlog.fsio import PRIVATE_DIR
from .datastore import Datastore
from .dirlock import lock_directory, unlock_directory
from .durability import Durability, DurableListener, FailureListener, LogDurability, flush_now_and_then
from .errors import ConnectionRejected, StorageError
from .logs import ModuleLog
from .module import DbView, ModuleDef, TableHandle, TxSlot, load_module
from .recovery import RecoveryWarning, check_migration, read_meta, recover, write_meta
from .schema import ReducerDef, TableDef
from .sql import PlanCache, SelectPlan, SqlResult, plan_select, run_sql
from .sql.physical import PhysicalPlan
from .system import SYSTEM_TABLES, StClient
from .table import Table
from .tx import Transaction, TxData
from .types import ConnectionId, Identity

__all__ = ["CallResult", "CallStatus", "Database", "RecoveryWarning"]

logger = logging.getLogger("db_core")


class Database:
    """One database: a loaded module, its tables, its log. Use ``Database.open``."""

    def __init__(self, module: ModuleType) -> None:  # use Database.open
        self.path: Path | None = None
        self.module = module
        self.module_def = ModuleDef.from_module(module)
        self.identity: Identity
        self.owner: Identity | None = None
        self.logs: ModuleLog
        self.repairs: list[str] = []
        self.migrations: list[str] = []
        defs: list[TableDef] = [*SYSTEM_TABLES, *self.module_def.tables.values()]
        self.tables: dict[str, Table] = {t.name: Table(t) for t in defs}
        self._reducers: dict[str, ReducerDef] = self.module_def.all_reducers()
        self._codecs = {t.name: TableCodec(t) for t in defs}
        self._txcodec = TxCodec(self._codecs, self._reducers)
        self.store = Datastore(self.tables)
        self.durability: Durability = self.store.durability
        self._calls: Reducers
        self._plans = PlanCache()
        self._lock_fd: int | None = None
        self._reverted = False  # revert_undurable ran after the log failed

    # ------------------------------------------------------------------ open/close
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None,
        module: ModuleType | str | os.PathLike[str],
        *,
        clear: bool = False,
        owner: Identity | None = None,
        keep_connections: frozenset[ConnectionId] = frozenset(),
        sync: bool = True,
        snapshot_every: int = 100_000,
        segment_bytes: int = 16 << 20,
    ) -> "Database":
        """Open (or create) the database at ``path`` (None: in memory) hosting ``module``.

        Raises DatabaseLocked if another process has it open, MigrationError if
        the stored schema is incompatible with the module (unless ``clear``).
        Connections recorded as open are disconnected (their hooks run), except
        ``keep_connections``: live clients a host carries over a module update.
        A server should shorten ``sys.setswitchinterval`` (see chat_server): the
        log's thread hands out results after each fsync.
        """
        db = cls(load_module(module))
        try:
            if path is None:
                db._open_memory(owner)
            else:
                db._open_dir(Path(path), clear=clear, owner=owner, sync=sync, segment_bytes=segment_bytes,
                             snapshot_every=snapshot_every, keep=keep_connections)
        except BaseException:
            db._release()
            raise
        return db

    def _wire_calls(self) -> None:
        slot = TxSlot()
        view = DbView({name: TableHandle(t, slot) for name, t in self.tables.items() if not t.tdef.system})
        self._calls = Reducers(self.store, self._reducers, list(self.module_def.reducers), view, slot,
                               self.identity, self.logs, self.module_def.file)

    def _open_memory(self, owner: Identity | None) -> None:
        self.identity = Identity.random()
        self.owner = owner
        self.logs = ModuleLog(None)
        self._wire_calls()
        self._initialize()

    def _open_dir(self, path: Path, *, clear: bool, owner: Identity | None, sync: bool, segment_bytes: int,
                  snapshot_every: int, keep: frozenset[ConnectionId]) -> None:
        try:
            path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data directory {path}: {exc.strerror}") from None
        self.path = path
        self._lock_fd = lock_directory(path)
        meta = read_meta(path, clear=clear)
        plan = check_migration(meta, self.module_def.tables, path) if meta is not None else None
        self.logs = ModuleLog(path / "module.log")
        if clear:
            self.logs.system("Database cleared")
        if meta is None:
            self.identity = Identity.random()
            self.owner = owner
        else:
            self.identity = Identity.from_hex(meta["identity"])
            self.owner = Identity.from_hex(meta["owner"]) if meta.get("owner") else owner
            if owner is not None:
                self.owner = owner
        snapshots = SnapshotStore(path / "snapshots")
        durability = LogDurability(path / "log", snapshots, self._codecs, self._txcodec, self.schema(),
                                   self.store.capture, snapshot_every=snapshot_every, sync=sync,
                                   segment_bytes=segment_bytes)
        self.store.durability = self.durability = durability
        # The module log is not part of durability; flushing it a few times a second is plenty.
        durability.add_durable_listener(flush_now_and_then(self.logs.flush))
        self.repairs += recover(path, self.store, snapshots, durability, self._codecs, self._txcodec)
        for line in self.repairs:
            logger.warning("%s", line)
            self.logs.system(line, "WARN")
            warnings.warn(line, RecoveryWarning, stacklevel=3)  # the caller of open
        self._wire_calls()
        if meta is None:
            self._write_meta()
            self._initialize()
        else:
            if plan is not None and plan.changed:
                self.migrations = plan.describe()
                for line in self.migrations:
                    self.logs.system(f"Migrating: {line}")
                self._write_meta()
                self.snapshot()
            elif owner is not None and meta.get("owner") != owner.hex():
                self._write_meta()
        self._disconnect_stale(keep)

    def _write_meta(self) -> None:
        assert self.path is not None
        write_meta(self.path, {
            "identity": self.identity.hex(),
            "owner": self.owner.hex() if self.owner else None,
            "module": Path(self.module_def.file).name if self.module_def.file else self.module_def.name,
            "schema": self.schema(),
        })

    def _initialize(self) -> None:
        for name in self.module_def.tables:
            self.logs.system(f"Creating table `{name}`")
        hook = self.module_def.lifecycle.get("init")
        if hook is not None:
            r = self._calls.run(hook.name, hook.func, (), self.owner or self.identity, None)
            if not r.ok:
                self.logs.system(f"init reducer `{hook.name}` failed: {r.error}", "ERROR")
            self.wait_durable(r.offset)
        self.logs.system("Database initialized")

    def _disconnect_stale(self, keep: frozenset[ConnectionId] = frozenset()) -> None:
        stale = [row for row in self.tables["st_client"].rows.values() if row.connection_id not in keep]
        for row in stale:
            self.logs.system(f"Disconnecting connection {row.connection_id.hex()} left open by the last run")
            self.disconnect(row.connection_id, wait=False)
        if stale:
            self.wait_durable(self.last_offset)

    def close(self) -> None:
        """Make everything durable, write a snapshot if the log grew, release the directory.

        Raises StorageError if the log fails now, so what was committed since its last sync is lost
        (a log that failed earlier was reported then, and closes quietly). A snapshot that cannot be
        written is only logged: the log holds everything it would have.
        """
        if self.store.closed:
            return
        try:
            self.durability.close()
        finally:
            self._release()

    def _release(self) -> None:
        """Let go of everything without waiting for the disk (as a crash would, for what is not synced)."""
        self.store.closed = True
        self.durability.abandon()
        if hasattr(self, "logs"):
            self.logs.close()
        if self._lock_fd is not None:
            unlock_directory(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reducers
    @property
    def reducers(self) -> dict[str, ReducerDef]:
        """Every reducer of the module by name, lifecycle ones included (read-only)."""
        return self._reducers

    @property
    def codecs(self) -> dict[str, TableCodec]:
        """The wire codec of every table by name, system tables included (read-only)."""
        return self._codecs

    def reducer(self, name: str) -> ReducerDef:
        """The callable reducer ``name``; NoSuchReducer suggesting the closest name."""
        return self._calls.lookup(name)

    def no_such_reducer_message(self, name: str, database: str | None = None) -> str:
        return self._calls.no_such_reducer_message(name, database)

    def submit(self, name: str, *args: Any, sender: Identity, connection_id: ConnectionId | None = None,
               wire: bool = False) -> CallResult:
        """Run a reducer now; the result is not yet durable (wait with ``wait_durable(result.offset)``).

        Raises CallError if nothing ran: no such reducer, a lifecycle one, or arguments that do
        not fit (``reducer_args``: with ``wire``, converted from wire values first); StorageError
        if nothing can be written.
        """
        rdef = self._reducers.get(name)
        if rdef is None or rdef.lifecycle:
            rdef = self._calls.lookup(name)
        return self._calls.run(name, rdef.func, reducer_args(rdef, args, wire=wire), sender, connection_id)

    def call(self, name: str, *args: Any, sender: Identity, connection_id: ConnectionId | None = None) -> CallResult:
        """Run a reducer and return once its transaction is durable."""
        result = self.submit(name, *args, sender=sender, connection_id=connection_id)
        self.durability.wait_for(result.offset)
        return result

    def transact(self, body: Callable[[Transaction], Any], *, sender: Identity) -> CallResult:
        """Run ``body(tx)`` as one transaction outside any reducer (tools and tests fill tables so).

        Any exception rolls back and propagates. The result is not yet durable.
        """
        tx = self.store.writer(sender)(body)
        return CallResult(CallStatus.COMMITTED, None, tx, self.last_offset)

    # ------------------------------------------------------------------ connections
    def connect_nowait(self, identity: Identity, connection_id: ConnectionId | None = None) -> CallResult:
        """Run client_connected and record the connection; the result carries the new connection id.
        Wait for ``result.offset`` before telling anyone."""
        cid = connection_id or ConnectionId.random()
        hook = self.module_def.lifecycle.get("client_connected")
        table = self.tables["st_client"]

        def record(tx: Transaction) -> None:
            tx.insert(table, StClient(connection_id=cid, identity=identity))

        result = self._calls.run(hook.name if hook else "client_connected", hook.func if hook else noop, (),
                                 identity, cid, extra=record)
        result.connection_id = cid
        return result

    def connect(self, identity: Identity, connection_id: ConnectionId | None = None) -> ConnectionId:
        """Connect a client; ConnectionRejected(message) if client_connected fails."""
        result = self.connect_nowait(identity, connection_id)
        if not result.ok:
            raise ConnectionRejected(result.error or "connection rejected")
        self.wait_durable(result.offset)
        assert result.connection_id is not None
        return result.connection_id

    def disconnect(self, connection_id: ConnectionId, *, wait: bool = True) -> CallResult:
        """Run client_disconnected and forget the connection (a hook failure is only logged)."""
        table = self.tables["st_client"]
        row = table.rows.get(connection_id)
        identity = row.identity if row is not None else Identity(bytes(32))
        hook = self.module_def.lifecycle.get("client_disconnected")

        def forget(tx: Transaction) -> None:
            if row is not None:
                tx.delete(table, row)

        name = hook.name if hook else "client_disconnected"
        if self.durability.failed:
            # Nothing can be written: the row stays, and the next start disconnects it (hooks and all).
            return CallResult(CallStatus.INTERNAL_ERROR, str(self.durability.refusal()), None, self.last_offset,
                              connection_id)
        result = self._calls.run(name, hook.func if hook else noop, (), identity, connection_id, extra=forget)
        if not result.ok:
            self.logs.system(f"client_disconnected failed for {identity.hex()}: {result.error}", "ERROR")
            result = self._calls.run(name, noop, (), identity, connection_id, extra=forget)
        if wait:
            self.wait_durable(result.offset)
        return result

    def connections(self) -> list[tuple[ConnectionId, Identity]]:
        return [(r.connection_id, r.identity) for r in self.tables["st_client"].rows.values()]

    # ------------------------------------------------------------------ durability
    @property
    def durable_offset(self) -> int:
        """Every transaction with an offset up to this one is on disk (or, in memory, committed)."""
        return self.durability.durable_offset

    @property
    def last_offset(self) -> int:
        """The offset of the last commit (-1: none yet)."""
        return self.store.last_offset

    def wait_durable(self, offset: int, timeout: float | None = None) -> bool:
        """Block until ``offset`` is durable: True, False if ``timeout`` passed first."""
        return self.durability.wait_for(offset, timeout)

    def hold_commits(self) -> None:
        """Let commits queue without starting an fsync until ``release_commits`` (see ``CommitLog.hold``).

        A server holds while it handles one batch of requests, so that they share one fsync and one
        round of updates; ``wait_durable`` releases the hold rather than wait on it.
        """
        self.durability.hold()

    def release_commits(self) -> None:
        """End ``hold_commits``: everything committed since goes to disk together."""
        self.durability.release()

    def add_commit_listener(self, callback: Callable[[TxData], None]) -> None:
        """Called with each non-empty TxData right after commit (under the writer lock)."""
        self.store.add_commit_listener(callback)

    def remove_commit_listener(self, callback: Callable[[TxData], None]) -> None:
        self.store.remove_commit_listener(callback)

    def add_durable_listener(self, callback: DurableListener) -> None:
        """Called with the new durable offset after each group commit (from the log's thread)."""
        self.durability.add_durable_listener(callback)

    def add_failure_listener(self, callback: FailureListener) -> None:
        """Called once, from the log's thread, when the commit log fails for good (e.g. the disk is full),
        with the error writes get from then on. Keep it short and touch no table there: have the
        database's own thread call ``revert_undurable`` next."""
        self.durability.add_failure_listener(callback)

    @property
    def write_failure(self) -> str | None:
        """Why the database no longer writes, e.g. ``cannot write to disk: [Errno 28] No space left on
        device``; None while it does."""
        return self.durability.write_failure

    @property
    def revert_pending(self) -> bool:
        """The commit log failed and ``revert_undurable`` has not run yet."""
        return self.durability.failed and not self._reverted

    def revert_undurable(self) -> list[TxData]:
        """After the commit log failed: undo in memory every committed transaction that never became
        durable, newest first, and return them (nobody was told of them; they are not on disk).

        The tables then hold exactly what is on disk, and reads go on from there. Call it on the
        thread that owns the database, never from a failure listener. Sequences are not wound
        back: nothing is written again before the database is reopened. Returns [] while the log
        works (everything committed is on its way to disk) or once reverted.
        """
        if not self.durability.failed:
            return []
        self._reverted = True
        with self.store.lock:
            undone = self.durability.undurable(before=self.store.next_offset)
            self.store.undo(undone)
        if undone:
            n = len(undone)
            self.logs.system(f"The database {self.write_failure}: it only reads until restarted; undid the {n}"
                             f" transaction{'s' if n != 1 else ''} that never reached the disk", "ERROR")
        return undone

    def snapshot(self) -> int:
        """Write a snapshot of every table now (synchronously); returns its offset."""
        image = self.store.capture()
        self.durability.snapshot(image)
        return image.offset

    # ------------------------------------------------------------------ SQL
    def sql(self, query: str, *, sender: Identity | None = None, wait: bool = True) -> SqlResult:
        """Run one SQL statement as ``sender`` (default: the owner); returns an ``SqlResult``.

        A caller who is not the owner sees only public tables and may not run DML. DML runs
        as one transaction, logged like a reducer's; with ``wait`` it returns once durable.
        """
        who = sender if sender is not None else (self.owner or self.identity)
        is_owner = sender is None or who == self.owner
        if self.durability.failed:
            self.revert_undurable()  # a read after a failure sees what is on disk, nothing else
        store = self.store
        with store.lock:  # reads must not see a transaction half-way
            result = run_sql(query, tables=self.tables, sender=who, is_owner=is_owner,
                             transact=store.writer(who), cache=self._plans)
        if wait and result.tx is not None:
            self.wait_durable(result.tx.offset)
        return result

    def prepare_select(self, query: str, *, sender: Identity) -> tuple[SelectPlan, PhysicalPlan] | None:
        """The plans of a SELECT by ``sender``, to run it (e.g. in slices, over a ``ReadView``);
        None if ``query`` is DML (run it with ``sql``). Raises ``SqlError``."""
        with self.store.lock:
            return plan_select(query, tables=self.tables, sender=sender, is_owner=sender == self.owner,
                               cache=self._plans)

    # ------------------------------------------------------------------ schema
    def schema(self) -> dict[str, Any]:
        """The module's tables and reducers as JSON (stored with the data; shown by describe)."""
        return {
            "tables": [t.describe() for t in self.module_def.tables.values()],
            "reducers": [r.describe() for r in self.module_def.all_reducers().values()],
        }

