"""chat_tui.launcher: health checks and auto-starting a real detached chat-server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_tui import launcher
from chat_tui.launcher import LaunchError, ensure_local_server, is_local_default, server_alive
from chat_server import cli
from chat_server.server import ChatServer, ServerConfig
from tests.server_harness import in_process_server, run, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolated XDG dirs (inherited by started servers); stops any server a test left running."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    before = len(launcher.started)
    yield tmp_path
    for proc in launcher.started[before:]:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    del launcher.started[before:]


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def test_launcher_and_profiles_do_not_load_the_server() -> None:
    # chat_tui reaches the database only over the network (architecture rule 4), and starts fast.
    code = "import sys, chat_tui.launcher, chat_tui.profiles; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert not {"chat_server.server", "chat_server.cli", "db_core.host"} & set(out)


def test_is_local_default() -> None:
    for s in ("127.0.0.1:3000", "localhost:3000", "http://localhost:3000/", "ws://127.0.0.1:3000", "127.0.0.1"):
        assert is_local_default(s), s
    for s in ("127.0.0.1:3001", "example.com:3000", "http://10.0.0.1:3000", "localhost:80"):
        assert not is_local_default(s), s


def test_server_alive_false_on_a_closed_port() -> None:
    t0 = time.monotonic()
    assert run(server_alive(f"127.0.0.1:{free_port()}")) is False
    assert time.monotonic() - t0 < 1.0  # refused at once, not a timeout


def test_server_alive_true_against_a_real_server(tmp_path: Path) -> None:
    async def go() -> None:
        async with in_process_server(tmp_path) as server:
            assert await server_alive(f"127.0.0.1:{server.port}")
            assert await server_alive(f"http://localhost:{server.port}/")

    run(go())


def test_server_alive_false_on_a_silent_or_non_chat_listener() -> None:
    async def go() -> None:
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections (backlog) but never answers

        async def not_found(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await w.drain()
            w.close()

        other = await asyncio.start_server(not_found, "127.0.0.1", 0)
        try:
            t0 = time.monotonic()
            assert await server_alive(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.3) is False
            assert 0.25 < time.monotonic() - t0 < 1.0
            assert await server_alive(f"127.0.0.1:{other.sockets[0].getsockname()[1]}") is False
        finally:
            silent.close()
            other.close()
            await other.wait_closed()

    run(go())


def test_a_server_answering_503_is_running_and_no_second_one_starts(home: Path) -> None:
    async def go() -> None:
        async def unhealthy(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            # What a chat server answers while a database cannot write to disk.
            await r.readuntil(b"\r\n\r\n")
            body = b"database quickstart-chat cannot write to disk: [Errno 28] No space left on device\n"
            w.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await w.drain()
            w.close()

        listener = await asyncio.start_server(unhealthy, "127.0.0.1", 0)
        url = f"127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        try:
            assert await server_alive(url)
            before = len(launcher.started)
            assert await ensure_local_server(url, data_dir=home / "data", timeout=5) is False
            assert len(launcher.started) == before  # nothing started
            assert not (home / "data" / "server.log").exists()
        finally:
            listener.close()
            await listener.wait_closed()

    run(go())


def test_ensure_local_server_starts_a_detached_server(home: Path) -> None:
    url = f"127.0.0.1:{free_port()}"
    data = home / "data"
    statuses: list[str] = []
    assert run(ensure_local_server(url, data_dir=data, on_status=statuses.append)) is True
    proc = launcher.started[-1]
    assert proc.poll() is None
    assert statuses and statuses[0].startswith("Starting a local server")
    assert (data / "server.log").is_file()
    assert f"listening on ws://{url} (databases: quickstart-chat; data in {data})" in (data / "server.log").read_text()
    assert (home / "config" / "quickstart-chat" / "owner-tokens.json").is_file()  # and inherited the env
    assert os.getsid(proc.pid) == proc.pid != os.getsid(0)  # its own session: the terminal's signals miss it
    assert run(server_alive(url))
    assert run(ensure_local_server(url, data_dir=data)) is False  # already up: nothing started
    assert len([p for p in launcher.started if p.poll() is None]) == 1
    assert stop(proc) == 0
    assert run(server_alive(url)) is False


def test_default_data_dir_comes_from_the_platform(home: Path) -> None:
    url = f"127.0.0.1:{free_port()}"
    assert launcher.default_data_dir() == cli.default_data_dir() == home / "xdg-data" / "quickstart-chat"
    assert run(ensure_local_server(url)) is True
    assert (home / "xdg-data" / "quickstart-chat" / "server.log").is_file()
    assert stop(launcher.started[-1]) == 0


def test_port_taken_by_another_program_is_a_launch_error(home: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        url = f"127.0.0.1:{squatter.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(LaunchError) as err:
            run(ensure_local_server(url, data_dir=home / "data", timeout=15))
    text = str(err.value)
    assert "\n" not in text
    assert "cannot listen" in text and str(home / "data" / "server.log") in text, text
    assert time.monotonic() - t0 < 10  # reported when the server exits, not at the timeout


def test_unusable_data_dir_is_a_launch_error(home: Path) -> None:
    not_a_dir = home / "file"
    not_a_dir.write_text("")
    with pytest.raises(LaunchError, match="cannot use .*file"):
        run(ensure_local_server(f"127.0.0.1:{free_port()}", data_dir=not_a_dir))


def test_data_dir_held_by_another_server_is_a_launch_error(home: Path) -> None:
    data = home / "data"

    async def go() -> None:
        async with in_process_server(data):
            # Looks like a start-up race (the data dir is busy), so it waits, then gives up readably.
            await ensure_local_server(f"127.0.0.1:{free_port()}", data_dir=data, timeout=2)

    with pytest.raises(LaunchError, match="in use by another process.*server.log"):
        run(go())


def test_two_launchers_at_once_start_one_server(home: Path) -> None:
    url = f"127.0.0.1:{free_port()}"
    data = home / "data"

    async def go() -> list[bool]:
        return list(await asyncio.gather(ensure_local_server(url, data_dir=data),
                                         ensure_local_server(url, data_dir=data)))

    results = run(go())  # no LaunchError: the loser's failure on the data-dir lock is expected
    assert True in results  # the caller whose server runs says so (the loser may too, if it saw it first)
    ours = launcher.started[-2:]
    deadline = time.monotonic() + 10
    while all(p.poll() is None for p in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    running = [p for p in ours if p.poll() is None]
    assert len(running) == 1
    assert "in use by another process" in (data / "server.log").read_text()
    assert run(server_alive(url))
    assert stop(running[0]) == 0


def test_losing_a_start_up_race_waits_for_the_winner(home: Path) -> None:
    port = free_port()
    data = home / "data"

    async def go() -> None:
        async with in_process_server(data):  # like the winner still opening the databases: dir locked, no port yet
            task = asyncio.create_task(ensure_local_server(f"127.0.0.1:{port}", data_dir=data, timeout=15))
            await wait_for(lambda: len(launcher.started) > before and launcher.started[-1].poll() is not None, 10)
            await asyncio.sleep(0.3)
            assert not task.done()  # our server failed on the lock, yet we keep waiting
            winner = ChatServer(ServerConfig(data_dir=home / "winner", port=port))
            await winner.start()
            try:
                assert await task is False  # the server that answers is not ours
            finally:
                await winner.stop()

    before = len(launcher.started)
    run(go())


def test_server_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert launcher._server_command() == [str(Path(sys.executable).with_name("chat-server"))]
    # Without the script next to the interpreter, the module runs the same CLI.
    real = sys.executable
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert launcher._server_command() == [str(tmp_path / "python"), "-m", "chat_server.cli"]
    out = subprocess.run([real, "-m", "chat_server.cli", "start", "--help"], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert "--listen" in out and "--data-dir" in out
