"""Durability: what makes a committed transaction survive, behind one interface.

The datastore hands every non-empty committed transaction to ``append`` (before
anyone hears of it) and calls ``published`` once its commit listeners have run;
callers wait with ``wait_for(offset)`` or a durable listener (as SpacetimeDB's
``Durability`` trait and ``DurableOffset::wait_for``). Two implementations:

- ``InMemory``: nothing to write; a transaction is durable once committed.
- ``LogDurability``: the commit log (group-committed fsyncs on its own thread)
  plus snapshots, written in the background (by a forked child where possible)
  every ``snapshot_every`` transactions, after which older log segments go.

When the log fails (a full disk) it stays failed: ``append`` raises
``refusal()``, failure listeners are told once from the log's thread, and
``undurable`` hands back what never reached the disk, for the owner to undo.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .codec import TableCodec, TxCodec, encode_snapshot
from .commitlog import CommitLog, SnapshotStore
from .errors import StorageError
from .tx import TxData

logger = logging.getLogger("db_core")

# For a process that serves a log-backed database: the log's thread must get the GIL back promptly
# after each fsync to hand out results; at the default 5 ms a busy caller starves it (measured:
# 50k -> 62k calls/s). Process-wide, so the server sets it (``sys.setswitchinterval``), not the library.
SWITCH_INTERVAL = 50e-6

DurableListener = Callable[[int], None]
FailureListener = Callable[[StorageError], None]


@dataclasses.dataclass(slots=True)
class Image:
    """The tables as of ``offset``, captured between transactions, for a snapshot."""

    offset: int
    tables: list[tuple[str, list[Any], dict[str, int]]]  # name, rows, sequences
    last_timestamp: int


class Durability(Protocol):
    """What the datastore needs from whatever makes its commits durable."""

    @property
    def durable_offset(self) -> int:
        """Every transaction up to this offset is durable; -1 if none."""

    failed: bool
    """Nothing is written any more (the log failed for good); ``refusal()`` says why. An attribute,
    not a property: every transaction reads it."""

    writes: bool
    """False if ``append`` has nothing to do (in memory): the datastore skips the call, which
    is a tenth of an in-memory reducer call's cost."""

    @property
    def write_failure(self) -> str | None:
        """Why writing stopped, e.g. ``cannot write to disk: ...``; None while it works."""

    def refusal(self) -> StorageError:
        """The error a write gets once writing stopped: raise it."""

    def append(self, tx: TxData) -> None:
        """Take a committed transaction before anyone hears of it; on an exception the caller
        rolls it back (it is not committed). Call ``published`` once its listeners were told."""

    def published(self, offset: int) -> None:
        """Everyone in the process heard of ``offset``: an implementation with nothing to wait
        for reports it durable now; the log may start a background snapshot."""

    def wait_for(self, offset: int, timeout: float | None = None) -> bool:
        """Block until ``offset`` is durable: True, False on timeout; StorageError if it never will be."""

    def hold(self) -> None:
        """Let appends queue without starting a write until ``release``."""

    def release(self) -> None:
        """End ``hold``: what queued meanwhile goes to disk together."""

    def add_durable_listener(self, callback: DurableListener) -> None:
        """Call ``callback(offset)`` each time the durable offset advances (maybe from another thread)."""

    def add_failure_listener(self, callback: FailureListener) -> None:
        """Call ``callback(refusal)`` once when writing stops for good (maybe from another thread)."""

    def undurable(self, before: int) -> list[TxData]:
        """After a failure: the appended transactions below ``before`` that never became durable,
        newest first, for the caller to undo; [] while writing works."""

    def snapshot(self, image: Image) -> None:
        """Write a snapshot of ``image`` now (synchronously)."""

    def close(self) -> None:
        """Make everything appended durable (StorageError if that fails now), write a last
        snapshot if there is news since the previous one, and release the files."""

    def abandon(self) -> None:
        """Release the files without waiting for anything (open failed part-way)."""


