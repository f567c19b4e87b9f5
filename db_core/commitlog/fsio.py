"""Small durability helpers shared by the log and the snapshot store, and the modes of private files."""

from __future__ import annotations

import os

# Everything under a data directory is its owner's alone (module.log holds every message), whatever
# the umask: directories are created 0700 and files 0600 at the creating call.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for ``open()`` that creates the file 0600."""
    return os.open(path, flags, PRIVATE_FILE)


def datasync(fd: int) -> None:
    """Flush ``fd``'s data to stable storage (``fdatasync``; ``fsync`` where it is missing).

    Looked up at call time so tests can monkeypatch ``os.fdatasync``.
    """
    sync = getattr(os, "fdatasync", None) or os.fsync
    sync(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (created, renamed, removed files) durable.

    A no-op where directories cannot be opened (Windows).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``; os.write may write less than asked (e.g. near ENOSPC)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - os.write raises rather than returning 0 for regular files
            raise OSError("write returned 0 bytes")
        view = view[n:]


def pwrite_all(fd: int, data: bytes | memoryview, pos: int) -> None:
    """Write all of ``data`` at byte ``pos`` of ``fd`` (os.pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        if n <= 0:  # pragma: no cover - os.pwrite raises rather than returning 0 for regular files
            raise OSError("pwrite returned 0 bytes")
        view = view[n:]
        pos += n


ZERO_CHUNK = 1 << 20
_ZEROS = bytes(ZERO_CHUNK)


def write_zeros(fd: int, start: int, end: int) -> None:
    """Fill bytes ``start``..``end`` of ``fd`` with real zero bytes, at most ``ZERO_CHUNK`` per write.

    Real writes, not fallocate/ftruncate: those leave unwritten extents (or holes) whose first
    overwrite still changes file-system metadata, which is exactly the cost preallocation avoids.
    """
    zeros = memoryview(_ZEROS)
    while start < end:
        n = min(end - start, ZERO_CHUNK)
        pwrite_all(fd, zeros[:n], start)
        start += n


def all_zero(data: bytes, start: int) -> bool:
    """True if every byte of ``data`` from ``start`` on is zero (also when there is none)."""
    return data.count(0, start) == len(data) - start
