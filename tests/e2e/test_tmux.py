"""End to end: the installed ``chat-tui`` in real terminals (tmux panes) against a real
``chat-server start``; the screens are read back with ``capture-pane`` as a person sees them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chat_server.server import LOCK_NAME
from db_core.dirlock import lock_holder

from ..server_harness import BIN, ServerProcess

if shutil.which("tmux") is None and not os.environ.get("QC_REQUIRE_TMUX"):
    pytest.skip("tmux is not installed (.ci/run installs it)", allow_module_level=True)


class Tmux:
    """One private tmux server (its own socket, no user config)."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]

    def __call__(self, *args: str) -> str:
        return subprocess.run(self.base + list(args), check=True, capture_output=True, text=True).stdout

    def screen(self, pane: str) -> str:
        return self("capture-pane", "-p", "-t", pane)

    def type(self, pane: str, text: str) -> None:
        self("send-keys", "-t", pane, "-l", text)
        self("send-keys", "-t", pane, "Enter")

    def wait(self, pane: str, pred: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            try:
                screen = self.screen(pane)
            except subprocess.CalledProcessError:
                screen = "<pane gone>"
            if pred(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"{what}: not on screen after {timeout} s; the screen was:\n{screen}")

    def kill(self) -> None:
        subprocess.run(self.base + ["kill-server"], capture_output=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux(f"qc-e2e-{os.getpid()}")
    try:
        yield t
    finally:
        t.kill()


def test_two_users_in_two_panes(tmp_path: Path, tmux: Tmux) -> None:
    server = ServerProcess(tmp_path / "server").start()
    try:
        chat_tui = BIN / "chat-tui"
        assert chat_tui.exists(), "chat-tui is not installed next to this Python"
        env = f"env XDG_CONFIG_HOME={tmp_path / 'config'} XDG_DATA_HOME={tmp_path / 'data'}"
        cmd = f"{env} {chat_tui} --server {server.url}"
        tmux("new-session", "-d", "-s", "chat", "-x", "200", "-y", "40", cmd)
        tmux("split-window", "-h", "-t", "chat", cmd)
        left, right = "chat:0.0", "chat:0.1"
        for pane in (left, right):
            tmux.wait(pane, lambda s: "Connected to" in s, f"{pane} connected")

        tmux.type(left, "/name Alice")
        tmux.wait(right, lambda s: "renamed to Alice." in s, "Bob sees Alice's rename")
        tmux.type(right, "/name Bob")
        tmux.wait(left, lambda s: "renamed to Bob." in s, "Alice sees Bob's rename")
        tmux.type(left, "Hello from Alice")
        tmux.wait(right, lambda s: "Hello from Alice" in s, "Bob sees Alice's message")
        tmux.type(right, "Hi Alice, Bob here")
        screen = tmux.wait(left, lambda s: "Hi Alice, Bob here" in s, "Alice sees Bob's message")
        # Both users listed online; each terminal is its own profile and identity.
        assert "● Alice (you)" in screen and "● Bob" in screen and "Online 2/2" in screen
        assert "you are Alice" in screen and "you are Bob" in tmux.screen(right)
        profiles = {s.split("· profile ")[1].split(" ")[0] for s in (screen, tmux.screen(right))}
        assert profiles == {"default", "2"}
        # The mention of Alice is on Alice's screen under Bob's name.
        line = next(row for row in screen.splitlines() if "Hi Alice, Bob here" in row)
        assert "Bob" in line.split("Hi Alice")[0]

        tmux.type(left, "/quit")
        tmux.wait(right, lambda s: "Alice disconnected." in s, "Bob sees Alice leave", timeout=5)
        screen = tmux.wait(right, lambda s: "○ Alice" in s, "Alice offline in Bob's list", timeout=5)
        assert "Online 1/2" in screen
        deadline = time.monotonic() + 5
        while len(tmux("list-panes", "-t", "chat").splitlines()) != 1:
            assert time.monotonic() < deadline, "chat-tui did not exit on /quit"
            time.sleep(0.05)
    finally:
        tmux.kill()
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def assert_nothing_restarts(tmux: Tmux, pane: str, data: Path, port: int, seconds: float) -> None:
    """For ``seconds``: no server holds ``data`` or listens on ``port``, and ``pane`` stays offline."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert lock_holder(data, LOCK_NAME) is None, "a new server took the data directory"
        assert not listening(port), "something listens on the port again"
        time.sleep(0.1)
    screen = tmux.screen(pane)
    assert "○ Offline" in screen, screen


def test_an_auto_started_server_is_for_launch_only(tmp_path: Path, tmux: Tmux) -> None:
    """kill -9 of the server chat-tui started: it shows offline and reconnects, never starts another;
    a `chat-server start` on the directory brings it back online, `chat-server stop` offline again."""
    port = free_port()
    url = f"127.0.0.1:{port}"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "xdg-data")}
    data = tmp_path / "xdg-data" / "quickstart-chat"   # the platform's default data directory, under XDG_DATA_HOME
    server: ServerProcess | None = None
    try:
        cmd = (f"env XDG_CONFIG_HOME={env['XDG_CONFIG_HOME']} XDG_DATA_HOME={env['XDG_DATA_HOME']} "
               f"QC_LOCAL_SERVER={url} {BIN / 'chat-tui'}")
        tmux("new-session", "-d", "-s", "chat", "-x", "120", "-y", "30", cmd)
        pane = "chat:0.0"
        tmux.wait(pane, lambda s: f"● Connected to {url}" in s, "connected to the server it started", timeout=30)
        pid = lock_holder(data, LOCK_NAME)
        assert pid is not None and (data / "server.log").read_text().count("chat-tui started:") == 1

        os.kill(pid, signal.SIGKILL)
        tmux.wait(pane, lambda s: "○ Offline" in s, "offline after kill -9", timeout=10)
        assert_nothing_restarts(tmux, pane, data, port, 4.0)
        assert (data / "server.log").read_text().count("chat-tui started:") == 1

        server = ServerProcess(data, env, args=["--listen", url]).start()
        tmux.wait(pane, lambda s: f"● Connected to {url}" in s, "reconnected to the restarted server", timeout=20)

        r = subprocess.run([str(BIN / "chat-server"), "stop", "--data-dir", str(data)], capture_output=True,
                           text=True, env=env, timeout=60)
        assert server.proc is not None
        assert (r.returncode, r.stdout) == (0, f"stopped the server on {data} (pid {server.proc.pid})\n"), r.stderr
        assert server.proc.wait(timeout=5) == 0
        tmux.wait(pane, lambda s: "○ Offline" in s, "offline after chat-server stop", timeout=10)
        assert_nothing_restarts(tmux, pane, data, port, 2.0)
    finally:
        tmux.kill()
        if server is not None and server.proc is not None and server.proc.poll() is None:
            server.kill()
        left = lock_holder(data, LOCK_NAME)
        if left is not None:
            os.kill(left, signal.SIGKILL)


def test_offline_status_line_at_80_and_120_columns(tmp_path: Path, tmux: Tmux) -> None:
    """With the server gone and a message typed, the bottom line of a real terminal says offline,
    the countdown to the next attempt, the unsent count and the last known online count, at 80
    columns as at 120, before any detail."""
    server = ServerProcess(tmp_path / "server").start()
    try:
        env = f"env XDG_CONFIG_HOME={tmp_path / 'config'} XDG_DATA_HOME={tmp_path / 'data'}"
        cmd = f"{env} {BIN / 'chat-tui'} --server {server.url}"
        panes = {}
        for width in (80, 120):
            tmux("new-session", "-d", "-s", f"w{width}", "-x", str(width), "-y", "24", cmd)
            panes[width] = f"w{width}:0.0"
        for pane in panes.values():
            tmux.wait(pane, lambda s: "Connected to" in s and "2 online" in s, f"{pane} connected")
    finally:
        server.stop()
    for width, pane in panes.items():
        tmux.wait(pane, lambda s: "Offline" in s, f"{pane} offline")
        tmux.type(pane, "typed while offline")

        def complete(screen: str) -> bool:
            last = screen.rstrip("\n").splitlines()[-1]
            return last.startswith(" ○ Offline · retry in ") and " s · 1 unsent · 2 online (last known)" in last

        screen = tmux.wait(pane, complete, f"the offline status line at {width} columns")
        assert "cannot reach" not in screen.splitlines()[-1]
        assert "Cannot connect (cannot reach" in screen or "Disconnected (" in screen   # the details: in the log


def test_a_refused_line_never_turns_a_command_into_a_message(tmp_path: Path, tmux: Tmux) -> None:
    """Issue 12: "   " Enter was refused, its spaces stayed in the input, and the next
    "/name Carol2" went to everyone as a message. Now the blank line is ignored, a refused line
    comes back for editing, and spaces before a / keep a command a command."""
    server = ServerProcess(tmp_path / "server").start()
    try:
        env = f"env XDG_CONFIG_HOME={tmp_path / 'config'} XDG_DATA_HOME={tmp_path / 'data'}"
        cmd = f"{env} {BIN / 'chat-tui'} --server {server.url}"
        # Two sessions, not a split window: each terminal keeps its size from the start.
        tmux("new-session", "-d", "-s", "me", "-x", "120", "-y", "40", cmd)
        tmux("new-session", "-d", "-s", "other", "-x", "120", "-y", "40", cmd)
        me, other = "me:0.0", "other:0.0"
        for pane in (me, other):
            tmux.wait(pane, lambda s: "Connected to" in s, f"{pane} connected")

        tmux.type(me, "   ")
        tmux.type(me, "/name Carol2")
        tmux.wait(other, lambda s: "renamed to Carol2." in s, "the other user sees the rename")
        screen = tmux.wait(me, lambda s: "you are Carol2" in s, "renamed in the header")
        assert "Nothing to send" not in screen
        # A refused line stays in the input; spaces typed before a command do not spoil it.
        tmux.type(me, "/nick Caz")
        tmux.wait(me, lambda s: "Unknown command /nick" in s and "▊  /nick Caz" in s, "refused, kept in the input")
        tmux("send-keys", "-t", me, "C-u")
        tmux.type(me, "   /name Carol3")
        tmux.wait(other, lambda s: "renamed to Carol3." in s, "the second rename")
        tmux.type(me, "/me waves")
        screen = tmux.wait(other, lambda s: "* Carol3 waves" in s, "the action")
        # Nothing of it went out as a message.
        assert "/name Carol" not in screen and "/nick" not in screen and "/me waves" not in screen
    finally:
        tmux.kill()
        server.stop()
