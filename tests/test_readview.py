"""ReadView against a model: after any later transactions, it reads exactly the state of its offset."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from db_core import Database, Identity
from db_core import readview
from db_core.readview import LazyScan, ReadView
from db_core.sql import execute
from db_core.sql.check import check
from db_core.sql.execute import CHUNK, Meter, select_chunks
from db_core.sql.physical import physical_plan
from db_core.sql.parser import parse

from .conftest import write_module

table_module = importlib.import_module("db_core.table")  # the name ``db_core.table`` is the decorator

MODULE = '''
from typing import Annotated
from db_core import table, reducer, ReducerContext, PrimaryKey, Index

@table(name="item", public=True)
class Item:
    id: Annotated[int, PrimaryKey]
    grp: Annotated[int, Index]
    v: int

@table(name="tag", public=True)
class Tag:
    name: str
    n: Annotated[int, Index]

@reducer
def put(ctx: ReducerContext, id: int, grp: int, v: int) -> None:
    old = ctx.db.item.id.find(id)
    if old is None:
        ctx.db.item.insert(Item(id, grp, v))
    else:
        ctx.db.item.id.update(Item(id, grp, v))

@reducer
def drop(ctx: ReducerContext, id: int) -> None:
    ctx.db.item.id.delete(id)

@reducer
def tag(ctx: ReducerContext, name: str, n: int, add: bool) -> None:
    if add:
        ctx.db.tag.insert(Tag(name, n))
    else:
        ctx.db.tag.delete(Tag(name, n))
'''

ME = Identity(bytes(32))
ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, 30), st.integers(0, 4), st.integers(-5, 5)),
    st.tuples(st.just("drop"), st.integers(0, 30)),
    st.tuples(st.just("tag"), st.sampled_from("abc"), st.integers(0, 4), st.booleans()),
), max_size=40)


def run(db: Database, batch: list[tuple]) -> None:
    for name, *args in batch:
        db.call(name, *args, sender=ME)


def state(db: Database) -> dict[str, set]:
    return {name: set(db.tables[name].rows.values()) for name in ("item", "tag")}


@settings(max_examples=150, deadline=None)
@given(before=ops, after=ops)
def test_a_read_view_reads_the_state_of_its_offset(tmp_path_factory, before: list[tuple], after: list[tuple]) -> None:  # noqa: ANN001
    path: Path = tmp_path_factory.mktemp("m")
    db = Database.open(None, write_module(path, MODULE))
    run(db, before)
    then = copy.deepcopy(state(db))
    view = ReadView(db.last_offset)
    db.add_commit_listener(view.apply)
    run(db, after)
    item, tag = db.tables["item"], db.tables["tag"]
    assert set(view.rows(item)) == then["item"] and len(list(view.rows(item))) == len(then["item"])
    assert set(view.rows(tag)) == then["tag"]
    assert view.count(item) == len(then["item"]) and view.count(tag) == len(then["tag"])
    grp = item.index_for("grp")
    n = tag.index_for("n")
    pk = item.index_for("id")
    assert grp is not None and n is not None and pk is not None
    for g in range(5):
        assert sorted(view.find(item, grp, g), key=repr) == sorted((r for r in then["item"] if r.grp == g), key=repr)
        assert sorted(view.find(tag, n, g), key=repr) == sorted((r for r in then["tag"] if r.n == g), key=repr)
        assert sorted(view.range(item, grp, 1, g, (True, False)), key=repr) == sorted(
            (r for r in then["item"] if 1 <= r.grp < g), key=repr)
    for i in range(31):
        expected = [r for r in then["item"] if r.id == i]
        assert list(view.finder(item, pk)(i)) == expected
        assert list(view.find(item, pk, i)) == expected


@settings(max_examples=100, deadline=None)
@example(before=[("put", 1, 1, 1), ("put", 2, 2, 1), ("tag", "a", 1, True), ("tag", "b", 2, True)],
         middle=[], after=[("tag", "c", 2, True)],
         query="SELECT item.id, tag.name FROM item JOIN tag ON item.grp = tag.n")
@example(before=[("put", i, 0, 0) for i in range(6)], middle=[("put", 9, 0, 0)],
         after=[("drop", i) for i in range(6)] + [("put", i, 1, 1) for i in range(10, 16)], query="SELECT * FROM item")
@given(before=ops, middle=ops, after=ops, query=st.sampled_from([
    "SELECT * FROM item",
    "SELECT * FROM item WHERE grp = 2",
    "SELECT * FROM item WHERE grp >= 2 AND v < 3",
    "SELECT COUNT(*) AS n FROM item WHERE v > 0",
    "SELECT item.id, tag.name FROM item JOIN tag ON item.grp = tag.n",
    "SELECT tag.* FROM tag JOIN item ON tag.n = item.id WHERE item.v != 0",
]))
def test_a_query_run_in_slices_answers_for_its_offset(tmp_path_factory, before: list[tuple],  # noqa: ANN001
                                                       middle: list[tuple], after: list[tuple], query: str) -> None:
    """Transactions commit after the view's offset (``middle``), then between every two chunks of
    the query (``after``); its rows are those of the offset."""
    path: Path = tmp_path_factory.mktemp("m")
    db = Database.open(None, write_module(path, MODULE))
    run(db, before)
    expected = sorted(db.sql(query).rows, key=repr)
    plan = check(parse(query), {k: t.tdef for k, t in db.tables.items()}, True, ME)
    view = ReadView(db.last_offset)
    db.add_commit_listener(view.apply)
    run(db, middle)
    rows: list = []
    pending = list(after)
    saved, execute.CHUNK = execute.CHUNK, 1  # pause after every row: commits land in the middle of everything
    try:
        for chunk in select_chunks(plan, physical_plan(plan, db.tables), db.tables, view, Meter()):
            rows += chunk
            if pending:
                run(db, [pending.pop(0)])
    finally:
        execute.CHUNK = saved
    assert sorted(rows, key=repr) == expected


def test_a_big_scan_pauses_every_chunk(tmp_path: Path) -> None:
    db = Database.open(None, write_module(tmp_path, MODULE))
    for i in range(CHUNK * 10):
        db.call("put", i, i % 3, 0, sender=ME)
    plan = check(parse("SELECT * FROM item WHERE v = 1"), {k: t.tdef for k, t in db.tables.items()}, True, ME)
    meter = Meter()
    chunks = list(select_chunks(plan, physical_plan(plan, db.tables), db.tables, ReadView(db.last_offset), meter))
    assert len(chunks) >= 10 and meter.scanned == CHUNK * 10  # no match, but it stopped between chunks


@settings(max_examples=150, deadline=None)
@example(before=[("put", i, 0, 0) for i in range(10)],
         steps=[("scan",), ("take", 0, 3), ("scan",), ("take", 1, 1), ("write", [("put", 20, 1, 1), ("drop", 5)]),
                ("take", 1, 2), ("take", 0, 2), ("scan",), ("write", [("drop", 0)]), ("take", 2, 1),
                ("write", [("drop", 1)]), ("take", 2, 1), ("write", [("drop", 2)]), ("take", 2, 1),
                ("write", [("drop", 3)]), ("take", 2, 1)], min_patch=1)
@given(min_patch=st.sampled_from([1, 1024]), before=ops, steps=st.lists(st.one_of(
    st.tuples(st.just("scan")),
    st.tuples(st.just("take"), st.integers(0, 5), st.integers(1, 7)),
    st.tuples(st.just("write"), ops),
), max_size=30))
def test_scans_in_slices_between_writes_read_the_rows_of_their_offset(
        tmp_path_factory, min_patch: int, before: list[tuple], steps: list[tuple]) -> None:  # noqa: ANN001
    """Several scans of one table in slices, writes between any two slices, the snapshot copied
    two rows a piece (so that writes cut its copying short, until it is done at once) and kept
    with the changes since (``min_patch`` of them at least before it is dropped): each scan
    gives exactly the rows of its view's offset."""
    path: Path = tmp_path_factory.mktemp("m")
    db = Database.open(None, write_module(path, MODULE))
    run(db, before)
    item = db.tables["item"]
    scans: list[tuple[LazyScan, list, list]] = []  # the scan, the rows at its offset, what it gave
    saved, readview.PIECE = readview.PIECE, 2
    saved_patch, table_module.MIN_PATCH = table_module.MIN_PATCH, min_patch
    try:
        for step in steps:
            if step[0] == "scan":
                view = ReadView(db.last_offset)
                db.add_commit_listener(view.apply)
                scan = view.rows(item)
                assert isinstance(scan, LazyScan)
                scans.append((scan, list(item.rows.values()), []))
            elif step[0] == "take" and scans:
                scan, _, given_rows = scans[step[1] % len(scans)]
                given_rows += scan.take(step[2]) or []
            elif step[0] == "write":
                run(db, step[1])
        for scan, start, given_rows in scans:
            given_rows += list(scan)
            assert sorted(given_rows, key=repr) == sorted(start, key=repr)
    finally:
        readview.PIECE, table_module.MIN_PATCH = saved, saved_patch
