"""Shared fixtures: example modules written against the public API."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chat_server.modules import QUICKSTART_CHAT  # noqa: E402


@pytest.fixture
def quickstart_path() -> Path:
    return QUICKSTART_CHAT


def write_module(tmp_path: Path, source: str, name: str = "mod") -> Path:
    """Write a module file and return its path."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return path


SEG_HEADER = struct.Struct("<8sQ")  # segment magic + base offset (the on-disk format, read independently)
FRAME = struct.Struct("<IIQ")       # payload length, crc32, offset


def record_spans(segment: Path) -> list[tuple[int, int]]:
    """(start, end) byte spans of the records in a commit-log segment file."""
    data = segment.read_bytes()
    pos, spans = SEG_HEADER.size, []
    while pos + FRAME.size <= len(data):
        length, crc, offset = FRAME.unpack_from(data, pos)
        if length == crc == offset == 0:
            break  # zero padding after the last record
        spans.append((pos, pos + FRAME.size + length))
        pos += FRAME.size + length
    return spans
