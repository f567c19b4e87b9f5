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

Preallocation: the flusher pads the active segment with real zero bytes (in
steps of ``PREALLOC_STEP``, at most ``segment_bytes``) and writes records in
place with ``pwrite``. Overwriting already-written blocks lets each fdatasync
skip the journal commit a growing file size costs; the size changes, and so
needs committing, only once per step. A segment is truncated to its exact
size when it is sealed (rotation) or the log is closed cleanly, so only the
active segment, after a crash, ends in zeros. Start-up treats an all-zero rest
of a segment as its clean end; a zero frame header followed by non-zero bytes
is damage like any other. Padding is only an optimisation: on a disk without
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..errors import CorruptLogError, StorageError
from .framing import (
    FRAME,
    MAX_PAYLOAD,
    OFFSET,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    FrameError,
    encode_segment_header,
    iter_frames,
    parse_segment_name,
    segment_name,
)
from .fsio import PRIVATE_DIR, PRIVATE_FILE, all_zero, datasync, fsync_dir, pwrite_all, write_zeros

logger = logging.getLogger(__name__)

_HEADER = SEGMENT_HEADER.size
# Group commit under load: wait this long for more records unless this many are already queued.
LINGER_SECONDS = 100e-6
LINGER_BATCH = 32
_ZERO_FRAME = bytes(FRAME.size)

# Zero padding is added to the active segment in steps of this many bytes (never more than ``segment_bytes``).
PREALLOC_STEP = 4 << 20


@dataclass
class _Segment:
    """One segment file; ``size`` and ``count`` cover only records already written.

    ``alloc`` is the file's length: ``size`` plus the zero padding after it (only the active
    segment has any once the log runs; the flusher alone reads or changes it).
    """

    base: int
    path: Path
    size: int
    count: int
    alloc: int

    @property
    def end(self) -> int:
        """The offset the record after this segment's last one has."""
        return self.base + self.count


