"""Durable storage through the embedded API: reopen, snapshots, migration, the lock."""

from __future__ import annotations

import enum
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_core import ConnectionId, Database, DatabaseLocked, Identity, MigrationError, StorageError

from .conftest import ROOT, write_module

BASE = textwrap.dedent("""
    from typing import Annotated
    from db_core import table, reducer, ReducerContext, PrimaryKey, AutoInc, Index
    @table(name="note", public=True)
    class Note:
        id: Annotated[int, PrimaryKey, AutoInc]
        text: str
    @reducer
    def add(ctx: ReducerContext, text: str) -> None:
        ctx.db.note.insert(Note(id=0, text=text))
""")


def notes(db: Database) -> list[tuple]:
    return sorted((n.id, n.text) for n in db.tables["note"])


def test_reopen_keeps_data_and_sequences(tmp_path: Path) -> None:
    mod = write_module(tmp_path, BASE)
    me = Identity.random()
    with Database.open(tmp_path / "d", mod) as db:
        ident = db.identity
        for t in "abc":
            db.call("add", t, sender=me)
        db.call("add", "x", sender=me)
    with Database.open(tmp_path / "d", mod) as db:
        assert db.identity == ident
        assert notes(db) == [(1, "a"), (2, "b"), (3, "c"), (4, "x")]
        db.call("add", "d", sender=me)
        assert notes(db)[-1] == (5, "d")


def test_snapshot_then_log_then_reopen(tmp_path: Path) -> None:
    mod = write_module(tmp_path, BASE)
    me = Identity.random()
    db = Database.open(tmp_path / "d", mod, snapshot_every=10, segment_bytes=512)
    for i in range(55):
        db.call("add", f"n{i}", sender=me)
    if db.durability.snapshot_thread:
        db.durability.snapshot_thread.join()
    snaps = sorted((tmp_path / "d" / "snapshots").glob("*.snap"))
    assert snaps, "a snapshot was written in the background"
    segs = sorted((tmp_path / "d" / "log").glob("*.log"))
    first_kept = int(segs[0].stem)
    assert first_kept > 0, "segments covered by the snapshot were removed"
    db.durability.log.flush()
    db._release()  # crash: no final snapshot
    with Database.open(tmp_path / "d", mod) as db2:
        assert notes(db2) == [(i + 1, f"n{i}") for i in range(55)]


def test_migration_new_table_index_and_column_with_default(tmp_path: Path) -> None:
    mod = write_module(tmp_path, BASE)
    me = Identity.random()
    with Database.open(tmp_path / "d", mod) as db:
        db.call("add", "a", sender=me)
    changed = BASE.replace("    text: str\n", "    text: Annotated[str, Index]\n    pinned: bool = False\n")
    changed += textwrap.dedent("""
        @table(name="tag")
        class Tag:
            name: str
    """)
    mod.write_text(changed)
    with Database.open(tmp_path / "d", mod) as db:
        assert db.migrations == ["new table `tag`", "new column `pinned` in table `note`", "new index on `note.text`"]
        (row,) = db.tables["note"]
        assert (row.id, row.text, row.pinned) == (1, "a", False)
        assert db.tables["note"].index_for("text").find("a") == [row]
    with Database.open(tmp_path / "d", mod) as db:
        assert db.migrations == []
        assert len(db.tables["note"]) == 1


def test_incompatible_change_refused_unless_cleared(tmp_path: Path) -> None:
    mod = write_module(tmp_path, BASE)
    with Database.open(tmp_path / "d", mod) as db:
        db.call("add", "a", sender=Identity.random())
    mod.write_text(BASE.replace("text: str", "text: int")
                   .replace("add(ctx: ReducerContext, text: str)", "add(ctx: ReducerContext, text: int)"))
    with pytest.raises(MigrationError, match=r"column `text` of table `note` changed type from str to int"):
        Database.open(tmp_path / "d", mod)
    mod.write_text(BASE.replace("    text: str\n", "    text: str\n    extra: int\n"))
    with pytest.raises(MigrationError, match=r"new column `extra` of table `note` needs a default value"):
        Database.open(tmp_path / "d", mod)
    mod.write_text(BASE.replace('name="note"', 'name="memo"').replace("ctx.db.note", "ctx.db.memo"))
    with pytest.raises(MigrationError, match=r"table `note` was removed"):
        Database.open(tmp_path / "d", mod)
    with Database.open(tmp_path / "d", mod, clear=True) as db:
        assert len(db.tables["memo"]) == 0
        assert any("Database cleared" in line for line in db.logs.lines())


