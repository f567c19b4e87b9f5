"""The append-only commit log: segments of checksummed frames, written and fsynced by one thread.

Contract in one paragraph: ``append`` queues ``(offset, payload)`` and returns
at once; a background flusher takes everything queued, writes it (one write
per segment), fdatasyncs, and only then advances ``durable_offset`` and calls
``on_durable``. Records queued while an fsync runs share the next fsync
(group commit). A failed write or fsync poisons the log for good: nothing
after it is ever reported durable, and every later call raises
``StorageError``; before ``on_error`` runs, whatever the failed batches left
in the file is cut off again, so a record reported as not durable never turns
up at the next start, and ``undurable`` hands the owner those records. Start-up
cuts a torn tail off the last segment and reports it in ``repairs``; damage
anywhere else raises ``CorruptLogError``. A writer that knows more records
are on their way can ``hold`` the flusher briefly and ``release`` it, so
that they share one fsync.

``CommitLog`` here is the public object and what callers use; the flusher
thread with its batching, fsyncs and preallocation is in ``flusher``, the
segment files (the start-up scan, cutting a damaged tail, reading records
back) in ``segments``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from ..errors import StorageError
from .flusher import Flusher, prealloc_step
from .framing import MAX_PAYLOAD, SEGMENT_HEADER
from .fsio import PRIVATE_DIR, datasync, fsync_dir
from .segments import read_records, scan

logger = logging.getLogger(__name__)

_HEADER = SEGMENT_HEADER.size


class CommitLog(Flusher):
    """A directory of segment files holding consecutive ``(offset, payload)`` records.

    Use ``CommitLog.open``. All public methods are thread-safe; ``append`` never
    blocks on I/O.
    """

    repairs: list[str]

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = 64 << 20,
        sync: bool = True,
        on_durable: Callable[[int], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> "CommitLog":
        """Open (creating if missing) the log in ``directory``, repair a torn tail, start the flusher.

        ``sync=False`` skips every fsync: "durable" then means "handed to the OS",
        which survives a process crash but not a power cut. ``on_durable`` and
        ``on_error`` run on the flusher thread; keep them short (the next fsync
        waits for them). Raises ``CorruptLogError`` for damage that is not a torn
        tail of the last segment, ``StorageError`` if the directory is unusable.
        """
        return cls(directory, segment_bytes=segment_bytes, sync=sync, on_durable=on_durable, on_error=on_error)

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = 64 << 20,
        sync: bool = True,
        on_durable: Callable[[int], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Prefer ``CommitLog.open``; this does the same."""
        if segment_bytes <= 0:
            raise ValueError(f"segment_bytes must be positive, not {segment_bytes}")
        self._dir = Path(directory)
        self._segment_bytes = segment_bytes
        self._step = prealloc_step(segment_bytes)
        self._sync = sync
        self._on_durable = on_durable
        self._on_error = on_error
        self.repairs = []
        self._cond = threading.Condition(threading.Lock())
        self._queue = []
        self._batch = []  # the batch the flusher took last (it may be writing it)
        self._lost = []  # after a failure: every record that never became durable
        self._idle = False  # the flusher is parked in wait(); only then does append pay for notify()
        self._held = False  # ``hold``: the flusher starts no new batch until ``release`` (or a waiter needs one)
        # While held, the first ``_free`` records of the queue were appended before the hold: they
        # may go (a writer that holds at every turn would otherwise keep everything from the disk).
        self._free = 0
        self._holds = False  # ``hold`` was ever used: the writer marks its batches, so the flusher never lingers
        self._error = None  # set when the flusher fails
        self._failed = None  # the same, published to waiters once on_error has run
        self._closed = False
        self._stopped = False  # the flusher has exited; nothing more will become durable
        self._fd = None  # the active segment, written only by the flusher once it runs
        # Where the last durable record ends: (base of its segment, byte size). Kept by the flusher.
        self._durable_end = (-1, _HEADER)
        try:
            self._dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            self._segments = scan(self._dir, self.repairs)
            if self._segments:
                last = self._segments[-1]
                # Not O_APPEND: records go at the logical end with pwrite, over the zero padding.
                self._fd = os.open(last.path, os.O_WRONLY)
                if sync:
                    # A crashed process may have left written-but-unsynced records; sync before calling them durable.
                    datasync(self._fd)
        except OSError as exc:
            if self._fd is not None:
                os.close(self._fd)
            raise StorageError(f"cannot open the commit log in {self._dir}: {exc}") from exc
        self._next = self._segments[-1].end if self._segments else 0
        self._durable = self._next - 1
        if self._segments:
            self._durable_end = (self._segments[-1].base, self._segments[-1].size)
        self._thread = threading.Thread(target=self._run, name=f"commitlog-flusher[{self._dir.name}]", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ queries
    @property
    def next_offset(self) -> int:
        """The offset the next ``append`` must use (0 for an empty log)."""
        return self._next

    @property
    def durable_offset(self) -> int:
        """Highest offset known to be on disk; -1 if none. Never moves backwards."""
        return self._durable

    @property
    def failed(self) -> StorageError | None:
        """The error that stopped the log, or None while it is healthy."""
        return self._error

    def undurable(self) -> list[tuple[int, bytes]]:
        """After a failure: every record appended that never became durable (and never will), oldest
        first, for the owner to undo what it holds of them; [] while the log is healthy."""
        with self._cond:
            return list(self._lost)

    def first_offset(self) -> int | None:
        """The oldest offset still stored, or None if no record is stored."""
        with self._cond:
            for seg in self._segments:
                if seg.count:
                    return seg.base
            return None

    def replay(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield every record written so far with ``offset >= start``, in order, re-verifying checksums.

        Records appended after the call starts are not included. Do not run it
        concurrently with ``truncate_before`` of the segments it reads.
        """
        with self._cond:
            segments = [(s.base, s.path, s.size, s.count) for s in self._segments]
        for base, path, size, count in segments:
            if base + count <= start:
                continue
            yield from read_records(path, base, size, start)

    # ------------------------------------------------------------------ writing
    def append(self, offset: int, payload: bytes) -> None:
        """Queue one record; returns at once. ``offset`` must equal ``next_offset``.

        Raises ``ValueError`` for a wrong offset or an oversized payload and
        ``StorageError`` if the log failed or is closed.
        """
        if type(payload) is not bytes:
            payload = bytes(payload)  # the flusher reads it later; a mutable buffer could change under it
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte frame limit")
        with self._cond:
            if self._error is not None:
                raise StorageError(f"the commit log failed earlier; no more appends: {self._error}")
            if self._closed:
                raise StorageError(f"the commit log in {self._dir} is closed")
            if offset != self._next:
                raise ValueError(f"append at offset {offset}, but the next offset must be {self._next}")
            self._queue.append((offset, payload))
            self._next = offset + 1
            if self._idle and not self._held:
                self._idle = False
                self._cond.notify()

    def hold(self) -> None:
        """Start no new batch until ``release``: records appended meanwhile then share one write and fsync.

        For a caller that knows more appends are coming right away (a server in the middle of
        one event-loop turn's requests). Nothing becomes durable while held, so release soon;
        ``wait_durable``, ``flush`` and ``close`` release a hold themselves rather than wait on it.
        """
        with self._cond:
            self._held = True
            self._holds = True
            self._free = len(self._queue)  # released already, not yet taken: they go, this hold or not
            if self._free and self._idle:
                self._idle = False
                self._cond.notify()

    def release(self) -> None:
        """End a ``hold``: the flusher takes everything queued."""
        with self._cond:
            self._release_locked()

    def _release_locked(self) -> None:
        self._held = False
        if self._idle and self._queue:
            self._idle = False
            self._cond.notify()

    def wait_durable(self, offset: int, timeout: float | None = None) -> bool:
        """Block until ``offset`` is durable: True, or False if ``timeout`` passed first.

        Raises ``StorageError`` if the log failed (or was closed) before ``offset``
        became durable, and only after ``on_error`` has returned; an offset already
        durable returns True even after a failure. ``RuntimeError`` from a callback.
        """
        with self._cond:
            if self._durable < offset and threading.current_thread() is self._thread:
                raise RuntimeError("wait_durable() for a later offset from the flusher thread would deadlock")
            if self._held and self._durable < offset:
                self._release_locked()  # whoever held the log may be the one waiting now
            self._cond.wait_for(
                lambda: self._durable >= offset or self._failed is not None or self._stopped, timeout
            )
            if self._durable >= offset:
                return True
            if self._failed is not None:
                raise StorageError(f"offset {offset} is not durable, the commit log failed: {self._failed}")
            if self._stopped:
                raise StorageError(f"offset {offset} is not durable and the commit log is closed")
            return False

    def flush(self) -> int:
        """Block until everything appended so far is durable; return ``durable_offset``.

        Raises ``StorageError`` if the log failed; ``RuntimeError`` if called from
        an ``on_durable``/``on_error`` callback (the flusher cannot wait for itself).
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() called from the commit log's own flusher thread")
        self.wait_durable(self._next - 1)
        return self._durable

    def continue_at(self, offset: int) -> list[Path]:
        """Go on at ``offset``, past the end of the log, for a caller that holds everything before it.

        For a log that ends before ``offset`` (a snapshot covers more than the log, whose tail was
        cut), with nothing waiting to be written: every segment is set aside (renamed
        ``<name>.covered``, never read again, kept for inspection) and a new, empty segment starts
        at ``offset``, so the segments stay contiguous and the next start opens cleanly. Returns
        the set-aside files; append at ``offset`` next. ``ValueError`` if the log reaches ``offset`` or records wait,
        ``StorageError`` if the files cannot be moved or created.
        """
        with self._cond:
            if self._error is not None or self._closed:
                raise StorageError(f"the commit log in {self._dir} is {'closed' if self._closed else 'failed'}")
            if self._queue or self._durable != self._next - 1:
                raise ValueError("continue_at() while records wait to be written")
            if offset <= self._next:
                raise ValueError(f"continue_at({offset}), but the log already reaches offset {self._next - 1}")
            # Nothing is queued or being written, and only the caller appends: the flusher is idle.
            old, self._segments = self._segments, []
        aside: list[Path] = []
        try:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            for seg in old:
                covered = seg.path.with_name(seg.path.name + ".covered")
                os.replace(seg.path, covered)
                aside.append(covered)
            if aside:
                fsync_dir(self._dir)
            self._create_segment(offset)
        except OSError as exc:
            raise StorageError(f"cannot continue the commit log in {self._dir} at offset {offset}: {exc}") from exc
        with self._cond:
            self._next = offset
            self._durable = offset - 1
        return aside

    def truncate_before(self, offset: int) -> int:
        """Delete the oldest segments all of whose records are ``< offset``; never the active one.

        Returns how many were deleted. Deletes oldest first, so a crash midway
        leaves a log that still starts cleanly.
        """
        removed = 0
        with self._cond:
            try:
                while len(self._segments) > 1 and self._segments[1].base <= offset:
                    self._segments[0].path.unlink()
                    self._segments.pop(0)
                    removed += 1
            except OSError as exc:
                raise StorageError(f"cannot delete old commit log segment: {exc}") from exc
            finally:
                if removed:
                    try:
                        fsync_dir(self._dir)
                    except OSError as exc:
                        logger.warning("cannot fsync %s after deleting segments: %s", self._dir, exc)
        return removed

    def close(self) -> None:
        """Flush everything queued, stop the flusher, close files. Idempotent.

        Raises ``StorageError`` if records appended before the close could not be
        made durable.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._cond:
            if self._failed is not None and self._durable < self._next - 1:
                raise StorageError(
                    f"commit log closed with offsets {self._durable + 1}..{self._next - 1} not durable:"
                    f" {self._failed}"
                )

    def __enter__(self) -> "CommitLog":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CommitLog {self._dir} next={self._next} durable={self._durable}>"
