"""The module log: what reducers write with ``log.*`` plus system lines.

Records live in a bounded in-memory ring (for ``logs`` and ``logs -f``) and,
for a durable database, are appended to ``module.log`` in the data directory
in the exact line format the CLI prints.
"""

from __future__ import annotations

import collections
import datetime as _dt
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
_LINE_RE = re.compile(r"^(\S+Z) +(TRACE|DEBUG|INFO|WARN|ERROR): (.*)$")


class LogRecord(NamedTuple):
    micros: int
    level: str
    file: str | None
    line: int | None
    message: str

    def format(self) -> str:
        """``2025-04-08T15:47:46.935402Z  INFO: quickstart_chat.py:43: Hello, World!``"""
        where = f"{self.file}:{self.line}: " if self.file is not None else ""
        return f"{format_micros(self.micros)} {self.level:>5}: {where}{self.message}"


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

    def __init__(self, path: Path | None = None, capacity: int = 100_000) -> None:
        self._records: collections.deque[LogRecord] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[LogRecord], None]] = []
        self._file: IO[str] | None = None
        self._unwritten: list[LogRecord] = []
        self.path = path
        if path is not None:
            self._file = open(path, "a", encoding="utf-8", buffering=1 << 16)

    def emit(self, record: LogRecord) -> None:
        with self._lock:
            self._records.append(record)
            if self._file is not None:
                # Formatting is deferred and batched: reducers log on the hot path.
                self._unwritten.append(record)
                if len(self._unwritten) >= 512:
                    self._write_unwritten()
            listeners = self._listeners
        for listener in listeners:
            listener(record)

    def _write_unwritten(self) -> None:
        if self._unwritten and self._file is not None:
            self._file.write("".join([r.format() + "\n" for r in self._unwritten]))
        self._unwritten.clear()

    def system(self, message: str, level: str = "INFO") -> None:
        """A line from the database itself (no module file and line)."""
        import time

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

        Reads the file when there is one (it outlives restarts), else the ring.
        """
        floor = LEVEL_RANK[level.upper()] if level else 0
        self.flush()
        if self.path is not None and self.path.exists():
            out: list[str] = []
            keep = False
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for raw in fh:
                    text = raw.rstrip("\n")
                    parsed = parse_line(text)
                    if parsed is not None:
                        keep = LEVEL_RANK[parsed[0]] >= floor
                    if keep:
                        out.append(text)
        else:
            out = [line for r in self.records() if LEVEL_RANK[r.level] >= floor for line in r.format().split("\n")]
        return out if n is None else out[-n:] if n > 0 else []

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._write_unwritten()
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._write_unwritten()
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
