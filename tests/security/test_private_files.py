"""Data files are private: everything under a data directory is 0700/0600 whatever the umask.

module.log holds every message, the commit log and snapshots every row; none of it may be readable
by another user of the machine.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_server.client import Client
from chat_tui import launcher

from ..server_harness import in_process_server, run

NOTES = textwrap.dedent("""
    from db_core import table, reducer, ReducerContext, log
    @table(name="note", public=True)
    class Note:
        text: str
    @reducer
    def add(ctx: ReducerContext, text: str) -> None:
        ctx.db.note.insert(Note(text))
        log.info(f"added {text}")
""")


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual umask: files 0644 and directories 0755 unless the code says otherwise
    try:
        yield
    finally:
        os.umask(old)


def open_to_others(root: Path) -> list[str]:
    """Every path under ``root`` (and ``root`` itself) that its group or others may use, with its mode."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(mode):03o}")
    return found


async def test_a_server_creates_every_file_and_directory_private(tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "data"

    async with in_process_server(data) as server:
        server.publish("notes", NOTES, filename="notes.py")
        url = f"127.0.0.1:{server.port}"
        alice = await Client.connect(url, "quickstart-chat")
        for i in range(3):
            assert (await alice.call("send_message", f"secret {i}")).status == "committed"
        bob = await Client.connect(url, "notes")
        assert (await bob.call("add", "private")).status == "committed"
        await alice.close()
        await bob.close()
        for hosted in server.databases.values():
            hosted.db.snapshot()
            logs = hosted.db.logs
            logs.max_bytes = 1  # the next write rotates module.log into module.log.1
            logs.system("rotate now")
            logs.flush()
    names = {p.name for p in data.rglob("*")}
    for expected in ("module.log", "module.log.1", "meta.json", "lock", "server.lock", "auth.key", "owner.token",
                     "notes.py", "quickstart_chat.py", f"{0:020d}.log"):
        assert expected in names, (expected, sorted(names))
    assert any(name.endswith(".snap") for name in names)
    assert open_to_others(data) == []


async def test_an_old_data_directory_open_to_others_is_tightened_with_one_log_line(
        tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)

    with caplog.at_level(logging.INFO, logger="chat_server"):
        async with in_process_server(data):
            pass
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    lines = [r.getMessage() for r in caplog.records if "open to others" in r.getMessage()]
    assert lines == [f"data directory {data} was open to others (mode 755); it is now 0700"]


def test_the_log_of_a_server_started_by_chat_tui_is_private(tmp_path: Path, umask_022: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"127.0.0.1:{s.getsockname()[1]}"
    data = tmp_path / "data"
    before = len(launcher.started)
    try:
        assert run(launcher.ensure_local_server(url, data_dir=data)) is True
    finally:
        for proc in launcher.started[before:]:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        del launcher.started[before:]
    assert (data / "server.log").is_file()
    assert open_to_others(data) == []
