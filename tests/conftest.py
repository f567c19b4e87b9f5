"""Shared fixtures: example modules written against the public API, and async tests.

An ``async def test_...`` runs to its end in an event loop of its own, under the time limit of
``server_harness.run``; its async fixtures (``srv``) start and stop in that same loop. No plugin:
the two hooks below are all it takes. A coroutine that nothing runs fails its test, whether a test
hands it back without being ``async def`` or code drops it (a forgotten ``await``): unrun, it
would pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import struct
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chat_server.modules import QUICKSTART_CHAT  # noqa: E402
from chat_server.server import ChatServer  # noqa: E402

from .server_harness import in_process_server, run_in  # noqa: E402


@pytest.fixture
def quickstart_path() -> Path:
    return QUICKSTART_CHAT


def write_module(tmp_path: Path, source: str, name: str = "mod") -> Path:
    """Write a module file and return its path."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return path


SEG_HEADER = struct.Struct("<8sQ")  # segment magic + base offset (the on-disk format, read independently)
FRAME = struct.Struct("<IIQ")       # payload length, crc32, offset


def record_spans(segment: Path) -> list[tuple[int, int]]:
    """(start, end) byte spans of the records in a commit-log segment file."""
    data = segment.read_bytes()
    pos, spans = SEG_HEADER.size, []
    while pos + FRAME.size <= len(data):
        length, crc, offset = FRAME.unpack_from(data, pos)
        if length == crc == offset == 0:
            break  # zero padding after the last record
        spans.append((pos, pos + FRAME.size + length))
        pos += FRAME.size + length
    return spans


# -- async tests ---------------------------------------------------------------------------------
@pytest.fixture
def event_loop_runner() -> Iterator[asyncio.Runner]:
    """The loop an async test shares with its async fixtures, open from the first fixture's setup
    to the last one's teardown. An async fixture requests it and runs its steps with ``run_in``."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture
def srv(event_loop_runner: asyncio.Runner, tmp_path: Path) -> Iterator[ChatServer]:
    """A started in-process ChatServer with the default options on ``tmp_path`` (an ephemeral
    port), stopped after the test. Options, or a stop within the test: ``in_process_server``."""
    stack = contextlib.AsyncExitStack()
    server = run_in(event_loop_runner, stack.enter_async_context(in_process_server(tmp_path)))
    try:
        yield server
    finally:
        run_in(event_loop_runner, stack.aclose())


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Run an async test's coroutine in its loop (the fixtures' one if it has async fixtures), and
    fail any test that hands back an awaitable it was not declared to be: unrun, it would pass."""
    test = pyfuncitem.obj
    is_async = inspect.iscoroutinefunction(test)
    runner = pyfuncitem.funcargs.get("event_loop_runner")

    def call(**kwargs: Any) -> object:
        outcome = test(**kwargs)
        if is_async:
            if runner is None:
                with asyncio.Runner() as own:
                    return run_in(own, outcome)
            return run_in(runner, outcome)
        if inspect.isawaitable(outcome) or hasattr(outcome, "__aiter__"):
            if inspect.iscoroutine(outcome):
                outcome.close()  # no "never awaited" warning on top of the failure
            pytest.fail(f"{pyfuncitem.name} returned {type(outcome).__name__} {outcome!r} and nothing runs it: "
                        "declare the test `async def`", pytrace=False)
        return outcome

    pyfuncitem.obj = call
    try:
        return (yield)
    finally:
        pyfuncitem.obj = test


def pytest_configure(config: pytest.Config) -> None:
    # A coroutine created and dropped (an `await` or a `run(` forgotten) ran nothing: that fails the
    # test. Its warning comes from the coroutine's finalizer, so as an error it is an unraisable one.
    config.addinivalue_line("filterwarnings", "error:coroutine .* was never awaited:RuntimeWarning")
    config.addinivalue_line("filterwarnings",
                            "error:Exception ignored in. <coroutine object:pytest.PytestUnraisableExceptionWarning")