def test_second_process_gets_lock_error(tmp_path: Path, quickstart_path: Path) -> None:
    data = tmp_path / "d"
    with Database.open(data, quickstart_path) as db:
        code = (
            "import sys\n"
            "from db_core import Database, DatabaseLocked\n"
            f"try:\n    Database.open({str(data)!r}, {str(quickstart_path)!r})\n"
            "except DatabaseLocked as e:\n    print(e); sys.exit(3)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 3, proc.stderr
        assert f"data directory {data} is in use by another process (pid {os.getpid()})" in proc.stdout
        me = Identity.random()
        assert db.connect(me)  # the first is unharmed
    # in-process too, and the lock is released on close
    with Database.open(data, quickstart_path):
        with pytest.raises(DatabaseLocked):
            Database.open(data, quickstart_path)


ALL_TYPES = textwrap.dedent("""
    import enum
    from typing import Annotated
    from db_core import table, reducer, ReducerContext, Identity, ConnectionId, Timestamp, PrimaryKey
    class Color(enum.Enum):
        RED = 1
        GREEN = 2
    @table(name="thing")
    class Thing:
        id: Annotated[int, PrimaryKey]
        owner: Identity
        conn: ConnectionId | None
        at: Timestamp
        color: Color
        maybe: Color | None
        tags: list[str]
        nested: list[int] | None
        blob: bytes
        score: float
        flag: bool
        big: int
        text: str | None
    @reducer
    def put(ctx: ReducerContext, id: int, owner: Identity, conn: ConnectionId | None, color: Color, tags: list[str],
            blob: bytes, score: float, flag: bool, big: int) -> None:
        ctx.db.thing.insert(Thing(id, owner, conn, ctx.timestamp, color, None if id % 3 else color, tags,
                                  None if id % 2 else [id, -id], blob, score, flag, big, None if id % 5 else str(id)))
""")


@pytest.mark.parametrize("count", [3, 200])
def test_every_column_type_survives_log_and_snapshot(tmp_path: Path, count: int) -> None:
    mod = write_module(tmp_path, ALL_TYPES)
    owners = [Identity.random() for _ in range(3)]
    with Database.open(tmp_path / "d", mod) as db:
        Color = db.module.Color
        for i in range(count):
            args = (i, owners[i % 3], ConnectionId.random() if i % 2 else None, Color.RED if i % 2 else Color.GREEN,
                    [f"t{i}", "x"], bytes([i % 256]) * (i % 4), i / 3, i % 2 == 0, (1 << 63) - i if i % 7 == 0 else -i)
            assert db.call("put", *args, sender=owners[0]).ok
        before = sorted(db.tables["thing"], key=lambda r: r.id)
        db.durability.log.flush()
    # closed cleanly: a snapshot holds it all; then reopen again from log + snapshot after a crash
    with Database.open(tmp_path / "d", mod) as db:
        after = sorted(db.tables["thing"], key=lambda r: r.id)
        assert [vars_of(r) for r in after] == [vars_of(r) for r in before]
        assert all(type(r.at).__name__ == "Timestamp" and type(r.owner) is Identity for r in after)
        assert all(isinstance(r.tags, tuple) for r in after)


def vars_of(row: object) -> tuple:
    # Each open loads the module afresh, so compare enum members by name.
    def plain(v: object) -> object:
        return v.name if isinstance(v, enum.Enum) else v

    return tuple((name, plain(getattr(row, name))) for name in row.__dataclass_fields__)


# -- snapshots written by a forked child: the serving thread keeps the GIL ------------------------------
needs_fork = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="snapshots fork on Linux")


@needs_fork
def test_a_failed_snapshot_writer_loses_nothing_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    import db_core.durability as database

    def broken(*args: object) -> bytes:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(database, "encode_snapshot", broken)  # the child inherits the patch
    mod = write_module(tmp_path, BASE)
    me = Identity.random()
    db = Database.open(tmp_path / "d", mod, snapshot_every=10)
    for i in range(12):
        db.call("add", f"n{i}", sender=me)
    assert db.durability.snapshot_thread is not None
    db.durability.snapshot_thread.join()
    assert "snapshot writer (pid" in caplog.text and "exited with 1" in caplog.text
    assert not list((tmp_path / "d" / "snapshots").iterdir())  # neither a snapshot nor a pending one
    db.durability.log.flush()
    db._release()  # crash
    monkeypatch.undo()
    with Database.open(tmp_path / "d", mod) as db2:
        assert notes(db2) == [(i + 1, f"n{i}") for i in range(12)]


