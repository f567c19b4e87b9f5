"""The module log: what reducers write with ``log.*`` plus system lines.

Records live in a bounded in-memory ring (for ``logs`` and ``logs -f``) and,
for a durable database, are appended to ``module.log`` in the data directory
in the exact line format the CLI prints. The file is rotated at ``max_bytes``
(the previous one kept as ``module.log.1``), so the log of a busy database
stays bounded and ``logs -n`` reads only the tail. The files are created 0600:
they hold every message. A file that cannot be written (a full disk) never
fails a reducer: it is reported once, and from then on, until the next start,
new records are kept in memory only (``lines`` still shows them).

A record is one line: what a module logs goes through ``visible``, so a newline
in it shows as ``␊`` and cannot forge a record, nor an escape sequence act on
the terminal that prints it. The one exception is a panic's traceback, which the
database appends to its record after a ``Traceback (most recent call last):``
line: each of its lines follows as a continuation line, indented by two spaces,
so none can be read as a record's first line (which starts with its time).
Log files written before continuation lines were indented still read back.
"""

from __future__ import annotations

import collections
import datetime as _dt
import logging
import os
import re
import threading
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from .visible import visible

Level = typing.Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
LEVELS: tuple[Level, ...] = typing.get_args(Level)  # lowest first
LEVEL_RANK: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
MAX_FILE_BYTES = 16 << 20  # module.log is rotated at this size; module.log.1 keeps the one before
_LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) +(" + "|".join(LEVELS) + r"): (.*)$")
CONTINUATION = "  "
"""What each continuation line (of a panic's traceback) starts with: never a record's start."""
# Where the database starts a panic's traceback in its record (an exception group's starts "  + ").
_TRACEBACK = re.compile(r"\n(?=(?:  \+ Exception Group )?Traceback \(most recent call last\):\n)")
logger = logging.getLogger("db_core")


class LogRecord(NamedTuple):
    micros: int
    level: Level
    file: str | None
    line: int | None
    message: str

    def format(self) -> str:
        """``2025-04-08T15:47:46.935402Z  INFO: quickstart_chat.py:43: Hello, World!``: one line, made
        ``visible``, plus a continuation line per line of a panic's traceback (see the module docstring)."""
        where = f"{self.file}:{self.line}: " if self.file is not None else ""
        message, traceback = self.message, None
        if self.level == "ERROR" and "\n" in message and (split := _TRACEBACK.search(message)) is not None:
            message, traceback = message[:split.start()], message[split.end():]
        line = f"{format_micros(self.micros)} {self.level:>5}: {visible(where + message)}"
        if traceback is None:
            return line
        return "\n".join([line, *[CONTINUATION + visible(text) for text in traceback.split("\n")]])


_second_cache: tuple[int, str] = (-1, "")


def format_micros(micros: int) -> str:
    """RFC 3339 UTC with microseconds and ``Z``; the date part is cached per second (logs are hot)."""
    global _second_cache
    seconds, fraction = divmod(micros, 1_000_000)
    cached_seconds, prefix = _second_cache  # one tuple: safe to read while another thread replaces it
    if cached_seconds != seconds:
        prefix = (_dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=seconds)).isoformat()
        _second_cache = (seconds, prefix)
    return f"{prefix}.{fraction:06d}Z"


def parse_line(text: str) -> tuple[str, str] | None:
    """(level, text) of a formatted log line, or None for a continuation line."""
    m = _LINE_RE.match(text)
    return (m.group(2), text) if m else None


