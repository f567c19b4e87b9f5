"""Helpers for tests that run a real server on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from chat_server.server import ChatServer, ServerConfig

BIN = Path(sys.executable).parent


TIMEOUT = 60.0  # seconds: for run(), for an async test, and for each start or stop of an async fixture


def run(coro: Awaitable[Any]) -> Any:
    """``coro`` in an event loop of its own: for a plain test's async steps between blocking ones
    (a child server process started, killed, restarted). An ``async def`` test needs none."""
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def run_in(runner: asyncio.Runner, coro: Awaitable[Any]) -> Any:
    """``coro`` in ``runner``'s loop, the one an async test shares with its async fixtures."""
    return runner.run(asyncio.wait_for(coro, TIMEOUT))


@contextlib.asynccontextmanager
async def in_process_server(data_dir: Path, **overrides: Any) -> AsyncIterator[ChatServer]:
    """A started ChatServer on ``data_dir`` and an ephemeral port, with ``overrides`` of its
    ServerConfig; stopped on leaving. With the defaults on ``tmp_path``: the ``srv`` fixture."""
    server = ChatServer(ServerConfig(data_dir=data_dir, port=0, **overrides))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class ServerProcess:
    """``chat-server start`` as a child process on an ephemeral port."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env
        self.args = args or []  # more options for ``start``
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> "ServerProcess":
        exe = BIN / "chat-server"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "chat_server.cli"]
        self.proc = subprocess.Popen(
            cmd + ["start", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir), *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**(self.env or os.environ), "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"listening on wss?://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                return self
        raise AssertionError("server did not start:\n" + "".join(seen))

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        return out


def seed_messages(data_dir: Path, n: int, text: str = "hello number {i}") -> None:
    """Give the bundled database of ``data_dir`` ``n`` messages, from two senders, in one transaction.

    Opens the data directory directly (no server may be running on it); the server publishes the
    bundled module on its first start, so start and stop one first if the directory is new.
    """
    from db_core import Database, Identity, Timestamp

    path = data_dir / "databases" / "quickstart-chat"
    module = next(path.glob("*.py"))
    senders = [Identity(bytes([1]) * 32), Identity(bytes([2]) * 32)]
    with Database.open(path / "data", module) as db:
        table = db.tables["message"]
        row = table.tdef.row_type
        start = int(time.time() * 1_000_000) - n

        def body(tx: Any) -> None:
            for i in range(n):
                tx.insert(table, row(sender=senders[i % 2], sent=Timestamp(start + i), text=text.format(i=i)))

        db.wait_durable(db.transact(body, sender=senders[0]).offset)