KILL_DURING_SNAPSHOT = textwrap.dedent("""
    import sys, time
    import db_core.durability as database
    from db_core import Database, Identity
    encode = database.encode_snapshot
    database.encode_snapshot = lambda *a: (time.sleep(3), encode(*a))[1]  # a slow child: still running below
    db = Database.open(sys.argv[1], sys.argv[2], snapshot_every=60_000)
    me = Identity.random()
    db.hold_commits()
    for i in range(59_999):
        db.submit("add", f"n{i}", sender=me)
    db.release_commits()
    db.call("add", "last", sender=me)  # the 60,000th commit: a snapshot starts in a child
    print("durable", flush=True)
    time.sleep(60)
""")


@needs_fork
def test_kill_9_while_the_child_writes_a_snapshot_then_restart_at_once(tmp_path: Path) -> None:
    mod = write_module(tmp_path, BASE)
    script = tmp_path / "kill_me.py"
    script.write_text(KILL_DURING_SNAPSHOT)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "d"), str(mod)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "durable\n"
    proc.kill()
    proc.wait()
    # The child may still be encoding: it holds no descriptor of the parent's (not the directory
    # lock), and its snapshot is never published by anyone, so the data comes from the log.
    with Database.open(tmp_path / "d", mod) as db:
        assert len(db.tables["note"]) == 60_000
        assert max(n.id for n in db.tables["note"]) == 60_000


# -- a failed commit log: the database reverts to what is on disk ---------------------------------------
KV = textwrap.dedent("""
    from typing import Annotated
    from db_core import table, reducer, ReducerContext, PrimaryKey, Unique
    @table(name="kv", public=True)
    class Kv:
        key: Annotated[int, PrimaryKey]
        value: Annotated[str, Unique]
    @reducer
    def put(ctx: ReducerContext, key: int, value: str) -> None:
        for row in ctx.db.kv.iter():
            if row.value == value:
                ctx.db.kv.delete(row)  # values are unique: the newest put of a value wins
        if ctx.db.kv.key.find(key) is None:
            ctx.db.kv.insert(Kv(key, value))
        else:
            ctx.db.kv.key.update(Kv(key, value))
    @reducer
    def drop(ctx: ReducerContext, key: int) -> None:
        ctx.db.kv.key.delete(key)
""")

Op = tuple[str, int, str]
ops = st.lists(st.tuples(st.sampled_from(["put", "put", "drop"]), st.integers(0, 5), st.sampled_from("abcd")),
               max_size=12)


def apply_model(model: dict[int, str], op: Op) -> None:
    kind, key, value = op
    if kind == "drop":
        model.pop(key, None)
        return
    for k in [k for k, v in model.items() if v == value]:
        del model[k]
    model[key] = value


def run_op(db: Database, op: Op, me: Identity):
    kind, key, value = op
    return db.submit("put", key, value, sender=me) if kind == "put" else db.submit("drop", key, sender=me)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(durable=ops, lost=ops)
def test_after_a_log_failure_the_tables_hold_exactly_what_is_on_disk(
        tmp_path_factory: pytest.TempPathFactory, durable: list[Op], lost: list[Op]) -> None:
    base = tmp_path_factory.mktemp("kv")
    mod = write_module(base, KV)
    me = Identity.random()
    model: dict[int, str] = {}
    db = Database.open(base / "d", mod)
    told: list[StorageError] = []
    db.add_failure_listener(told.append)
    try:
        for op in durable:
            db.wait_durable(run_op(db, op, me).offset)
            apply_model(model, op)
        real = os.fdatasync
        os.fdatasync = _enospc  # the edge of the machine: the disk is full from here on
        try:
            db.hold_commits()
            results = [run_op(db, op, me) for op in lost]
            db.release_commits()
            committed = [r for r in results if r.tx is not None and not r.tx.is_empty]
            if committed:
                with pytest.raises(StorageError, match="No space left on device"):
                    db.wait_durable(db.last_offset, timeout=10)
        finally:
            os.fdatasync = real
        undone = db.revert_undurable()
        assert [tx.offset for tx in undone] == sorted((r.offset for r in committed), reverse=True)
        assert {r.key: r.value for r in db.tables["kv"]} == model
        assert {r.key: r.value for r in db.tables["kv"].uniques[0].map.values()} == model  # indexes agree
        if committed:
            assert len(told) == 1 and db.write_failure == "cannot write to disk: [Errno 28] No space left on device"
            with pytest.raises(StorageError, match="restart the server once there is space"):
                db.submit("put", 9, "z", sender=me)
            assert len(db.sql("SELECT * FROM kv").rows) == len(model)
    finally:
        db.close()
    with Database.open(base / "d", mod) as again:
        assert {r.key: r.value for r in again.tables["kv"]} == model


def _enospc(fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")
