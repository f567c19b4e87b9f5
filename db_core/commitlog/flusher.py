"""The commit log's writer thread: it takes what was queued, writes it, preallocates, fsyncs, publishes.

``CommitLog`` (``log``) is the public object and the only subclass of ``Flusher``:
its ``__init__`` sets up the state below and starts ``_run`` on a thread of
its own; everything the public methods and this thread share is guarded by
``_cond``. One turn of the thread: take everything queued (or, while a writer
holds the log, only what was queued before the hold), write it with one write
per segment, fdatasync, and only then advance ``durable_offset`` and call
``on_durable``. Records queued while an fsync runs share the next one (group
commit). A failure poisons the log for good (``_fail``): what the failed
batches left in the file is cut off again before ``on_error`` runs.

Preallocation: the flusher pads the active segment with real zero bytes (in
steps of ``PREALLOC_STEP``, at most ``segment_bytes``) and writes records in
place with ``pwrite``. Overwriting already-written blocks lets each fdatasync
skip the journal commit a growing file size costs; the size changes, and so
needs committing, only once per step. A segment is truncated to its exact
size when it is sealed (rotation) or the log is closed cleanly, so only the
active segment, after a crash, ends in zeros (start-up reads that as its clean
end, see ``segments``). Padding is only an optimisation: on a disk without
room for it, the log gives its space back and writes on without padding (until
it is reopened), so it fails only when the records themselves do not fit.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from ..errors import StorageError
from .framing import FRAME, OFFSET, SEGMENT_HEADER, encode_segment_header, segment_name
from .fsio import PRIVATE_FILE, datasync, fsync_dir, pwrite_all, write_zeros
from .segments import Segment

logger = logging.getLogger(__name__)

_HEADER = SEGMENT_HEADER.size
# Group commit under load: wait this long for more records unless this many are already queued.
LINGER_SECONDS = 100e-6
LINGER_BATCH = 32

# Zero padding is added to the active segment in steps of this many bytes (never more than ``segment_bytes``).
PREALLOC_STEP = 4 << 20


def prealloc_step(segment_bytes: int) -> int:
    """The padding step of a log whose segments hold ``segment_bytes``: ``PREALLOC_STEP``, at most that."""
    return min(segment_bytes, PREALLOC_STEP)


class Flusher:
    """The half of ``CommitLog`` that runs on its flusher thread (``_run``); not used on its own.

    The attributes are set up by ``CommitLog.__init__``, whose comments say what each one
    means and which are the flusher's alone; the shared ones change under ``_cond``.
    """

    _dir: Path
    _segment_bytes: int
    _step: int
    _sync: bool
    _on_durable: Callable[[int], None] | None
    _on_error: Callable[[BaseException], None] | None
    _cond: threading.Condition
    _queue: list[tuple[int, bytes]]
    _batch: list[tuple[int, bytes]]
    _lost: list[tuple[int, bytes]]
    _idle: bool
    _held: bool
    _free: int
    _holds: bool
    _error: StorageError | None
    _failed: StorageError | None
    _closed: bool
    _stopped: bool
    _fd: int | None
    _durable_end: tuple[int, int]
    _segments: list[Segment]
    _durable: int

    def _run(self) -> None:
        cond = self._cond
        clean = False
        busy = False
        try:
            while True:
                with cond:
                    while (not self._queue or (self._held and not self._free)) and not self._closed:
                        self._idle = True
                        cond.wait()
                    self._idle = False
                    if not self._queue:
                        break  # closed and drained
                    # A writer that holds the log says itself when a batch is complete: no guessing.
                    linger = busy and not self._closed and len(self._queue) < LINGER_BATCH and not self._holds
                if linger:
                    # Records kept arriving while the last batch synced: writers are pipelining, so a
                    # moment's wait fills the batch and saves syncs and GIL hand-offs. A lone caller
                    # waiting on its own commit never lingers (the queue was empty after its sync).
                    time.sleep(LINGER_SECONDS)
                with cond:
                    if self._held and not self._closed:
                        batch, self._queue = self._queue[:self._free], self._queue[self._free:]
                    else:
                        batch, self._queue = self._queue, []
                    self._batch = batch
                    self._free = 0
                self._publish(self._write(batch))
                busy = bool(self._queue)
            clean = True
        except BaseException as exc:  # noqa: BLE001 - any failure must poison the log, not vanish with the thread
            self._fail(exc)
        finally:
            if self._fd is not None:
                if clean and self._segments:
                    # Everything is durable already; dropping the zero padding only tidies up, so a failure
                    # here is not a failure of the log (start-up reads padding as a clean end anyway).
                    try:
                        self._seal(self._segments[-1])
                    except OSError as exc:
                        logger.warning("cannot trim the zero padding of %s: %s", self._segments[-1].path, exc)
                try:
                    os.close(self._fd)
                except OSError:
                    pass
                self._fd = None
            with cond:
                self._stopped = True
                cond.notify_all()

    def _write(self, batch: list[tuple[int, bytes]]) -> int:
        """Write and sync ``batch``; returns its last offset. Runs on the flusher only."""
        pack = FRAME.pack
        pack_offset = OFFSET.pack
        crc32 = zlib.crc32
        fsize = FRAME.size
        limit = self._segment_bytes
        seg = self._segments[-1] if self._segments else None
        size = seg.size if seg is not None else 0
        parts: list[bytes] = []
        pending = 0  # records in ``parts``
        for offset, payload in batch:
            if seg is None or (size >= limit and seg.count + pending > 0):
                if seg is not None:
                    self._write_chunk(seg, parts, pending, size)
                    # The old segment must be complete on disk before a newer one exists: start-up treats
                    # damage in a non-last segment as corruption, not as a torn tail.
                    self._seal(seg)
                    self._publish(seg.end - 1)
                seg = self._create_segment(offset)
                size, parts, pending = seg.size, [], 0
            n = len(payload)
            parts.append(pack(n, crc32(payload, crc32(pack_offset(offset))), offset))
            parts.append(payload)
            size += fsize + n
            pending += 1
        assert seg is not None
        self._write_chunk(seg, parts, pending, size)
        if self._sync:
            datasync(self._active_fd())
        return batch[-1][0]

    def _active_fd(self) -> int:
        assert self._fd is not None, "no active segment"
        return self._fd

    def _write_chunk(self, seg: Segment, parts: list[bytes], count: int, size: int) -> None:
        if not parts:
            return
        fd = self._active_fd()
        pwrite_all(fd, b"".join(parts), seg.size)
        if size > seg.alloc:
            self._extend(seg, size)
        with self._cond:
            seg.size = size
            seg.count += count

    def _extend(self, seg: Segment, end: int) -> None:
        """Pad the active segment with zeros after ``end``, where data just written past the padding stops.

        Grows in whole steps; the batch's own fdatasync then makes data and new size durable together,
        so the size change costs one journal commit per step, not one per batch. Near ``segment_bytes``
        it pads no further than that (the segment is about to be sealed).
        """
        step = self._step
        if not step:  # no room for padding: the file just grows with its records
            seg.alloc = end
            return
        alloc = seg.alloc + -(-(end - seg.alloc) // step) * step
        if alloc > self._segment_bytes:
            alloc = max(end, self._segment_bytes)
        seg.alloc = self._pad(end, alloc)

    def _pad(self, end: int, alloc: int) -> int:
        """Zeros from ``end`` to ``alloc`` in the active segment; returns its length. On a full disk
        the padding goes (its space given back) and preallocation stops: the records come first."""
        try:
            write_zeros(self._active_fd(), end, alloc)
            return alloc
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            os.ftruncate(self._active_fd(), end)
            self._step = 0
            logger.warning("commit log in %s: no room to preallocate (%s); writing on without", self._dir, exc)
            return end

    def _seal(self, seg: Segment) -> None:
        """Cut the active segment's zero padding off and sync it: it then has its exact size."""
        fd = self._active_fd()
        if seg.alloc != seg.size:
            os.ftruncate(fd, seg.size)
            seg.alloc = seg.size
        if self._sync:
            # fdatasync commits a changed file size (it is needed to read the data back), so no fsync.
            datasync(fd)

    def _create_segment(self, base: int) -> Segment:
        path = self._dir / segment_name(base)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        # O_EXCL: a file already there would mean two writers or a bug; never write into it.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        try:
            pwrite_all(self._fd, encode_segment_header(base), 0)
            alloc = self._pad(_HEADER, max(_HEADER, self._step))
            if self._sync:
                datasync(self._fd)
                fsync_dir(self._dir)
        except BaseException:
            # Half made (a full disk): never leave a torn header for the next start to repair.
            os.close(self._fd)
            self._fd = None
            try:
                path.unlink()
            except OSError:
                pass
            raise
        seg = Segment(base, path, _HEADER, 0, alloc)
        with self._cond:
            self._segments.append(seg)
        return seg

    def _publish(self, offset: int) -> None:
        with self._cond:
            if offset <= self._durable:
                return
            self._durable = offset
            last = self._segments[-1]  # the batch or sealed segment just synced ends it
            self._durable_end = (last.base, last.size)
            self._cond.notify_all()
        if self._on_durable is not None:
            try:
                self._on_durable(offset)
            except Exception:
                # A listener's bug must not stop durability for everyone else.
                logger.exception("on_durable callback failed for offset %d", offset)

    def _fail(self, exc: BaseException) -> None:
        error = StorageError(f"commit log in {self._dir} failed: {exc}")
        error.__cause__ = exc
        with self._cond:
            if self._error is not None:
                return
            self._error = error  # appends refuse from now on
            self._lost = [r for r in self._batch if r[0] > self._durable] + self._queue
            self._queue = []
        logger.error("%s", error)
        self._cut_undurable()
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                logger.exception("on_error callback failed")
        # Waiters learn of the failure only after on_error ran, so whoever sees a StorageError can rely on
        # the owner having been told.
        with self._cond:
            self._failed = error
            self._cond.notify_all()

    def _cut_undurable(self) -> None:
        """After a failure, on the flusher: cut the last segment back to its last durable record.

        A failed batch may have left whole records in the file that were never synced, or were
        synced by a sync that reported an error: their callers are told nothing was changed, so
        the next start must not find them. Shrinking a file needs no free space.
        """
        if not self._segments:
            return
        seg = self._segments[-1]
        base, size = self._durable_end
        keep = size if base == seg.base else _HEADER  # a segment begun after the last sync keeps its header only
        try:
            fd = os.open(seg.path, os.O_WRONLY)
            try:
                os.ftruncate(fd, keep)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            logger.error("cannot cut %s back to offset %d after the failure: %s", seg.path, self._durable, exc)
            return
        with self._cond:
            seg.size = seg.alloc = keep
            seg.count = self._durable - seg.base + 1 if base == seg.base else 0

