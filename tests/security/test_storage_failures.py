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
import logging
import os
import subprocess
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_server.client import Client, ConnectFailed
from db_core import Database, Identity, RecoveryWarning, StorageError
from db_core.host import Host
from db_core.logs import ModuleLog
from db_core.protocol import (CallReducer, ErrorMessage, LogLines, Logs, OneOffQuery, OneOffResult, ReducerResult,
                              Subscribe, SubscribeApplied, SubscriptionError, Unsubscribe, decode_server, encode)

from ..conftest import record_spans, write_module
from ..server_harness import BIN, ServerProcess, in_process_server, run

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


def health(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def cli_sql(server: ServerProcess, env: dict[str, str], query: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "chat-server"), "sql", DB, query, "--server", server.url, "--json"],
                          capture_output=True, text=True, env=env, timeout=30)


def test_disk_full_every_request_is_answered_and_nothing_acknowledged_is_lost(small_fs: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONUNBUFFERED": "1"}
    data = small_fs / "data"
    server = ServerProcess(data, env).start()
    try:
        async def before_and_during() -> tuple[list[tuple[str, str, str | None]], list[str], str | None]:
            alice = await Client.connect(server.url, DB)
            watcher = await Client.connect(server.url, DB)
            await watcher.subscribe(["SELECT * FROM message"])
            for i in range(5):
                r = await alice.call("send_message", f"before {i}")
                assert r.status == "committed", r
            fill(small_fs)
            sent: list[tuple[str, ReducerResult]] = []
            for i in range(100):  # one at a time: what still fits in the segment's last page commits
                text = f"one by one {i}"
                sent.append((text, await asyncio.wait_for(alice.call("send_message", text), 10)))
                if sent[-1][1].status != "committed":
                    break
            # Pipelined: before the change, 31 of 100 like these never got a reply.
            texts = [f"pipelined {i}" for i in range(100)]
            replies = await asyncio.wait_for(asyncio.gather(*(alice.call("send_message", t) for t in texts)), 30)
            sent += zip(texts, replies, strict=True)
            query = await asyncio.wait_for(alice.sql("SELECT * FROM message"), 10)
            assert query.error is None, query.error
            late = await asyncio.wait_for(Client.connect(server.url, DB, endpoint="cli"), 10)
            await asyncio.wait_for(late.subscribe(["SELECT * FROM message"]), 10)  # reads keep working
            assert sorted(m.text for m in late.rows("message")) == sorted(m.text for m in watcher.rows("message"))
            refused = None
            try:
                await Client.connect(server.url, DB)  # a new client cannot even be recorded as connected
            except ConnectFailed as exc:
                refused = str(exc)
            for client in (alice, watcher, late):
                await client.close()
            return [(t, r.status, r.error) for t, r in sent], [row[2] for row in query.rows], refused

        replies, stored_then, refused = run(before_and_during())
        committed = {f"before {i}" for i in range(5)} | {t for t, status, _ in replies if status == "committed"}
        failed = [(text, status, error) for text, status, error in replies if status != "committed"]
        assert failed, "the disk never filled up: the test proved nothing"
        for text, status, error in failed:
            assert status in ("internal_error", "refused"), (text, status, error)
            assert error and "\n" not in error, error
            assert error.startswith(f"the database cannot write to disk: [Errno {errno.ENOSPC}] No space left"), error
        assert refused is not None and "cannot write to disk" in refused, refused
        # Reads keep working and show exactly what is on disk: nothing anyone was told failed.
        assert sorted(stored_then) == sorted(committed)

        sql = cli_sql(server, env, "SELECT text FROM message")
        assert sql.returncode == 0, sql.stderr
        assert sorted(row["text"] for row in json.loads(sql.stdout)) == sorted(committed)

        status, body = health(server.port)
        assert status == 503, (status, body)
        assert body.strip() == f"database {DB} cannot write to disk: [Errno 28] No space left on device", body

        out = server.stop()
        assert server.proc is not None and server.proc.returncode == 1, out
        assert "Traceback" not in out and "cannot listen" not in out, out
        last = out.strip().splitlines()[-1]
        assert last.startswith(f"error: database {DB} cannot write to disk: [Errno 28] No space left on device"), out
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()

    (small_fs / "fill").unlink()
    server = ServerProcess(data, env).start()
    try:
        sql = cli_sql(server, env, "SELECT text FROM message")
        assert sql.returncode == 0, sql.stderr
        assert sorted(row["text"] for row in json.loads(sql.stdout)) == sorted(committed)
        status, body = health(server.port)
        assert (status, body) == (200, "ok\n")
    finally:
        out = server.stop()
    assert server.proc.returncode == 0, out


def test_the_host_answers_everything_that_waits_when_the_log_fails(
        tmp_path: Path, quickstart_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = Identity.random()
    db = Database.open(tmp_path / "d", quickstart_path, owner=owner)
    failures: list[StorageError] = []
    db.add_failure_listener(failures.append)
    host = Host(db, DB)
    alice, _, _ = host.connect(owner, "tok")  # the owner: she may follow the module log
    bob, _, _ = host.connect(Identity.random(), "tok")
    assert alice is not None and bob is not None
    host.receive(alice, encode(CallReducer(1, "send_message", ["saved"])))
    host.receive(bob, encode(Subscribe(1, ["SELECT * FROM message"])))
    db.wait_durable(db.last_offset)
    host.on_durable(db.last_offset)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    db.hold_commits()  # what follows waits for one sync, the one that fails
    out = host.receive(alice, encode(CallReducer(2, "send_message", ["lost"])))
    out += host.receive(alice, encode(OneOffQuery(3, "SELECT * FROM message")))
    out += host.receive(alice, encode(Subscribe(4, ["SELECT * FROM user"])))
    out += host.receive(bob, encode(Unsubscribe(5, 1)))
    out += host.receive(alice, encode(Logs(6, 1, None, True)))  # a follower: log lines are not affected
    assert [decode_server(f) for _, f in out] == [LogLines(6, [db.logs.lines(1)[0]])]
    monkeypatch.setattr(os, "fdatasync", full)
    db.release_commits()
    with pytest.raises(StorageError, match="No space left on device"):
        db.wait_durable(db.last_offset, timeout=10)
    assert len(failures) == 1
    # The transaction is still in the tables until the database's own thread reverts it.
    assert sorted(m.text for m in db.tables["message"]) == ["lost", "saved"]
    monkeypatch.undo()
    # A query that arrives before the host hears of the failure reads what is on disk: the host
    # answers everything waiting first, reverts the database, then the query.
    out = host.receive(alice, encode(OneOffQuery(10, "SELECT text FROM message")))
    assert host.on_storage_failure() == []  # the adapter's own call, later: nothing left to do
    mine = {s: [decode_server(f) for t, f in out if t is s] for s in (alice, bob)}
    cause = "the database cannot write to disk: [Errno 28] No space left on device"
    assert OneOffResult(10, ["text"], ["str"], [["saved"]], None) in mine[alice]
    call, query, subscribe = mine[alice][:3]
    assert isinstance(call, ReducerResult) and (call.id, call.status) == (2, "internal_error")
    assert call.error == f"{cause}; this call was not saved and changed nothing"
    assert isinstance(query, OneOffResult) and query.id == 3 and query.error.startswith(cause) and query.rows == []
    assert isinstance(subscribe, SubscriptionError) and subscribe.id == 4 and subscribe.error.startswith(cause)
    assert any(isinstance(m, LogLines) and "undid the 1 transaction" in m.lines[0] for m in mine[alice][3:])
    (unsubscribe,) = mine[bob]
    assert isinstance(unsubscribe, ErrorMessage) and unsubscribe.id == 5 and unsubscribe.error.startswith(cause)
    assert (alice.in_flight, bob.in_flight, alice.subs, bob.subs) == (0, 0, {}, {})
    # Reads show what is on disk, at once; writes are refused with the reason.
    assert sorted(m.text for m in db.tables["message"]) == ["saved"]
    (answer,) = [decode_server(f) for _, f in host.receive(alice, encode(OneOffQuery(7, "SELECT text FROM message")))]
    assert isinstance(answer, OneOffResult) and answer.rows == [["saved"]]
    (refused,) = [decode_server(f) for _, f in host.receive(alice, encode(CallReducer(8, "send_message", ["no"])))]
    assert isinstance(refused, ReducerResult) and refused.status == "refused"
    assert refused.error == f"{cause}; restart the server once there is space"
    (applied,) = [decode_server(f) for _, f in host.receive(bob, encode(Subscribe(9, ["SELECT * FROM message"])))]
    assert isinstance(applied, SubscribeApplied) and len(applied.queries[0].inserts) == 1
    carol, reason, _ = host.connect(Identity.random(), "tok")
    assert carol is None and reason == f"{cause}; restart the server once there is space"
    assert host.disconnect(alice) == []  # the row stays: the next start disconnects it
    db.close()  # quiet: the failure was reported
    with Database.open(tmp_path / "d", quickstart_path) as again:
        assert sorted(m.text for m in again.tables["message"]) == ["saved"]


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


async def test_two_pipelined_identical_sends_to_a_real_server_are_both_stored(tmp_path: Path, clock: Clock) -> None:
    async with in_process_server(tmp_path) as server:
        url = f"127.0.0.1:{server.port}"
        alice = await Client.connect(url, DB)
        a, b = await asyncio.gather(alice.call("send_message", "twice"), alice.call("send_message", "twice"))
        assert (a.status, b.status) == ("committed", "committed"), (a, b)
        assert a.timestamp != b.timestamp
        rows = await alice.sql("SELECT * FROM message")
        assert [row[2] for row in rows.rows] == ["twice", "twice"]
        await alice.close()


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
        db.durability.log.flush()
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