class ModuleLog:
    """A database's module log. Thread-safe appends; listeners see each new record."""

    def __init__(self, path: Path | None = None, capacity: int = 100_000, max_bytes: int = MAX_FILE_BYTES) -> None:
        self._records: collections.deque[LogRecord] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[LogRecord], None]] = []
        self._fd: int | None = None  # module.log, opened O_APPEND; each batch is one write of whole lines
        self._size = 0  # its length in bytes: everything up to here is whole lines
        self._unwritten: list[LogRecord] = []
        # Records the file could not take, once writing it failed (None while it works).
        self._unsaved: collections.deque[LogRecord] | None = None
        self.path = path
        self.max_bytes = max_bytes
        if path is not None:
            try:
                self._fd = _open_private(path)
                self._size = os.lseek(self._fd, 0, os.SEEK_END)
            except OSError as exc:
                self._give_up(exc)

    def emit(self, record: LogRecord) -> None:
        with self._lock:
            self._records.append(record)
            if self._fd is not None:
                # Formatting is deferred and batched: reducers log on the hot path.
                self._unwritten.append(record)
                if len(self._unwritten) >= 512:
                    self._write_unwritten()
            elif self._unsaved is not None:
                self._unsaved.append(record)
            listeners = self._listeners
        for listener in listeners:
            listener(record)

    def _write_unwritten(self) -> None:
        if not self._unwritten or self._fd is None:
            return
        data = "".join([r.format() + "\n" for r in self._unwritten]).encode()
        try:
            view = memoryview(data)
            while view:  # a write may take less than asked (near a full disk): the rest, or its error
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._give_up(exc)
            return
        self._size += len(data)
        self._unwritten.clear()
        if self._size >= self.max_bytes:
            try:
                self._rotate()
            except OSError as exc:
                self._give_up(exc)

    def _rotate(self) -> None:
        assert self._fd is not None and self.path is not None
        os.close(self._fd)
        self._fd = None
        os.replace(self.path, self._previous_path())
        self._fd = _open_private(self.path)
        self._size = 0

    def _give_up(self, exc: OSError) -> None:
        """Stop writing the file (under the lock, or from ``__init__``): report it once, keep the records.

        The file keeps whole lines only (the failed batch's start is cut off again); the batch and
        every later record stay in memory, where ``lines`` finds them.
        """
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._size)  # frees space, so it works on a full disk too
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
        self._unsaved = collections.deque(self._unwritten, maxlen=self._records.maxlen)
        self._unwritten = []
        text = f"cannot write {self.path}: {exc}; until the next start, new log lines are kept in memory only"
        logger.error("%s", text)
        record = LogRecord(time.time_ns() // 1000, "ERROR", None, None, text)
        self._records.append(record)
        self._unsaved.append(record)

    def _previous_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".1")

    def system(self, message: str, level: Level = "INFO") -> None:
        """A line from the database itself (no module file and line)."""
        self.emit(LogRecord(time.time_ns() // 1000, level, None, None, message))

    def add_listener(self, callback: Callable[[LogRecord], None]) -> None:
        with self._lock:
            self._listeners = [*self._listeners, callback]

    def remove_listener(self, callback: Callable[[LogRecord], None]) -> None:
        with self._lock:
            self._listeners = [cb for cb in self._listeners if cb is not callback]

    def records(self) -> list[LogRecord]:
        with self._lock:
            return list(self._records)

    def lines(self, n: int | None = None, level: str | None = None) -> list[str]:
        """The last ``n`` formatted lines at ``level`` or above, oldest first.

        Reads the files when there are (they outlive restarts), else the ring; with ``n``, only
        as much of their ends as it takes. Records the file could not take follow the files. Lines
        of files written before records were made ``visible`` are made so as they are read.
        """
        floor = LEVEL_RANK[level.upper()] if level else 0
        self.flush()
        if self.path is None:
            out = _format(self.records(), floor)
            return out if n is None else out[-n:] if n > 0 else []
        with self._lock:
            unsaved = _format(self._unsaved or (), floor)
        files = [p for p in (self._previous_path(), self.path) if p.exists()]
        if n is None:
            return [visible(line) for line in _filter(_read_lines(files), floor)] + unsaved
        if len(unsaved) >= n:
            return unsaved[-n:] if n > 0 else []
        return [visible(line) for line in tail_lines(files, n - len(unsaved), floor)] + unsaved

    def flush(self) -> None:
        """Write what is batched to the file (the OS's page cache; ``close`` fsyncs)."""
        with self._lock:
            self._write_unwritten()

    def close(self) -> None:
        with self._lock:
            self._write_unwritten()
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    self._give_up(exc)
                else:
                    os.close(self._fd)
                    self._fd = None


def _open_private(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _format(records: Iterable[LogRecord], floor: int) -> list[str]:
    """The formatted lines of the records at ``floor`` or above."""
    return [line for r in records if LEVEL_RANK[r.level] >= floor for line in r.format().split("\n")]


def _read_lines(files: list[Path]) -> list[str]:
    out: list[str] = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as fh:
            out.extend(raw.rstrip("\n") for raw in fh)
    return out


def _filter(lines: list[str], floor: int) -> list[str]:
    """The lines of records at ``floor`` or above; continuation lines go with their record's header
    (lines before any header, the rest of a record cut by rotation, are dropped)."""
    out: list[str] = []
    keep = False
    for text in lines:
        parsed = parse_line(text)
        if parsed is not None:
            keep = LEVEL_RANK[parsed[0]] >= floor
        if keep:
            out.append(text)
    return out


def tail_lines(files: list[Path], n: int, floor: int, block: int = 1 << 16) -> list[str]:
    """``_filter(_read_lines(files), floor)[-n:]``, reading the files backwards by blocks only until
    it has ``n`` lines (a busy database's log is large; ``logs -n 20`` must not read it all)."""
    if n <= 0:
        return []
    kept: list[str] = []   # newest first
    group: list[str] = []  # continuation lines (newest first) waiting for their header
    for path in reversed(files):
        for text in _lines_backwards(path, block):
            parsed = parse_line(text)
            if parsed is None:
                group.append(text)
                continue
            if LEVEL_RANK[parsed[0]] >= floor:
                kept.extend(group)
                kept.append(text)
                if len(kept) >= n:
                    return kept[:n][::-1]
            group.clear()
    return kept[::-1]  # lines before the first header (``group``) belong to no record: dropped


def _lines_backwards(path: Path, block: int) -> Iterator[str]:
    """The lines of a file, last first, without reading more than needed."""
    with open(path, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        rest = b""
        first = True
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + rest
            parts = chunk.split(b"\n")
            rest = parts[0]  # may continue in the previous block
            if first:
                first = False
                if parts[-1] == b"":
                    parts.pop()  # the file's final newline ends a line; it does not start one
            for raw in reversed(parts[1:]):
                yield raw.decode("utf-8", errors="replace")
        if rest or not first:
            yield rest.decode("utf-8", errors="replace")
