"""Durable storage through the embedded API: reopen, snapshots, migration, the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from db_core import Database, DatabaseLocked, Identity, MigrationError

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
    if db._snapshot_thread:
        db._snapshot_thread.join()
    snaps = sorted((tmp_path / "d" / "snapshots").glob("*.snap"))
    assert snaps, "a snapshot was written in the background"
    segs = sorted((tmp_path / "d" / "log").glob("*.log"))
    first_kept = int(segs[0].stem)
    assert first_kept > 0, "segments covered by the snapshot were removed"
    db._clog.flush()
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
    mod.write_text(BASE.replace("text: str", "text: int").replace("add(ctx: ReducerContext, text: str)", "add(ctx: ReducerContext, text: int)"))
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
