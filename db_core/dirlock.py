"""An exclusive, advisory lock on a directory, held for a process's lifetime.

The lock is an ``flock`` on a ``lock`` file inside the directory holding the
holder's pid, so a second process (or a second open in the same process) fails
at once with ``DatabaseLocked`` naming the holder, and a crashed holder's lock
vanishes with it. ``lock_holder`` tells another process who holds it (``chat-server
stop`` finds the server to signal that way).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import DatabaseLocked


def lock_directory(path: Path, name: str = "lock") -> int:
    """Take the lock in ``path/name``; returns the fd to pass to ``unlock_directory``.

    Raises DatabaseLocked (one readable line with the holder's pid) if another holder has it.
    """
    fd = os.open(path / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseLocked(
            f"data directory {path} is in use by another process (pid {holder}); stop it or use another directory"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def unlock_directory(fd: int) -> None:
    """Release a lock taken by ``lock_directory`` (closing the fd drops the flock)."""
    os.close(fd)


class HolderUnknown(Exception):
    """The lock is held but its file names no pid yet (the holder has just taken it)."""


def lock_holder(path: Path, name: str = "lock") -> int | None:
    """The pid of the process holding the lock in ``path/name``, or None if none holds it (no
    such file, or a lock left by a process that has exited). Raises HolderUnknown if it is held
    but the pid is not written yet. Probing takes a shared lock for an instant: a holder starting
    at that very instant fails as if the directory were in use."""
    try:
        fd = os.open(path / name, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode(errors="replace").strip()
            if not text.isdigit() or int(text) <= 0:
                raise HolderUnknown(f"{path / name} is locked by a process that has not written its pid") from None
            return int(text)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
