"""The embedded database: a module's tables and reducers over a durable commit log.

    db = Database.open(path_or_None, module)
    conn = db.connect(identity)
    r = db.call("send_message", "hi", sender=identity, connection_id=conn)
    db.disconnect(conn); db.close()

Reducers run one at a time (a lock makes the embedded API thread-safe). A
commit produces one ``TxData``; it is encoded into the commit log, handed to
commit listeners (subscriptions), and returned in the ``CallResult``. ``call``
returns once the transaction is durable; ``submit`` returns at once and the
caller waits with ``wait_durable(result.offset)`` or a durability listener, so
many calls share one fsync.

When the commit log fails (a full disk), the database only reads from then on,
until it is reopened: writes raise ``StorageError``, failure listeners are told
(from the log's thread), and the owner calls ``revert_undurable`` on its own
thread so that the tables hold exactly what is on disk again.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import gc
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .codec import TableCodec, TxCodec, decode_snapshot, encode_snapshot
from .commitlog import CommitLog, SnapshotStore
from .commitlog.fsio import PRIVATE_DIR, private_opener
from .dirlock import lock_directory, unlock_directory
from .errors import (ConnectionRejected, InvalidArguments, MigrationError, NoSuchReducer,
                     NotCallable, ReducerError, StorageError)
from .logs import LogRecord, ModuleLog
from .migration import MigrationPlan, plan_migration
from .module import DbView, ModuleDef, ReducerContext, TableHandle, TxSlot, load_module
from .module import _sink as _log_sink
from .schema import ReducerDef, TableDef
from .sql import PlanCache, SelectPlan, SqlResult, plan_select, run_sql
from .sql.execute import PhysicalPlan
from .system import SYSTEM_TABLES, StClient
from .table import Table
from .tx import Transaction, TxData
from .types import ConnectionId, Identity, Timestamp

logger = logging.getLogger("db_core")
META_FORMAT = 1
_SWITCH_INTERVAL = 50e-6


class RecoveryWarning(UserWarning):
    """Start-up found and cut off a torn or corrupt tail (or skipped a bad snapshot)."""


@dataclasses.dataclass(slots=True)
class CallResult:
    """The outcome of one reducer call.

    ``status`` is ``committed``, ``failed`` (a ReducerError: ``error`` is its
    text) or ``internal_error`` (a panic). ``offset`` is the log offset the
    result must wait for before anyone is told (-1: nothing to wait for).
    """

    ok: bool
    error: str | None
    tx: TxData | None
    offset: int
    status: str
    connection_id: ConnectionId | None = None

    @property
    def committed_no_changes(self) -> bool:
        return self.ok and self.tx is not None and self.tx.is_empty


class Database:
    """One database: a loaded module, its tables, its log. Use ``Database.open``."""

    def __init__(self) -> None:  # use Database.open
        self.path: Path | None = None
        self.module: ModuleType
        self.module_def: ModuleDef
        self.identity: Identity
        self.owner: Identity | None = None
        self.tables: dict[str, Table] = {}
        self.logs: ModuleLog
        self.repairs: list[str] = []
        self.migrations: list[str] = []
        self._lock = threading.RLock()
        self._plans = PlanCache()
        self._slot = TxSlot()
        self._view: DbView
        self._codecs: dict[str, TableCodec] = {}
        self._txcodec: TxCodec
        self._reducers: dict[str, ReducerDef] = {}
        self._clog: CommitLog | None = None
        self._snapshots: SnapshotStore | None = None
        self._next_offset = 0
        self._last_ts = 0
        self._since_snapshot = 0
        self._snapshot_every = 100_000
        self._snapshot_thread: threading.Thread | None = None
        self._commit_listeners: list[Callable[[TxData], None]] = []
        self._durable_listeners: list[Callable[[int], None]] = []
        self._failure_listeners: list[Callable[[StorageError], None]] = []
        self._lock_fd: int | None = None
        self._closed = False
        self._log_flushed = 0.0
        self._failed: BaseException | None = None
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
        """
        db = cls()
        db._snapshot_every = snapshot_every
        mod = load_module(module)
        db.module = mod
        db.module_def = ModuleDef.from_module(mod)
        db._reducers = db.module_def.all_reducers()
        if path is not None and sys.getswitchinterval() > _SWITCH_INTERVAL:
            # The commit-log thread must get the GIL back promptly after each fsync to hand out
            # results; at the default 5 ms a busy caller starves it (measured: 50k -> 62k calls/s).
            sys.setswitchinterval(_SWITCH_INTERVAL)
        try:
            if path is None:
                db._open_memory(owner)
            else:
                db._open_dir(Path(path), clear=clear, owner=owner, sync=sync, segment_bytes=segment_bytes,
                             keep=keep_connections)
        except BaseException:
            db._release()
            raise
        return db

    def _build_tables(self) -> None:
        defs: list[TableDef] = [*SYSTEM_TABLES, *self.module_def.tables.values()]
        self.tables = {t.name: Table(t) for t in defs}
        self._codecs = {t.name: TableCodec(t) for t in defs}
        self._txcodec = TxCodec(self._codecs, self._reducers)
        self._view = DbView({name: TableHandle(t, self._slot) for name, t in self.tables.items() if not t.tdef.system})

    def _open_memory(self, owner: Identity | None) -> None:
        self.identity = Identity.random()
        self.owner = owner
        self.logs = ModuleLog(None)
        self._build_tables()
        self._initialize()

    def _open_dir(self, path: Path, *, clear: bool, owner: Identity | None, sync: bool, segment_bytes: int,
                  keep: frozenset[ConnectionId]) -> None:
        try:
            path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data directory {path}: {exc.strerror}") from None
        self.path = path
        self._lock_fd = lock_directory(path)
        meta_path = path / "meta.json"
        meta = _read_json(meta_path)
        if clear and meta is not None:
            for sub in ("log", "snapshots"):
                shutil.rmtree(path / sub, ignore_errors=True)
            meta_path.unlink()
            meta = None
        plan: MigrationPlan | None = None
        if meta is not None:
            plan = plan_migration(meta["schema"], self.module_def.tables)
            if not plan.compatible:
                raise MigrationError(
                    f"the module is incompatible with the data in {path}: " + "; ".join(plan.problems)
                    + ". Publish with a clear (--clear-database) to start over, losing the data."
                )
        self.logs = ModuleLog(path / "module.log")
        if clear:
            self.logs.system("Database cleared")
        self._build_tables()
        self._snapshots = SnapshotStore(path / "snapshots")
        if meta is None:
            self.identity = Identity.random()
            self.owner = owner
        else:
            self.identity = Identity.from_hex(meta["identity"])
            self.owner = Identity.from_hex(meta["owner"]) if meta.get("owner") else owner
            if owner is not None:
                self.owner = owner
        self._recover(path, sync=sync, segment_bytes=segment_bytes)
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
        meta = {
            "format": META_FORMAT,
            "identity": self.identity.hex(),
            "owner": self.owner.hex() if self.owner else None,
            "module": Path(self.module_def.file).name if self.module_def.file else self.module_def.name,
            "schema": self.schema(),
        }
        try:
            _write_json_atomic(self.path / "meta.json", meta)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path / 'meta.json'}: {exc}") from None

    def _recover(self, path: Path, *, sync: bool, segment_bytes: int) -> None:
        assert self._snapshots is not None
        start = 0
        latest = self._snapshots.latest()
        self.repairs += self._snapshots.repairs
        if latest is not None:
            offset, payload = latest
            self._load_snapshot(decode_snapshot(payload))
            start = offset + 1
        clog = CommitLog.open(path / "log", segment_bytes=segment_bytes, sync=sync,
                              on_durable=self._on_durable, on_error=self._on_log_error)
        self._clog = clog
        self.repairs += clog.repairs
        first = clog.first_offset()
        if first is not None and first > start:
            raise StorageError(
                f"commit log in {path / 'log'} starts at offset {first} but the data covers only up to {start - 1}:"
                " segments are missing"
            )
        replayed = 0
        decode = self._txcodec.decode
        for offset, payload in clog.replay(start):
            self._apply(decode(offset, payload))
            replayed += 1
        if clog.next_offset < start:
            # The log lost records the snapshot holds (its damaged tail was cut): nothing is missing,
            # so the log goes on after the snapshot, its covered segments set aside.
            end = clog.next_offset - 1
            aside = clog.continue_at(start)
            self.repairs.append(
                f"commit log in {path / 'log'} ends at offset {end if end >= 0 else 'none'}, before the snapshot at"
                f" offset {start - 1}, which holds all of it: continued the log at offset {start}"
                + (f" and set aside {', '.join(p.name for p in aside)}" if aside else "")
            )
        self._next_offset = clog.next_offset
        self._since_snapshot = replayed
        for line in self.repairs:
            logger.warning("%s", line)
            self.logs.system(line, "WARN")
            warnings.warn(line, RecoveryWarning, stacklevel=4)

    def _load_snapshot(self, snap: dict[str, Any]) -> None:
        for name, data in snap["tables"].items():
            table = self.tables.get(name)
            if table is None:
                raise StorageError(f"snapshot holds table `{name}` that the module does not declare")
            rows = self._codecs[name].decode_columns(data["columns"], data["count"])
            table.load(rows)
            table.sequences.update(data.get("sequences") or {})
        self._last_ts = max(self._last_ts, snap.get("timestamp", 0))

    def _apply(self, tx: TxData) -> None:
        """Replay one logged transaction onto the tables."""
        for name, upd in tx.tables.items():
            table = self.tables[name]
            for row in upd.deletes:
                table.remove(row)
            for row in upd.inserts:
                table.add(row)
        for name, seqs in tx.sequences.items():
            self.tables[name].sequences.update(seqs)
        if tx.timestamp > self._last_ts:
            self._last_ts = int(tx.timestamp)

    def _initialize(self) -> None:
        for name in self.module_def.tables:
            self.logs.system(f"Creating table `{name}`")
        hook = self.module_def.lifecycle.get("init")
        if hook is not None:
            owner = self.owner or self.identity
            r = self._run(hook.name, hook.func, (), owner, None)
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
            self.wait_durable(self._next_offset - 1)

    def close(self) -> None:
        """Make everything durable, write a snapshot if the log grew, release the directory.

        Raises StorageError if the log fails now, so what was committed since its last sync is lost
        (a log that failed earlier was reported then, and closes quietly). A snapshot that cannot be
        written is only logged: the log holds everything it would have.
        """
        if self._closed:
            return
        try:
            if self._clog is not None and self._failed is None:
                self._clog.flush()
                if self._snapshot_thread is not None:
                    self._snapshot_thread.join()
                if self._since_snapshot:
                    try:
                        self.snapshot()
                    except StorageError as exc:
                        logger.warning("no snapshot at close: %s", exc)
        finally:
            self._closed = True
            self._release()

    def _release(self) -> None:
        if self._clog is not None:
            try:
                self._clog.close()
            except StorageError:
                pass
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
    def reducer(self, name: str) -> ReducerDef:
        """The callable reducer ``name``; NoSuchReducer suggesting the closest name."""
        rdef = self._reducers.get(name)
        if rdef is None:
            raise NoSuchReducer(self.no_such_reducer_message(name))
        if rdef.lifecycle:
            raise NotCallable(f"`{name}` is a lifecycle reducer (@{rdef.lifecycle}); it runs on its event and cannot be called")
        return rdef

    def no_such_reducer_message(self, name: str, database: str | None = None) -> str:
        where = f" in database `{database}`" if database else ""
        head = f"no such reducer `{name}`{where}."
        callable_names = sorted(self.module_def.reducers)
        close = difflib.get_close_matches(name, callable_names, n=1, cutoff=0.6)
        if close:
            return f"{head} A reducer with a similar name exists: `{close[0]}`"
        if callable_names:
            return f"{head} Its reducers are: " + ", ".join(f"`{n}`" for n in callable_names)
        return f"{head} It has no reducers."

    def check_args(self, rdef: ReducerDef, args: tuple[Any, ...]) -> None:
        """InvalidArguments unless ``args`` match ``rdef``'s typed parameters exactly."""
        params = rdef.params
        if len(args) != len(params):
            raise InvalidArguments(
                f"reducer `{rdef.name}` takes {len(params)} argument{'s' if len(params) != 1 else ''}"
                f" ({', '.join(f'{n}: {t.name}' for n, t in params) or 'none'}), got {len(args)}"
            )
        for (pname, ptype), value in zip(params, args):
            if not ptype.check(value):
                raise InvalidArguments(
                    f"reducer `{rdef.name}`: argument `{pname}` must be {ptype.name}, got {type(value).__name__} {value!r:.60}"
                )

    def submit(self, name: str, *args: Any, sender: Identity, connection_id: ConnectionId | None = None) -> CallResult:
        """Run a reducer now; the result is not yet durable (see ``wait_durable``)."""
        rdef = self._reducers.get(name)
        if rdef is None or rdef.lifecycle:
            rdef = self.reducer(name)
        self.check_args(rdef, args)
        return self._run(name, rdef.func, args, sender, connection_id)

    def submit_checked(self, rdef: ReducerDef, args: tuple[Any, ...], sender: Identity,
                       connection_id: ConnectionId | None = None) -> CallResult:
        """``submit`` for a caller that already checked: ``rdef`` is callable (``reducer``) and ``args``
        match its parameters (e.g. converted from the wire with their types)."""
        return self._run(rdef.name, rdef.func, args, sender, connection_id)

    def call(self, name: str, *args: Any, sender: Identity, connection_id: ConnectionId | None = None) -> CallResult:
        """Run a reducer and return once its transaction is durable."""
        result = self.submit(name, *args, sender=sender, connection_id=connection_id)
        self.wait_durable(result.offset)
        return result

    def _run(self, name: str, func: Callable[..., Any], args: tuple[Any, ...], sender: Identity,
             connection_id: ConnectionId | None, extra: Callable[[Transaction], None] | None = None) -> CallResult:
        if self._closed:
            raise StorageError("the database is closed")
        if self._failed is not None:
            raise self._refusal()
        with self._lock:
            ts = self._next_timestamp()
            tx = Transaction()
            self._slot.tx = tx
            sink = _log_sink
            previous_sink = getattr(sink, "log", None)
            sink.log = self.logs
            try:
                func(ReducerContext(sender, connection_id, ts, self._view, self.identity), *args)
                if extra is not None:
                    extra(tx)
            except ReducerError as exc:
                tx.rollback()
                return CallResult(False, str(exc), None, self._next_offset - 1, "failed", connection_id)
            except BaseException as exc:  # noqa: BLE001 - even sys.exit() in a reducer is only its own panic
                tx.rollback()
                self._log_panic(name, exc)
                return CallResult(False, f"internal error: {_describe(exc)}", None,
                                  self._next_offset - 1, "internal_error", connection_id)
            finally:
                self._slot.tx = None
                sink.log = previous_sink
            return CallResult(True, None, self._commit(tx, ts, name, sender, connection_id, args), self._next_offset - 1,
                              "committed", connection_id)

    def _next_timestamp(self) -> Timestamp:
        # Strictly increasing, whatever the wall clock does (stands still within a microsecond, steps
        # back): commit order and `sent` order agree, and two identical rows written by two calls
        # differ in their timestamp instead of collapsing into one under set semantics.
        now = time.time_ns() // 1000
        if now <= self._last_ts:
            now = self._last_ts + 1
        self._last_ts = now
        return Timestamp(now)

    def transact(self, body: Callable[[Transaction], Any], *, sender: Identity) -> CallResult:
        """Run ``body(tx)`` as one transaction outside any reducer (SQL DML uses this).

        Any exception rolls back and propagates. The result is not yet durable.
        """
        if self._closed:
            raise StorageError("the database is closed")
        if self._failed is not None:
            raise self._refusal()
        with self._lock:
            ts = self._next_timestamp()
            tx = Transaction()
            try:
                body(tx)
            except BaseException:
                tx.rollback()
                raise
            txdata = self._commit(tx, ts, None, sender, None, ())
            return CallResult(True, None, txdata, self._next_offset - 1, "committed")

    def _commit(self, tx: Transaction, ts: Timestamp, name: str | None, sender: Identity,
                connection_id: ConnectionId | None, args: tuple[Any, ...]) -> TxData:
        offset = self._next_offset
        txdata = tx.commit(offset, ts, name, sender, connection_id, args)
        if txdata.tables:
            if self._clog is not None:
                try:
                    self._clog.append(offset, self._txcodec.encode(txdata))
                except BaseException:
                    # Not in the log means not committed: the tables must not keep it either.
                    tx.rollback()
                    if self._clog.failed is not None:
                        raise self._refusal() from None
                    raise
            self._next_offset = offset + 1
            if self._clog is not None:
                self._since_snapshot += 1
                if self._since_snapshot >= self._snapshot_every:
                    self._snapshot_in_background()
            for listener in self._commit_listeners:
                listener(txdata)
            if self._clog is None:
                for dlistener in self._durable_listeners:
                    dlistener(offset)
        else:
            txdata.offset = offset - 1
        return txdata

    def _log_panic(self, name: str, exc: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        frames = traceback.extract_tb(exc.__traceback__)
        module_file = self.module_def.file
        frame = next((f for f in reversed(frames) if f.filename == module_file), frames[-1] if frames else None)
        self.logs.emit(LogRecord(
            time.time_ns() // 1000, "ERROR",
            os.path.basename(frame.filename) if frame else None, frame.lineno if frame else None,
            f"reducer `{name}` panicked: {_describe(exc)}\n{tb.rstrip()}",
        ))

    # ------------------------------------------------------------------ connections
    def connect_nowait(self, identity: Identity, connection_id: ConnectionId | None = None) -> CallResult:
        """Run client_connected and record the connection; the result carries the new connection id."""
        cid = connection_id or ConnectionId.random()
        hook = self.module_def.lifecycle.get("client_connected")
        table = self.tables["st_client"]

        def record(tx: Transaction) -> None:
            tx.insert(table, StClient(connection_id=cid, identity=identity))

        result = self._run(hook.name if hook else "client_connected", hook.func if hook else _noop, (),
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
        if self._failed is not None:
            # Nothing can be written: the row stays, and the next start disconnects it (hooks and all).
            return CallResult(False, str(self._refusal()), None, self._next_offset - 1, "internal_error", connection_id)
        result = self._run(name, hook.func if hook else _noop, (), identity, connection_id, extra=forget)
        if not result.ok:
            self.logs.system(f"client_disconnected failed for {identity.hex()}: {result.error}", "ERROR")
            result = self._run(name, _noop, (), identity, connection_id, extra=forget)
        if wait:
            self.wait_durable(result.offset)
        return result

    def connections(self) -> list[tuple[ConnectionId, Identity]]:
        return [(r.connection_id, r.identity) for r in self.tables["st_client"].rows.values()]

    # ------------------------------------------------------------------ durability
    @property
    def durable_offset(self) -> int:
        """Every transaction with an offset up to this one is on disk (or, in memory, committed)."""
        return self._clog.durable_offset if self._clog is not None else self._next_offset - 1

    @property
    def codecs(self) -> dict[str, TableCodec]:
        """Each table's row codec, by table name (read-only)."""
        return self._codecs

    @property
    def reducers(self) -> dict[str, ReducerDef]:
        """Every reducer of the module, lifecycle ones included, by name (read-only)."""
        return self._reducers

    @property
    def last_offset(self) -> int:
        return self._next_offset - 1

    def wait_durable(self, offset: int, timeout: float | None = None) -> bool:
        if offset < 0 or self._clog is None:
            return True
        return self._clog.wait_durable(offset, timeout)

    def hold_commits(self) -> None:
        """Let commits queue without starting an fsync until ``release_commits`` (see ``CommitLog.hold``).

        A server holds while it handles one batch of requests, so that they share one fsync and one
        round of updates; ``wait_durable`` releases the hold rather than wait on it.
        """
        if self._clog is not None:
            self._clog.hold()

    def release_commits(self) -> None:
        """End ``hold_commits``: everything committed since goes to disk together."""
        if self._clog is not None:
            self._clog.release()

    def add_commit_listener(self, callback: Callable[[TxData], None]) -> None:
        """Called with each non-empty TxData right after commit (under the writer lock)."""
        self._commit_listeners.append(callback)

    def remove_commit_listener(self, callback: Callable[[TxData], None]) -> None:
        self._commit_listeners.remove(callback)

    def add_durable_listener(self, callback: Callable[[int], None]) -> None:
        """Called with the new durable offset after each group commit (from the log's thread)."""
        self._durable_listeners.append(callback)

    def remove_durable_listener(self, callback: Callable[[int], None]) -> None:
        self._durable_listeners.remove(callback)

    def add_failure_listener(self, callback: Callable[[StorageError], None]) -> None:
        """Called once, from the log's thread, when the commit log fails for good (e.g. the disk is full),
        with the error writes get from then on. Keep it short and touch no table there: have the
        database's own thread call ``revert_undurable`` next."""
        self._failure_listeners.append(callback)

    def remove_failure_listener(self, callback: Callable[[StorageError], None]) -> None:
        self._failure_listeners.remove(callback)

    @property
    def write_failure(self) -> str | None:
        """Why the database no longer writes, e.g. ``cannot write to disk: [Errno 28] No space left on
        device``; None while it does."""
        # The log's own error: set before the failure listeners run, so a write refused in between says why.
        failed = self._clog.failed if self._clog is not None else None
        if failed is None:
            return None
        return f"cannot write to disk: {failed.__cause__ or failed}"

    def _refusal(self) -> StorageError:
        failed = self._clog.failed if self._clog is not None else None
        cause = failed.__cause__ if failed is not None else None
        full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        return StorageError(f"the database {self.write_failure}; restart the server once "
                            + ("there is space" if full else "the disk works again"))

    @property
    def revert_pending(self) -> bool:
        """The commit log failed and ``revert_undurable`` has not run yet."""
        return self._failed is not None and self._clog is not None and not self._reverted

    def revert_undurable(self) -> list[TxData]:
        """After the commit log failed: undo in memory every committed transaction that never became
        durable, newest first, and return them (nobody was told of them; they are not on disk).

        The tables then hold exactly what is on disk, and reads go on from there. Call it on the
        thread that owns the database, never from a failure listener. Sequences are not wound
        back: nothing is written again before the database is reopened. Returns [] while the log
        works (everything committed is on its way to disk) or once reverted.
        """
        if self._failed is None or self._clog is None:
            return []
        self._reverted = True
        with self._lock:
            # The log still holds the bytes of what it could not write: decoding them here costs
            # nothing until a failure, where keeping every TxData until durable cost each call
            # (measured: 10-20% more CPU per call, from the collector walking them).
            lost = [(offset, payload) for offset, payload in self._clog.undurable() if offset < self._next_offset]
            undone = [self._txcodec.decode(offset, payload) for offset, payload in reversed(lost)]
            for tx in undone:
                for name, upd in tx.tables.items():
                    table = self.tables[name]
                    for row in upd.inserts:  # decoded rows equal the stored ones: remove finds them
                        table.remove(row)
                    for row in upd.deletes:
                        table.add(row)
            self._next_offset = self._clog.durable_offset + 1
        if undone:
            n = len(undone)
            self.logs.system(f"The database {self.write_failure}: it only reads until restarted; undid the {n}"
                             f" transaction{'s' if n != 1 else ''} that never reached the disk", "ERROR")
        return undone

    def _on_durable(self, offset: int) -> None:
        for listener in self._durable_listeners:
            listener(offset)
        now = time.monotonic()
        if now - self._log_flushed > 0.2:
            # The module log is not part of durability; flushing it a few times a second is plenty.
            self._log_flushed = now
            self.logs.flush()

    def _on_log_error(self, exc: BaseException) -> None:
        self._failed = exc
        logger.error("commit log failed: %s", exc)
        refusal = self._refusal()
        for listener in self._failure_listeners:
            try:
                listener(refusal)
            except Exception:
                logger.exception("a failure listener failed")

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> int:
        """Write a snapshot of every table now (synchronously); returns its offset."""
        if self._snapshots is None or self._clog is None:
            return self._next_offset - 1
        with self._lock:
            offset, rows = self._capture()
        self._write_snapshot(offset, rows)
        return offset

    def _capture(self) -> tuple[int, list[tuple[TableCodec, list[Any], dict[str, int]]]]:
        self._since_snapshot = 0
        return self._next_offset - 1, [
            (self._codecs[name], list(t.rows.values()), dict(t.sequences)) for name, t in self.tables.items()
        ]

    def _write_snapshot(self, offset: int, rows: list[tuple[TableCodec, list[Any], dict[str, int]]]) -> None:
        assert self._snapshots is not None and self._clog is not None
        if offset < 0:
            return  # nothing was ever committed
        # The log must hold everything up to the snapshot before older segments may go.
        self._clog.wait_durable(offset)
        payload = encode_snapshot(offset, self.schema(), rows, self._last_ts)
        self._snapshots.write(offset, payload)
        self._clog.truncate_before(offset + 1)

    def _snapshot_in_background(self) -> None:
        if self._snapshot_thread is not None and self._snapshot_thread.is_alive():
            return
        offset, rows = self._capture()
        child = self._fork_snapshot_writer(offset, rows) if _CAN_FORK else None

        def work() -> None:
            try:
                if child is None:
                    self._write_snapshot(offset, rows)
                else:
                    self._finish_forked_snapshot(child, offset)
            except Exception as exc:  # a failed snapshot loses nothing: the log still has it all
                logger.error("snapshot at offset %d failed: %s", offset, exc)

        self._snapshot_thread = threading.Thread(target=work, name="db-snapshot", daemon=True)
        self._snapshot_thread.start()

    def _fork_snapshot_writer(self, offset: int, rows: list[tuple[TableCodec, list[Any], dict[str, int]]]) -> int | None:
        """Fork a child that writes the snapshot of ``rows`` as pending and exits; its pid (None: not forked)."""
        if offset < 0 or self._snapshots is None:
            return None
        store = self._snapshots
        schema, last_ts = self.schema(), self._last_ts
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: "multi-threaded, fork() may deadlock"
                pid = os.fork()
        except OSError as exc:
            logger.warning("cannot fork a snapshot writer (%s); writing it on a thread", exc)
            return None
        if pid:
            return pid
        # The child: the only thread left is this one. Touch nothing another thread may have held
        # (locks, the log, logging, the event loop), drop every inherited descriptor (sockets, the
        # directory lock, the log) so that nothing outlives the parent, and leave without cleanup.
        code = 1
        try:
            gc.disable()  # a collection would touch (and so copy) every page of the parent's heap
            try:  # a terminal's ctrl+c reaches the child too: it must stop, not wake the parent's loop
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
            except (ValueError, OSError):
                pass
            os.closerange(3, _max_fd())
            store.write_pending(offset, encode_snapshot(offset, schema, rows, last_ts))
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported by the exit code; the parent logs it
            try:
                os.write(2, f"snapshot writer: {type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)

    def _finish_forked_snapshot(self, pid: int, offset: int) -> None:
        """Wait for the child that wrote the pending snapshot, then publish it once the log holds ``offset``."""
        assert self._snapshots is not None and self._clog is not None
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self._snapshots.discard(offset)
            raise StorageError(f"the snapshot writer (pid {pid}) exited with {code}")
        self._clog.wait_durable(offset)  # as _write_snapshot: the log must hold what the snapshot does
        self._snapshots.publish(offset)
        self._clog.truncate_before(offset + 1)

    # ------------------------------------------------------------------ SQL
    def sql(self, query: str, *, sender: Identity | None = None, wait: bool = True) -> SqlResult:
        """Run one SQL statement as ``sender`` (default: the owner); returns an ``SqlResult``.

        A caller who is not the owner sees only public tables and may not run DML. DML runs
        as one transaction, logged like a reducer's; with ``wait`` it returns once durable.
        """
        who = sender if sender is not None else (self.owner or self.identity)
        is_owner = sender is None or who == self.owner
        if self._failed is not None:
            self.revert_undurable()  # a read after a failure sees what is on disk, nothing else
        with self._lock:  # reads must not see a transaction half-way
            result = run_sql(query, tables=self.tables, sender=who, is_owner=is_owner,
                             transact=lambda body: self.transact(body, sender=who), cache=self._plans)
        if wait and result.tx is not None:
            self.wait_durable(result.tx.offset)
        return result

    def prepare_select(self, query: str, *, sender: Identity) -> tuple[SelectPlan, PhysicalPlan] | None:
        """The plans of a SELECT by ``sender``, to run it (e.g. in slices, over a ``ReadView``);
        None if ``query`` is DML (run it with ``sql``). Raises ``SqlError``."""
        with self._lock:
            return plan_select(query, tables=self.tables, sender=sender, is_owner=sender == self.owner,
                               cache=self._plans)

    # ------------------------------------------------------------------ schema
    def schema(self) -> dict[str, Any]:
        """The module's tables and reducers as JSON (stored with the data; shown by describe)."""
        return {
            "tables": [t.describe() for t in self.module_def.tables.values()],
            "reducers": [r.describe() for r in self.module_def.all_reducers().values()],
        }


def _describe(exc: BaseException) -> str:
    """``Type: message``, or the type alone when the message is empty (``sys.exit()``)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _noop(ctx: ReducerContext) -> None:
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # one left by a crash would keep its old mode through open()
    with open(tmp, "w", encoding="utf-8", opener=private_opener) as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# Encoding a snapshot is pure Python: ~2 us per row, all of it holding the GIL, so on a thread a
# 100,000-row snapshot takes ~0.2 s from whoever serves requests (and a million rows, 2 s). A forked
# child encodes a copy-on-write image of the captured rows on another core instead.
_CAN_FORK = hasattr(os, "fork") and sys.platform != "darwin"  # macOS: fork without exec is unsafe


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536
