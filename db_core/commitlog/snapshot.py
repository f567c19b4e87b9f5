"""Snapshots: one opaque payload per file, written atomically, verified on read."""

from __future__ import annotations

import os
import threading
import zlib
from pathlib import Path

from ..errors import StorageError
from .framing import (
    MAX_OFFSET,
    SNAPSHOT_HEADER,
    SNAPSHOT_MAGIC,
    parse_snapshot_name,
    snapshot_name,
)
from .fsio import PRIVATE_DIR, PRIVATE_FILE, datasync, fsync_dir, write_all

_TMP_SUFFIX = ".tmp"


class SnapshotStore:
    """A directory of ``{offset:020d}.snap`` files; keeps the newest ``keep`` of them.

    A snapshot at ``offset`` holds the state after every transaction up to and
    including ``offset``. Construction creates the directory and deletes
    temporary files left by a crash during ``write``.
    """

    repairs: list[str]

    def __init__(self, directory: str | os.PathLike[str], keep: int = 2) -> None:
        """Open (creating if missing) the store; ``keep`` >= 1 snapshots survive each write."""
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self._dir = Path(directory)
        self._keep = keep
        self._lock = threading.Lock()
        self.repairs = []
        try:
            self._dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            removed = False
            for name in os.listdir(self._dir):
                # Only our own temp names: a half-written snapshot was never renamed into place, so it is
                # not data, just garbage from a crash mid-write.
                if name.endswith(_TMP_SUFFIX) and parse_snapshot_name(name[: -len(_TMP_SUFFIX)]) is not None:
                    (self._dir / name).unlink()
                    removed = True
            if removed:
                fsync_dir(self._dir)
        except OSError as exc:
            raise StorageError(f"cannot open the snapshot directory {self._dir}: {exc}") from exc

    def _snapshots(self) -> list[tuple[int, Path]]:
        """Every snapshot file by offset, oldest first."""
        found = [
            (offset, self._dir / name)
            for name in os.listdir(self._dir)
            if (offset := parse_snapshot_name(name)) is not None
        ]
        return sorted(found)

    def write(self, offset: int, payload: bytes) -> None:
        """Store ``payload`` as the snapshot at ``offset``, atomically, then prune old ones.

        Either the complete new file is in place (and durable) or nothing changed.
        Raises ``ValueError`` for an offset outside u64, ``StorageError`` on I/O errors.
        """
        with self._lock:
            self.write_pending(offset, payload)
            self._publish_locked(offset)

    def write_pending(self, offset: int, payload: bytes) -> None:
        """The first half of ``write``: the snapshot's bytes, durable under a temporary name that
        start-up ignores (and removes), until ``publish``. Takes no lock: a forked child may call it."""
        if not 0 <= offset <= MAX_OFFSET:
            raise ValueError(f"snapshot offset must be between 0 and {MAX_OFFSET}, not {offset}")
        header = SNAPSHOT_HEADER.pack(SNAPSHOT_MAGIC, offset, len(payload), zlib.crc32(payload))
        tmp = self._pending_path(offset)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
            try:
                write_all(fd, header)
                write_all(fd, payload)
                # The data must be on disk before the rename can be: otherwise a crash could leave
                # the final name pointing at an empty or partial file.
                datasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.discard(offset)
            raise StorageError(f"cannot write snapshot {tmp}: {exc}") from exc

    def publish(self, offset: int) -> None:
        """The second half of ``write``: give the pending snapshot its name, then prune old ones."""
        with self._lock:
            self._publish_locked(offset)

    def _publish_locked(self, offset: int) -> None:
        final = self._dir / snapshot_name(offset)
        try:
            os.replace(self._pending_path(offset), final)
            fsync_dir(self._dir)
        except OSError as exc:
            self.discard(offset)
            raise StorageError(f"cannot write snapshot {final}: {exc}") from exc
        try:
            for _old, path in self._snapshots()[: -self._keep]:
                path.unlink()
        except OSError as exc:
            raise StorageError(f"snapshot {final} written, but pruning old ones failed: {exc}") from exc

    def discard(self, offset: int) -> None:
        """Remove a pending snapshot that will not be published (best effort)."""
        try:
            self._pending_path(offset).unlink(missing_ok=True)
        except OSError:
            pass

    def _pending_path(self, offset: int) -> Path:
        return self._dir / (snapshot_name(offset) + _TMP_SUFFIX)

    def latest(self) -> tuple[int, bytes] | None:
        """The newest snapshot that verifies, as ``(offset, payload)``; None if there is none.

        Invalid files met on the way are renamed to ``*.corrupt`` (kept for
        inspection, never read again) and described in ``repairs``.
        """
        with self._lock:
            try:
                candidates = self._snapshots()
            except OSError as exc:
                raise StorageError(f"cannot list snapshots in {self._dir}: {exc}") from exc
            for offset, path in reversed(candidates):
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise StorageError(f"cannot read snapshot {path}: {exc}") from exc
                problem = _verify(data, offset)
                if problem is None:
                    return offset, data[SNAPSHOT_HEADER.size:]
                corrupt = path.with_name(path.name + ".corrupt")
                try:
                    os.replace(path, corrupt)
                    fsync_dir(self._dir)
                except OSError as exc:
                    raise StorageError(
                        f"snapshot {path} is invalid ({problem}) and cannot be set aside: {exc}"
                    ) from exc
                self.repairs.append(f"snapshot {path}: {problem}; skipped it and renamed it to {corrupt.name}")
            return None


def _verify(data: bytes, offset: int) -> str | None:
    """Why ``data`` is not a valid snapshot at ``offset``, or None if it is."""
    hsize = SNAPSHOT_HEADER.size
    if len(data) < hsize:
        return f"file of {len(data)} bytes is shorter than the {hsize}-byte header"
    magic, stored_offset, length, crc = SNAPSHOT_HEADER.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        return f"bad magic {magic!r}"
    if stored_offset != offset:
        return f"header says offset {stored_offset} but the file name says {offset}"
    if len(data) - hsize != length:
        return f"header says {length} payload bytes but the file holds {len(data) - hsize}"
    if zlib.crc32(memoryview(data)[hsize:]) != crc:
        return "checksum mismatch"
    return None