class CommitLog:
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
        self._step = min(segment_bytes, PREALLOC_STEP)
        self._sync = sync
        self._on_durable = on_durable
        self._on_error = on_error
        self.repairs = []
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[tuple[int, bytes]] = []
        self._batch: list[tuple[int, bytes]] = []  # the batch the flusher took last (it may be writing it)
        self._lost: list[tuple[int, bytes]] = []  # after a failure: every record that never became durable
        self._idle = False  # the flusher is parked in wait(); only then does append pay for notify()
        self._held = False  # ``hold``: the flusher starts no new batch until ``release`` (or a waiter needs one)
        # While held, the first ``_free`` records of the queue were appended before the hold: they
        # may go (a writer that holds at every turn would otherwise keep everything from the disk).
        self._free = 0
        self._holds = False  # ``hold`` was ever used: the writer marks its batches, so the flusher never lingers
        self._error: StorageError | None = None  # set when the flusher fails
        self._failed: StorageError | None = None  # the same, published to waiters once on_error has run
        self._closed = False
        self._stopped = False  # the flusher has exited; nothing more will become durable
        self._fd: int | None = None  # the active segment, written only by the flusher once it runs
        # Where the last durable record ends: (base of its segment, byte size). Kept by the flusher.
        self._durable_end = (-1, _HEADER)
        try:
            self._dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            self._segments = self._scan()
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

    # ------------------------------------------------------------------ start-up
    def _scan(self) -> list[_Segment]:
        entries = sorted(
            (base, name) for name in os.listdir(self._dir) if (base := parse_segment_name(name)) is not None
        )
        segments: list[_Segment] = []
        expected: int | None = None
        for i, (base, name) in enumerate(entries):
            path = self._dir / name
            is_last = i == len(entries) - 1
            data = path.read_bytes()
            if not self._header_ok(data, base):
                # A header is synced before any record is written after it, so a bad header followed by
                # non-zero bytes is damage, not a crash during creation.
                torn = len(data) < _HEADER or all_zero(data, _HEADER)
                if is_last and torn:
                    path.unlink()
                    fsync_dir(self._dir)
                    self.repairs.append(
                        f"commit log {path}: removed the last segment, its {len(data)}-byte header is torn;"
                        f" last good offset {_show(expected - 1 if expected is not None else -1)}"
                    )
                    continue
                raise CorruptLogError(
                    f"commit log {path}: bad segment header at byte 0 (expected magic {SEGMENT_MAGIC!r}"
                    f" and base offset {base}); refusing to guess"
                )
            if expected is not None and base != expected:
                raise CorruptLogError(
                    f"commit log {path}: segment starts at offset {base} but the one before it ends at offset"
                    f" {expected - 1} (a segment is missing or overlaps), at byte 0"
                )
            count, pos, alloc = 0, _HEADER, len(data)
            try:
                for _offset, _start, end in iter_frames(data, _HEADER, base):
                    count += 1
                    pos = end
            except FrameError as bad:
                pos = bad.pos
                # Zero padding: the rest of the file is zeros (a zero frame header never verifies, its crc
                # would have to be crc32 of the offset bytes). Not a repair. In an earlier segment (sealed
                # ones are truncated, but sync=False and a power cut could leave padding) it is harmless
                # too: the next segment's base offset still has to follow on from the last record here.
                if not all_zero(data, pos):
                    reason = bad.reason
                    if data[pos:pos + FRAME.size] == _ZERO_FRAME:
                        reason = "zero record header followed by non-zero bytes"
                    if not is_last:
                        raise CorruptLogError(
                            f"commit log {path}: {reason} at byte {pos}; a later segment exists, so the"
                            f" records here were acknowledged and will not be dropped"
                        ) from None
                    self._cut(path, pos)
                    self.repairs.append(
                        f"commit log {path}: cut {len(data) - pos} bytes at byte {pos} ({reason});"
                        f" last good offset {_show(base + count - 1)}"
                    )
                    alloc = pos
            segments.append(_Segment(base, path, pos, count, alloc))
            expected = base + count
        return segments

    @staticmethod
    def _header_ok(data: bytes, base: int) -> bool:
        if len(data) < _HEADER:
            return False
        magic, header_base = SEGMENT_HEADER.unpack_from(data)
        return bool(magic == SEGMENT_MAGIC and header_base == base)

    @staticmethod
    def _cut(path: Path, size: int) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)  # fsync, not fdatasync: the new size is metadata
        finally:
            os.close(fd)

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
            try:
                with open(path, "rb") as fh:
                    data = fh.read(size)
            except FileNotFoundError:
                raise StorageError(f"commit log {path} was removed while being replayed") from None
            except OSError as exc:
                raise StorageError(f"cannot read commit log {path}: {exc}") from exc
            if len(data) < size:
                raise CorruptLogError(f"commit log {path}: shrank to {len(data)} bytes since it was opened")
            try:
                for offset, lo, hi in iter_frames(data, _HEADER, base):
                    if offset >= start:
                        yield offset, data[lo:hi]
            except FrameError as bad:
                raise CorruptLogError(
                    f"commit log {path}: {bad.reason} at byte {bad.pos} (changed since it was opened)"
                ) from None

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

    # ------------------------------------------------------------------ the flusher thread
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

    def _write_chunk(self, seg: _Segment, parts: list[bytes], count: int, size: int) -> None:
        if not parts:
            return
        fd = self._active_fd()
        pwrite_all(fd, b"".join(parts), seg.size)
        if size > seg.alloc:
            self._extend(seg, size)
        with self._cond:
            seg.size = size
            seg.count += count

    def _extend(self, seg: _Segment, end: int) -> None:
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

    def _seal(self, seg: _Segment) -> None:
        """Cut the active segment's zero padding off and sync it: it then has its exact size."""
        fd = self._active_fd()
        if seg.alloc != seg.size:
            os.ftruncate(fd, seg.size)
            seg.alloc = seg.size
        if self._sync:
            # fdatasync commits a changed file size (it is needed to read the data back), so no fsync.
            datasync(fd)

    def _create_segment(self, base: int) -> _Segment:
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
        seg = _Segment(base, path, _HEADER, 0, alloc)
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


def _show(offset: int) -> str:
    return str(offset) if offset >= 0 else "none"