class InMemory:
    """Durability of an in-memory database: a committed transaction is as durable as it gets."""

    def __init__(self) -> None:
        self._durable = -1
        self._listeners: list[DurableListener] = []
        self.failed = False
        self.writes = False

    @property
    def durable_offset(self) -> int:
        return self._durable

    @property
    def write_failure(self) -> str | None:
        return None

    def refusal(self) -> StorageError:
        raise AssertionError("an in-memory database never stops writing")

    def append(self, tx: TxData) -> None:
        pass  # not called (``writes`` is False): published() makes it durable

    def published(self, offset: int) -> None:
        self._durable = offset
        for listener in self._listeners:
            listener(offset)

    def wait_for(self, offset: int, timeout: float | None = None) -> bool:
        return True

    def hold(self) -> None:
        pass

    def release(self) -> None:
        pass

    def add_durable_listener(self, callback: DurableListener) -> None:
        self._listeners.append(callback)

    def add_failure_listener(self, callback: FailureListener) -> None:
        pass  # it never fails

    def undurable(self, before: int) -> list[TxData]:
        return []

    def snapshot(self, image: Image) -> None:
        pass

    def close(self) -> None:
        pass

    def abandon(self) -> None:
        pass


class LogDurability:
    """The commit log and snapshots of one data directory.

    ``capture`` returns an ``Image`` of the tables (taking the datastore's lock):
    called from ``published`` for a background snapshot, and by ``close``.
    """

    def __init__(self, directory: Path, snapshots: SnapshotStore, codecs: dict[str, TableCodec], txcodec: TxCodec,
                 schema: dict[str, Any], capture: Callable[[], Image], *, snapshot_every: int, sync: bool,
                 segment_bytes: int) -> None:
        """Open the log in ``directory`` (its flusher starts; ``log.repairs`` says what start-up cut)."""
        self.snapshots = snapshots
        self._codecs = codecs
        self._txcodec = txcodec
        self._schema = schema
        self._capture = capture
        self._snapshot_every = snapshot_every
        self.since_snapshot = 0  # logged transactions no snapshot holds yet (recovery sets it)
        self.snapshot_thread: threading.Thread | None = None
        self._durable_listeners: list[DurableListener] = []
        self._failure_listeners: list[FailureListener] = []
        self.failed = False
        self.writes = True
        self.log = CommitLog.open(directory, segment_bytes=segment_bytes, sync=sync,
                                  on_durable=self._on_durable, on_error=self._on_error)

    # -- state ---------------------------------------------------------------------
    @property
    def durable_offset(self) -> int:
        return self.log.durable_offset

    @property
    def write_failure(self) -> str | None:
        # The log's own error: set before the failure listeners run, so a write refused in between says why.
        failed = self.log.failed
        if failed is None:
            return None
        return f"cannot write to disk: {failed.__cause__ or failed}"

    def refusal(self) -> StorageError:
        failed = self.log.failed
        cause = failed.__cause__ if failed is not None else None
        full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        return StorageError(f"the database {self.write_failure}; restart the server once "
                            + ("there is space" if full else "the disk works again"))

    # -- writing ---------------------------------------------------------------------
    def append(self, tx: TxData) -> None:
        try:
            self.log.append(tx.offset, self._txcodec.encode(tx))
        except BaseException:
            if self.log.failed is not None:
                raise self.refusal() from None
            raise

    def published(self, offset: int) -> None:
        self.since_snapshot += 1
        if self.since_snapshot >= self._snapshot_every:
            self._snapshot_in_background()

    def wait_for(self, offset: int, timeout: float | None = None) -> bool:
        if offset < 0:
            return True
        return self.log.wait_durable(offset, timeout)

    def hold(self) -> None:
        self.log.hold()

    def release(self) -> None:
        self.log.release()

    # -- listeners -------------------------------------------------------------------
    def add_durable_listener(self, callback: DurableListener) -> None:
        self._durable_listeners.append(callback)

    def add_failure_listener(self, callback: FailureListener) -> None:
        self._failure_listeners.append(callback)

    def _on_durable(self, offset: int) -> None:
        for listener in self._durable_listeners:
            listener(offset)

    def _on_error(self, exc: BaseException) -> None:
        self.failed = True
        logger.error("commit log failed: %s", exc)
        refusal = self.refusal()
        for listener in self._failure_listeners:
            try:
                listener(refusal)
            except Exception:
                logger.exception("a failure listener failed")

    def undurable(self, before: int) -> list[TxData]:
        if not self.failed:
            return []
        # The log still holds the bytes of what it could not write: decoding them here costs
        # nothing until a failure, where keeping every TxData until durable cost each call
        # (measured: 10-20% more CPU per call, from the collector walking them).
        lost = [(offset, payload) for offset, payload in self.log.undurable() if offset < before]
        return [self._txcodec.decode(offset, payload) for offset, payload in reversed(lost)]

    # -- closing ---------------------------------------------------------------------
    def close(self) -> None:
        try:
            if not self.failed:
                self.log.flush()
                if self.snapshot_thread is not None:
                    self.snapshot_thread.join()
                if self.since_snapshot:
                    try:
                        self.snapshot(self._capture())
                    except StorageError as exc:
                        logger.warning("no snapshot at close: %s", exc)
        finally:
            self.abandon()

    def abandon(self) -> None:
        try:
            self.log.close()
        except StorageError:
            pass

    # -- snapshots -------------------------------------------------------------------
    def snapshot(self, image: Image) -> None:
        self.since_snapshot = 0
        self._write_snapshot(image)

    def _encode(self, image: Image) -> bytes:
        rows = [(self._codecs[name], table_rows, seqs) for name, table_rows, seqs in image.tables]
        return encode_snapshot(image.offset, self._schema, rows, image.last_timestamp)

    def _write_snapshot(self, image: Image) -> None:
        if image.offset < 0:
            return  # nothing was ever committed
        # The log must hold everything up to the snapshot before older segments may go.
        self.log.wait_durable(image.offset)
        self.snapshots.write(image.offset, self._encode(image))
        self.log.truncate_before(image.offset + 1)

    def _snapshot_in_background(self) -> None:
        if self.snapshot_thread is not None and self.snapshot_thread.is_alive():
            return
        image = self._capture()
        self.since_snapshot = 0
        child = self._fork_snapshot_writer(image) if _CAN_FORK else None

        def work() -> None:
            try:
                if child is None:
                    self._write_snapshot(image)
                else:
                    self._finish_forked_snapshot(child, image.offset)
            except Exception as exc:  # a failed snapshot loses nothing: the log still has it all
                logger.error("snapshot at offset %d failed: %s", image.offset, exc)

        self.snapshot_thread = threading.Thread(target=work, name="db-snapshot", daemon=True)
        self.snapshot_thread.start()

    def _fork_snapshot_writer(self, image: Image) -> int | None:
        """Fork a child that writes the snapshot of ``image`` as pending and exits; its pid (None: not forked)."""
        if image.offset < 0:
            return None
        store = self.snapshots
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
            store.write_pending(image.offset, self._encode(image))
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
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self.snapshots.discard(offset)
            raise StorageError(f"the snapshot writer (pid {pid}) exited with {code}")
        self.log.wait_durable(offset)  # as _write_snapshot: the log must hold what the snapshot does
        self.snapshots.publish(offset)
        self.log.truncate_before(offset + 1)


# Encoding a snapshot is pure Python: ~2 us per row, all of it holding the GIL, so on a thread a
# 100,000-row snapshot takes ~0.2 s from whoever serves requests (and a million rows, 2 s). A forked
# child encodes a copy-on-write image of the captured rows on another core instead.
_CAN_FORK = hasattr(os, "fork") and sys.platform != "darwin"  # macOS: fork without exec is unsafe


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def flush_now_and_then(flush: Callable[[], None], every: float = 0.2) -> DurableListener:
    """A durable listener that calls ``flush`` at most once per ``every`` seconds."""
    last = [0.0]

    def listener(offset: int) -> None:
        now = time.monotonic()
        if now - last[0] > every:
            last[0] = now
            flush()

    return listener
