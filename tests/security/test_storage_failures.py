"""When storage breaks, every request still gets an answer and nothing acknowledged is lost.

A real ``chat-server start`` on a small tmpfs that fills up; commit timestamps that stay strictly
increasing when the clock stands still or steps back; a damaged final log record that a snapshot
already covers.
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import json
import os
import shutil
import subprocess
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_server.client import Client
from db_core import Database, Identity, RecoveryWarning

from ..conftest import record_spans, write_module
from ..server_harness import BIN, ServerProcess, in_process_server, run

DB = "quickstart-chat"


# ---------------------------------------------------------------------------- same-microsecond sends

class Clock:
    """``time.time_ns`` that stands still until told to move (set ``now``, in nanoseconds)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(time, "time_ns", frozen)
    return frozen


def sends(db: Database) -> list[tuple[str, int]]:
    return sorted((m.text, int(m.sent)) for m in db.tables["message"])


def test_same_text_in_the_same_microsecond_or_after_the_clock_steps_back_is_stored_twice(
        quickstart_path: Path, tmp_path: Path, clock: Clock) -> None:
    me = Identity.random()
    with Database.open(tmp_path / "d", quickstart_path) as db:
        first = db.call("send_message", "hello", sender=me)
        second = db.call("send_message", "hello", sender=me)
        assert (first.status, second.status) == ("committed", "committed")
        assert not second.committed_no_changes
        clock.now -= 3_600 * 10**9  # the wall clock steps back an hour
        third = db.call("send_message", "hello", sender=me)
        assert third.status == "committed" and not third.committed_no_changes
        stamps = [int(r.tx.timestamp) for r in (first, second, third) if r.tx is not None]
        assert stamps == sorted(set(stamps)) and len(stamps) == 3  # strictly increasing
        assert len(sends(db)) == 3
    clock.now -= 3_600 * 10**9  # and again while the database is closed
    with Database.open(tmp_path / "d", quickstart_path) as db:
        fourth = db.call("send_message", "hello", sender=me)
        assert fourth.status == "committed" and fourth.tx is not None
        assert int(fourth.tx.timestamp) > stamps[-1]
        assert len(sends(db)) == 4


def test_two_pipelined_identical_sends_to_a_real_server_are_both_stored(tmp_path: Path, clock: Clock) -> None:
    async def main() -> None:
        async with in_process_server(tmp_path) as server:
            url = f"127.0.0.1:{server.port}"
            alice = await Client.connect(url, DB)
            a, b = await asyncio.gather(alice.call("send_message", "twice"), alice.call("send_message", "twice"))
            assert (a.status, b.status) == ("committed", "committed"), (a, b)
            assert a.timestamp != b.timestamp
            rows = await alice.sql("SELECT * FROM message")
            assert [row[2] for row in rows.rows] == ["twice", "twice"]
            await alice.close()

    run(main())
