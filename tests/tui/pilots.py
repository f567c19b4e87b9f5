"""What the Pilot tests of chat-tui share: waiting for what a user would see, typing a line, and
two users on one real server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from chat_server.server import ChatServer
from chat_tui.app import ChatApp

from ..server_harness import in_process_server, seed_messages

SIZE = (110, 32)


async def until(pilot: Pilot, pred: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until ``pred()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await pilot.pause(0.02)


def log_text(app: ChatApp) -> str:
    return "\n".join(app.log_view.lines_text())


def users_text(app: ChatApp) -> list[str]:
    return [str(opt.prompt) for opt in app.users_view.options]


async def type_line(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


async def online(pilot: Pilot, app: ChatApp) -> None:
    await until(pilot, lambda: app.status_bar.state == "online" and app.state.me is not None, what="online")


async def named(pilot: Pilot, app: ChatApp, name: str) -> None:
    """Online, then ``/name name`` typed and set."""
    await online(pilot, app)
    await type_line(pilot, f"/name {name}")
    await until(pilot, lambda: app.state.my_name == name, what=f"named {name}")


@asynccontextmanager
async def two_users(srv: ChatServer, size: tuple[int, int] = SIZE,
                    names: tuple[str, str] | None = None) -> AsyncIterator[tuple[ChatApp, Pilot, ChatApp, Pilot]]:
    """Two chat-tui apps on ``srv``, both online (and named ``names``, if given): (a, its pilot, b, its pilot)."""
    url = f"127.0.0.1:{srv.port}"
    a, b = ChatApp(server=url), ChatApp(server=url)
    async with a.run_test(size=size) as pa, b.run_test(size=size) as pb:
        if names is None:
            await online(pa, a)
            await online(pb, b)
        else:
            await named(pa, a, names[0])
            await named(pb, b, names[1])
        yield a, pa, b, pb


@asynccontextmanager
async def with_history(data_dir: Path, count: int, text: str,
                       **overrides: Any) -> AsyncIterator[tuple[ChatServer, ChatApp, Pilot]]:
    """A server on ``data_dir`` (``overrides`` of its config) whose database holds ``count`` seeded
    messages (``text.format(i=i)``), and chat-tui on it, online with the newest one shown."""
    async with in_process_server(data_dir):
        pass
    seed_messages(data_dir, count, text)
    newest = text.format(i=count - 1)
    async with in_process_server(data_dir, **overrides) as srv:
        app = ChatApp(server=f"127.0.0.1:{srv.port}")
        async with app.run_test(size=SIZE) as pilot:
            await online(pilot, app)
            await until(pilot, lambda: newest in log_text(app), what="the newest seeded message")
            yield srv, app, pilot
