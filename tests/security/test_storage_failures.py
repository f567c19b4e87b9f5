"""When storage breaks, every request still gets an answer and nothing acknowledged is lost.

A real ``chat-server start`` on a small tmpfs that fills up; commit timestamps that stay strictly
increasing when the clock stands still or steps back; a damaged final log record that a snapshot
already covers.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_server.client import Client
from db_core import Database, Identity, RecoveryWarning
from db_core.logs import ModuleLog

from ..conftest import record_spans, write_module
from ..server_harness import in_process_server, run

DB = "quickstart-chat"


# ---------------------------------------------------------------------------- disk full

@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own, unmounted afterwards (skipped where mounting is not allowed)."""
    mnt = tmp_path / "small-fs"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command on this machine, so no small filesystem to fill")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or f'mount exited {done.returncode}'}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write zeros into ``directory/fill`` until the filesystem has no room left; returns the file."""
    path = directory / "fill"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):
            block = bytes(chunk)
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return path


# ---------------------------------------------------------------------------- module.log on a full disk

def test_a_module_log_that_cannot_be_written_fails_nothing_and_keeps_its_lines(
        small_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    logs = ModuleLog(small_fs / "module.log")
    fill(small_fs)
    with caplog.at_level(logging.ERROR, logger="db_core"):
        for i in range(2000):  # more than one batch of file writes
            logs.system(f"line {i}")
        logs.flush()
        logs.system("after the failure")
        lines = logs.lines()
        assert logs.lines(n=2)[-1].endswith("INFO: after the failure")
        logs.close()
    reported = [r.getMessage() for r in caplog.records]
    assert len(reported) == 1 and "No space left on device" in reported[0], reported
    assert "kept in memory only" in reported[0]
    kept = [line.split("INFO: ", 1)[1] for line in lines if "INFO: " in line]
    assert kept == [f"line {i}" for i in range(2000)] + ["after the failure"]
    assert any("ERROR: cannot write" in line for line in lines)
    raw = (small_fs / "module.log").read_bytes()
    assert raw == b"" or raw.endswith(b"\n")  # whole lines only


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


# ---------------------------------------------------------------------------- the damaged final record

NOTES = textwrap.dedent("""
    from typing import Annotated
    from db_core import table, reducer, ReducerContext, PrimaryKey, AutoInc
    @table(name="note", public=True)
    class Note:
        id: Annotated[int, PrimaryKey, AutoInc]
        text: str
    @reducer
    def add(ctx: ReducerContext, text: str) -> None:
        ctx.db.note.insert(Note(id=0, text=text))
""")


def notes(db: Database) -> list[str]:
    return [n.text for n in sorted(db.tables["note"], key=lambda n: n.id)]


def open_noting_repairs(path: Path, mod: Path) -> tuple[Database, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        db = Database.open(path, mod)
    return db, [str(w.message) for w in caught if issubclass(w.category, RecoveryWarning)]


def test_a_damaged_final_record_that_a_snapshot_covers_opens_from_the_snapshot(tmp_path: Path) -> None:
    mod = write_module(tmp_path, NOTES)
    data = tmp_path / "data"
    me = Identity.random()
    with Database.open(data, mod) as db:
        for i in range(5):
            assert db.call("add", f"n{i}", sender=me).ok
        assert db.snapshot() == db.last_offset  # the snapshot holds every record, the last one too
    (segment,) = sorted((data / "log").glob("*.log"))
    start, end = record_spans(segment)[-1]
    raw = bytearray(segment.read_bytes())
    raw[(start + end) // 2] ^= 0xFF  # a bit flip in the last record's payload
    segment.write_bytes(bytes(raw))

    db, warned = open_noting_repairs(data, mod)
    try:
        assert notes(db) == [f"n{i}" for i in range(5)]
        assert len(db.repairs) == 2 and "checksum mismatch" in db.repairs[0], db.repairs
        assert "before the snapshot" in db.repairs[1] and "continued the log" in db.repairs[1], db.repairs
        assert warned == db.repairs
        assert any("continued the log" in line for line in db.logs.lines())
        for i in range(5, 8):
            assert db.call("add", f"n{i}", sender=me).ok
    finally:
        db._clog.flush()  # type: ignore[union-attr]
        db._release()  # a crash: no snapshot at close, the next start replays the new segment
    # The covered segment is kept aside, not deleted; the live ones stay contiguous.
    assert (data / "log" / (segment.name + ".covered")).is_file()

    db, warned = open_noting_repairs(data, mod)
    with db:
        assert db.repairs == [] and warned == []
        assert notes(db) == [f"n{i}" for i in range(8)]
        assert db.call("add", "n8", sender=me).ok
    with Database.open(data, mod) as db:
        assert notes(db) == [f"n{i}" for i in range(9)]
