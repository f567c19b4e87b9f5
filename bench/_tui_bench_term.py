"""A real ``chat-tui`` process in a pseudo-terminal, read by a minimal terminal emulator.

Used by ``tui_bench.py`` for key-to-echo latency: a key's bytes are written to the
pty master, and a reader thread parses everything the app writes (cursor moves,
text; colours and modes are ignored, which is all Textual's output needs) into a
character grid, so the moment the typed character lands on the composer's row of
the screen is seen as soon as the app's write arrives, with no polling.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable

from rich.cells import get_character_cell_size

# CSI, OSC (BEL or ST terminated), DCS/APC/PM/SOS (ST terminated), charset selection, other ESC x.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[P_^X][^\x1b]*\x1b\\"
                     r"|[()*+][0-~]|(?![\[\]P_^X])[ -~])")
_TEXT = re.compile(r"[^\x1b\x00-\x1f\x7f]+")


class Screen:
    """A rows x cols character grid fed with terminal output."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.grid = [[" "] * cols for _ in range(rows)]
        self.y = self.x = 0
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        self._pending = ""
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch == "\x1b":
                m = _ESCAPE.match(text, i)
                if m is None:
                    if n - i < 4096:  # an escape split across reads: keep it for the next chunk
                        self._pending = text[i:]
                        return
                    i += 1
                    continue
                seq = m.group()
                if seq[1] == "[":
                    self._csi(seq)
                i = m.end()
            elif ch == "\r":
                self.x, i = 0, i + 1
            elif ch == "\n":
                self.y, i = min(self.rows - 1, self.y + 1), i + 1
            elif ch == "\b":
                self.x, i = max(0, self.x - 1), i + 1
            elif ch < " " or ch == "\x7f":
                i += 1
            else:
                m = _TEXT.match(text, i)
                assert m is not None
                self._put(m.group())
                i = m.end()

    def _put(self, run: str) -> None:
        row = self.grid[self.y]
        if run.isascii():
            end = min(self.cols, self.x + len(run))
            row[self.x:end] = run[: end - self.x]
            self.x = end
            return
        for ch in run:
            w = get_character_cell_size(ch)
            if self.x + w > self.cols:
                break
            row[self.x] = ch
            if w == 2:
                row[self.x + 1] = ""
            self.x += w

    def _csi(self, seq: str) -> None:
        final, body = seq[-1], seq[2:-1]
        if body.startswith(("?", ">", "<", "=")):
            return  # private modes (alternate screen, mouse, synchronized output...)
        params = [int(p) if p.isdigit() else 0 for p in body.split(";")] if body else []
        if final in "Hf":
            row = params[0] if params and params[0] else 1
            col = params[1] if len(params) > 1 and params[1] else 1
            self.y, self.x = min(self.rows, row) - 1, min(self.cols, col) - 1
        elif final == "J" and params and params[0] == 2:
            self.grid = [[" "] * self.cols for _ in range(self.rows)]
        elif final == "K":
            row = self.grid[self.y]
            mode = params[0] if params else 0
            lo, hi = {0: (self.x, self.cols), 1: (0, self.x + 1), 2: (0, self.cols)}.get(mode, (0, 0))
            row[lo:hi] = [" "] * (hi - lo)
        elif final == "A":
            self.y = max(0, self.y - (params[0] if params and params[0] else 1))
        elif final == "B":
            self.y = min(self.rows - 1, self.y + (params[0] if params and params[0] else 1))
        elif final == "C":
            self.x = min(self.cols - 1, self.x + (params[0] if params and params[0] else 1))
        elif final == "D":
            self.x = max(0, self.x - (params[0] if params and params[0] else 1))
        elif final == "G":
            self.x = min(self.cols, params[0] if params and params[0] else 1) - 1

    def line(self, y: int) -> str:
        return "".join(self.grid[y])

    def text(self) -> str:
        return "\n".join(self.line(y) for y in range(self.rows))


class PtyApp:
    """``cmd`` in a new pty of ``cols`` x ``rows``; every write of the app is parsed into ``screen``."""

    def __init__(self, cmd: list[str], env: dict[str, str], cols: int = 120, rows: int = 40) -> None:
        self.screen = Screen(cols, rows)
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0), close_fds=True)
        os.close(slave)
        self._cond = threading.Condition()
        self._check: Callable[[Screen], bool] | None = None
        self._hit: float | None = None
        self.bytes_read = 0
        self.chunks = 0
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except OSError:
                break
            if not data:
                break
            with self._cond:
                self.screen.feed(data)
                self.bytes_read += len(data)
                self.chunks += 1
                if self._check is not None and self._hit is None and self._check(self.screen):
                    self._hit = time.perf_counter()
                    self._cond.notify_all()

    def wait_for(self, check: Callable[[Screen], bool], timeout: float) -> float:
        """perf_counter time at which ``check(screen)`` first held (after the write that made it so)."""
        with self._cond:
            self._hit = time.perf_counter() if check(self.screen) else None
            self._check = check
            ok = self._cond.wait_for(lambda: self._hit is not None, timeout)
            self._check = None
            if not ok:
                raise TimeoutError("screen condition not met; screen:\n" + self.screen.text())
            assert self._hit is not None
            return self._hit

    def send_then_wait(self, data: bytes, check: Callable[[Screen], bool], timeout: float) -> tuple[float, float]:
        """Write ``data`` to the terminal; (time written, time ``check`` first held after it)."""
        with self._cond:
            self._hit = None
            self._check = check
            t0 = time.perf_counter()
            os.write(self.master, data)
            ok = self._cond.wait_for(lambda: self._hit is not None, timeout)
            self._check = None
            if not ok:
                raise TimeoutError("screen condition not met; screen:\n" + self.screen.text())
            assert self._hit is not None
            return t0, self._hit

    def close(self, timeout: float = 5) -> None:
        if self.proc.poll() is None:
            try:
                os.write(self.master, b"\x11")  # ctrl+q
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass
        self._thread.join(2)
