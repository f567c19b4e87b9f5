"""On-disk formats of the commit log and of snapshots, and the frame scanner.

Segment file ``{base_offset:020d}.log``::

    b"QCLOG001"  u64 base_offset                      (16-byte header)
    record*      u32 length  u32 crc  u64 offset  payload[length]

``crc`` is ``zlib.crc32`` over the 8 offset bytes followed by the payload, so
it covers both and, as they are adjacent on disk, is one crc32 call to check.
All integers are little-endian.

The segment being written may end in zero padding (preallocated space): when
every byte after the last record is zero, that is the end of the data. An
all-zero frame header is never a valid record (its crc would have to be
crc32 of eight zero bytes, 0x6522DF69), so padding cannot be mistaken for one.

Snapshot file ``{offset:020d}.snap``::

    b"QCSNAP01"  u64 offset  u64 length  u32 crc32(payload)  payload[length]
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator

SEGMENT_MAGIC = b"QCLOG001"
SEGMENT_HEADER = struct.Struct("<8sQ")
FRAME = struct.Struct("<IIQ")
OFFSET = struct.Struct("<Q")
MAX_PAYLOAD = 0xFFFFFFFF
MAX_OFFSET = 0xFFFFFFFFFFFFFFFF

SNAPSHOT_MAGIC = b"QCSNAP01"
SNAPSHOT_HEADER = struct.Struct("<8sQQI")

_SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
_SNAPSHOT_NAME = re.compile(r"^(\d{20})\.snap$")


def segment_name(base_offset: int) -> str:
    """File name of the segment whose first record has ``base_offset``."""
    return f"{base_offset:020d}.log"


def parse_segment_name(name: str) -> int | None:
    """Base offset encoded in a segment file name, or None if ``name`` is not a segment."""
    m = _SEGMENT_NAME.match(name)
    return int(m.group(1)) if m else None


def snapshot_name(offset: int) -> str:
    """File name of the snapshot taken after transaction ``offset``."""
    return f"{offset:020d}.snap"


def parse_snapshot_name(name: str) -> int | None:
    """Offset encoded in a snapshot file name, or None if ``name`` is not a snapshot."""
    m = _SNAPSHOT_NAME.match(name)
    return int(m.group(1)) if m else None


def encode_segment_header(base_offset: int) -> bytes:
    """The 16 bytes every segment starts with."""
    return SEGMENT_HEADER.pack(SEGMENT_MAGIC, base_offset)


class FrameError(Exception):
    """The frame starting at byte ``pos`` is torn or corrupt; ``reason`` says how."""

    def __init__(self, pos: int, reason: str) -> None:
        super().__init__(f"{reason} at byte {pos}")
        self.pos = pos
        self.reason = reason


def iter_frames(data: bytes, pos: int, expected: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(offset, payload_start, payload_end)`` for each valid frame of ``data`` from ``pos``.

    Offsets must run ``expected, expected + 1, ...``. Stops cleanly at the end of
    ``data``; raises ``FrameError`` at the first frame that is short, runs past
    the end, fails its checksum, or carries an unexpected offset.
    """
    view = memoryview(data)
    size = len(data)
    unpack = FRAME.unpack_from
    crc32 = zlib.crc32
    hsize = FRAME.size
    while pos < size:
        if size - pos < hsize:
            raise FrameError(pos, f"short record header ({size - pos} of {hsize} bytes)")
        length, crc, offset = unpack(data, pos)
        end = pos + hsize + length
        if end > size:
            raise FrameError(pos, f"record length {length} runs {end - size} bytes past the end of the file")
        # The offset field sits right before the payload, so one crc covers both.
        if crc32(view[pos + 8:end]) != crc:
            raise FrameError(pos, "checksum mismatch")
        if offset != expected:
            raise FrameError(pos, f"record offset {offset} where {expected} was expected")
        yield offset, pos + hsize, end
        expected += 1
        pos = end
