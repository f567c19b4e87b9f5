"""Small durability helpers shared by the log and the snapshot store."""

from __future__ import annotations

import os


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
