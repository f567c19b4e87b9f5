"""The segment files of a commit log: what start-up finds in them, and reading their records back.

``scan`` runs once, when a log opens: it checks every segment's header and
records, treats an all-zero rest of a segment (preallocated padding) as its
clean end, cuts a torn or damaged tail off the *last* segment (reporting it in
``repairs``) and raises ``CorruptLogError`` for damage anywhere else, where the
records were acknowledged and will not be dropped. A zero frame header
followed by non-zero bytes is damage like any other. ``read_records`` reads
one segment's records back for ``CommitLog.replay``, re-verifying checksums.
The formats themselves are in ``framing``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorruptLogError, StorageError
from .framing import FRAME, SEGMENT_HEADER, SEGMENT_MAGIC, FrameError, iter_frames, parse_segment_name
from .fsio import all_zero, fsync_dir

_HEADER = SEGMENT_HEADER.size
_ZERO_FRAME = bytes(FRAME.size)


@dataclass
class Segment:
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


def scan(directory: Path, repairs: list[str]) -> list[Segment]:
    """The segments of ``directory``, oldest first, after cutting a torn tail off the last one.

    Appends a line to ``repairs`` for each repair made (a cut tail, a removed torn last
    segment); raises ``CorruptLogError`` for damage that is not a torn tail of the last
    segment, ``OSError`` if the files cannot be read or repaired.
    """
    entries = sorted(
        (base, name) for name in os.listdir(directory) if (base := parse_segment_name(name)) is not None
    )
    segments: list[Segment] = []
    expected: int | None = None
    for i, (base, name) in enumerate(entries):
        path = directory / name
        is_last = i == len(entries) - 1
        data = path.read_bytes()
        if not _header_ok(data, base):
            # A header is synced before any record is written after it, so a bad header followed by
            # non-zero bytes is damage, not a crash during creation.
            torn = len(data) < _HEADER or all_zero(data, _HEADER)
            if is_last and torn:
                path.unlink()
                fsync_dir(directory)
                repairs.append(
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
                _cut(path, pos)
                repairs.append(
                    f"commit log {path}: cut {len(data) - pos} bytes at byte {pos} ({reason});"
                    f" last good offset {_show(base + count - 1)}"
                )
                alloc = pos
        segments.append(Segment(base, path, pos, count, alloc))
        expected = base + count
    return segments


def read_records(path: Path, base: int, size: int, start: int) -> Iterator[tuple[int, bytes]]:
    """Yield the records of the segment at ``path`` (first offset ``base``, ``size`` bytes written)
    with ``offset >= start``, re-verifying checksums.

    ``StorageError`` if the file cannot be read (or was removed), ``CorruptLogError`` if it
    changed since the log opened it.
    """
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


def _header_ok(data: bytes, base: int) -> bool:
    if len(data) < _HEADER:
        return False
    magic, header_base = SEGMENT_HEADER.unpack_from(data)
    return bool(magic == SEGMENT_MAGIC and header_base == base)


def _cut(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)  # fsync, not fdatasync: the new size is metadata
    finally:
        os.close(fd)


def _show(offset: int) -> str:
    return str(offset) if offset >= 0 else "none"
