"""The module API: declarations, type checks, handles, reducers, logs (in memory)."""

from __future__ import annotations

import dataclasses
import enum
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Annotated

import pytest

from db_core import (AutoInc, ConnectionId, Database, Identity, Index, InvalidArguments, NoSuchReducer, NoSuchRow,
                     NotCallable, PrimaryKey, ReducerContext, SchemaError, Timestamp, Unique,
                     UniqueConstraintViolation, log, reducer, table)
from db_core.errors import ModuleLoadError

from .conftest import write_module


def make_module(**objects: object) -> ModuleType:
    mod = ModuleType("testmod")
    mod.__dict__.update(objects)
    return mod


class Color(enum.Enum):
    RED = 1
    GREEN = 2


@table(name="person", public=True)
class Person:
    id: Annotated[int, PrimaryKey, AutoInc]
    email: Annotated[str, Unique]
    age: Annotated[int, Index]
    nick: str | None = None


@table(name="thing")
class Thing:
    owner: Identity
    at: Timestamp
    color: Color
    tags: list[str]
    blob: bytes
    score: float
    conn: ConnectionId | None


@table(name="pair")
class Pair:
    a: int
    b: int


def run(db: Database, fn, *args):  # helper: run a function as a one-off reducer
    return db._calls.run(fn.__name__, fn, args, Identity(bytes(32)), None)


@pytest.fixture
def db() -> Database:
    @reducer
    def add_person(ctx: ReducerContext, email: str, age: int) -> None:
        ctx.db.person.insert(Person(id=0, email=email, age=age))

    mod = make_module(Person=Person, Thing=Thing, Pair=Pair, add_person=add_person)
    with Database.open(None, mod) as database:
        yield database


# -- declarations -------------------------------------------------------------
def test_table_makes_frozen_dataclass() -> None:
    p = Person(id=1, email="a@x", age=3)
    assert p.nick is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.age = 4
    assert Person.__table__.public is True
    assert Thing.__table__.public is False  # private by default


def test_two_primary_keys_refused() -> None:
    with pytest.raises(SchemaError, match=r"table `bad` declares two primary keys: `a` and `b`"):
        @table(name="bad")
        class Bad:
            a: Annotated[int, PrimaryKey]
            b: Annotated[int, PrimaryKey]


def test_autoinc_on_str_refused() -> None:
    with pytest.raises(SchemaError, match=r"AutoInc needs an int column; column `name` of table `bad` is str"):
        @table(name="bad")
        class Bad:
            name: Annotated[str, AutoInc]


def test_unsupported_type_refused() -> None:
    with pytest.raises(SchemaError, match=r"column `d` of table `bad` has unsupported type dict"):
        @table(name="bad")
        class Bad:
            d: dict


def test_reserved_prefix_and_index_names() -> None:
    with pytest.raises(SchemaError, match="reserved for system tables"):
        @table(name="st_mine")
        class Bad:
            a: int
    with pytest.raises(SchemaError, match="cannot be named `count`"):
        @table(name="bad")
        class Bad2:
            count: Annotated[int, Index]


def test_reducer_needs_annotations() -> None:
    with pytest.raises(SchemaError, match=r"parameter `x` needs a type annotation"):
        @reducer
        def bad(ctx, x):
            pass


def test_module_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModuleLoadError, match="module file not found"):
        Database.open(None, tmp_path / "missing.py")
    broken = write_module(tmp_path, "x = 1/0\n", "broken")
    with pytest.raises(ModuleLoadError, match=r"ZeroDivisionError.*broken.py:1"):
        Database.open(None, broken)
    bad = write_module(tmp_path, textwrap.dedent("""
        from typing import Annotated
        from db_core import table, PrimaryKey
        @table(name="t")
        class T:
            a: Annotated[int, PrimaryKey]
            b: Annotated[int, PrimaryKey]
    """), "bad")
    with pytest.raises(SchemaError, match="two primary keys"):
        Database.open(None, bad)


# -- type checks ---------------------------------------------------------------
def test_wrong_typed_value_names_table_and_column(db: Database) -> None:
    def bad(ctx: ReducerContext) -> None:
        ctx.db.person.insert(Person(id=0, email="x", age="old"))

    r = run(db, bad)
    assert not r.ok and r.status == "internal_error"
    assert "TypeError: table `person`, column `age`: expected int, got str" in r.error


def test_bool_is_not_an_int_and_all_types_roundtrip(db: Database) -> None:
    def bad(ctx: ReducerContext) -> None:
        ctx.db.person.insert(Person(id=0, email="x", age=True))

    assert "column `age`" in run(db, bad).error
    me = Identity.random()

    def good(ctx: ReducerContext) -> None:
        ctx.db.thing.insert(Thing(owner=me, at=ctx.timestamp, color=Color.RED, tags=["a", "b"], blob=b"\x00",
                                  score=1, conn=None))

    r = run(db, good)
    assert r.ok, r.error
    (row,) = r.tx.tables["thing"].inserts
    assert row.tags == ("a", "b")  # lists are stored as tuples (rows are hashable)


# -- handles -------------------------------------------------------------------
def test_autoinc_unique_index_handles(db: Database) -> None:
    out: dict[str, object] = {}

    def body(ctx: ReducerContext) -> None:
        a = ctx.db.person.insert(Person(id=0, email="a@x", age=30))
        b = ctx.db.person.insert(Person(id=0, email="b@x", age=30))
        c = ctx.db.person.insert(Person(id=0, email="c@x", age=40))
        out["ids"] = (a.id, b.id, c.id)
        out["find"] = ctx.db.person.email.find("b@x")
        out["filter"] = sorted(p.id for p in ctx.db.person.age.filter(30))
        out["range"] = [p.id for p in ctx.db.person.age.range(31, None)]
        out["pk_range"] = [p.id for p in ctx.db.person.id.range(2, 3, hi_inclusive=True)]
        out["count"] = ctx.db.person.count()
        ctx.db.person.id.update(Person(id=a.id, email="a@y", age=31))
        out["after_update"] = ctx.db.person.email.find("a@y")
        out["old_email"] = ctx.db.person.email.find("a@x")
        out["deleted"] = ctx.db.person.age.delete(30)
        out["left"] = [p.email for p in ctx.db.person.iter()]

    r = run(db, body)
    assert r.ok, r.error
    assert out["ids"] == (1, 2, 3)
    assert out["find"].email == "b@x"
    assert out["filter"] == [1, 2]
    assert out["range"] == [3]
    assert out["pk_range"] == [2, 3]
    assert out["count"] == 3
    assert out["after_update"].age == 31 and out["old_email"] is None
    assert out["deleted"] == 1
    assert sorted(out["left"]) == ["a@y", "c@x"]
    # net effect: two rows inserted (a's update folded in), nothing deleted from before
    upd = r.tx.tables["person"]
    assert sorted(p.email for p in upd.inserts) == ["a@y", "c@x"] and upd.deletes == []


def test_unique_violation_names_constraint_and_value(db: Database) -> None:
    def body(ctx: ReducerContext) -> None:
        ctx.db.person.insert(Person(id=0, email="a@x", age=1))
        ctx.db.person.insert(Person(id=0, email="a@x", age=2))

    r = run(db, body)
    assert r.status == "internal_error"
    assert "UniqueConstraintViolation" in r.error and "'a@x'" in r.error and "person_email_key" in r.error
    assert len(db.tables["person"]) == 0  # rolled back


def test_caught_violation_leaves_table_consistent(db: Database) -> None:
    def body(ctx: ReducerContext) -> None:
        ctx.db.person.insert(Person(id=5, email="a@x", age=1))
        with pytest.raises(UniqueConstraintViolation):
            ctx.db.person.insert(Person(id=6, email="a@x", age=2))
        with pytest.raises(UniqueConstraintViolation):
            ctx.db.person.insert(Person(id=5, email="b@x", age=2))
        with pytest.raises(NoSuchRow):
            ctx.db.person.id.update(Person(id=9, email="z", age=1))
        with pytest.raises(TypeError, match="primary key only"):
            ctx.db.person.email.update(Person(id=5, email="a@x", age=1))

    r = run(db, body)
    assert r.ok, r.error
    assert [p.id for p in db.tables["person"]] == [5]
    assert len(db.tables["person"].btrees[0].map) == 1


def test_set_semantics_without_primary_key(db: Database) -> None:
    def body(ctx: ReducerContext) -> None:
        ctx.db.pair.insert(Pair(1, 2))
        ctx.db.pair.insert(Pair(1, 2))
        ctx.db.pair.insert(Pair(2, 1))

    r = run(db, body)
    assert len(r.tx.tables["pair"].inserts) == 2
    r2 = run(db, body)
    assert r2.ok and r2.tx.is_empty and r2.committed_no_changes

    def delete(ctx: ReducerContext) -> None:
        assert ctx.db.pair.delete(Pair(1, 2)) is True
        assert ctx.db.pair.delete(Pair(1, 2)) is False

    assert run(db, delete).tx.tables["pair"].deletes == [Pair(1, 2)]


def test_insert_then_delete_in_one_tx_nets_out(db: Database) -> None:
    def body(ctx: ReducerContext) -> None:
        ctx.db.pair.insert(Pair(7, 7))
        ctx.db.pair.delete(Pair(7, 7))

    assert run(db, body).tx.is_empty


def test_db_outside_reducer_refused(db: Database) -> None:
    saved: list[ReducerContext] = []
    run(db, lambda ctx: saved.append(ctx))
    with pytest.raises(RuntimeError, match="only be used while its reducer is running"):
        saved[0].db.pair.insert(Pair(1, 1))


# -- reducers --------------------------------------------------------------------
def test_reducer_errors_and_panics_roll_back(tmp_path: Path) -> None:
    src = textwrap.dedent("""
        from db_core import table, reducer, ReducerContext, ReducerError, log
        @table(name="kv", public=True)
        class KV:
            k: str
        @reducer
        def fail(ctx: ReducerContext, k: str) -> None:
            ctx.db.kv.insert(KV(k))
            raise ReducerError("nope: " + k)
        @reducer
        def panic(ctx: ReducerContext) -> None:
            ctx.db.kv.insert(KV("p"))
            {}["missing"]
        @reducer
        def ok(ctx: ReducerContext, k: str) -> None:
            log.debug("adding " + k)
            ctx.db.kv.insert(KV(k))
    """)
    with Database.open(None, write_module(tmp_path, src)) as db:
        me = Identity.random()
        r = db.call("fail", "x", sender=me)
        assert (r.ok, r.error, r.status, r.tx) == (False, "nope: x", "failed", None)
        r = db.call("panic", sender=me)
        assert not r.ok and r.status == "internal_error" and r.error == "internal error: KeyError: 'missing'"
        assert len(db.tables["kv"]) == 0
        assert db.call("ok", "y", sender=me).ok  # the database keeps working
        lines = db.logs.lines()
        panic_line = next(line for line in lines if "panicked" in line)
        assert "ERROR: mod.py:13: reducer `panic` panicked: KeyError: 'missing'" in panic_line
        assert any("Traceback" in line for line in lines)
        assert any(line.endswith("DEBUG: mod.py:16: adding y") for line in lines)
        assert db.logs.lines(level="error")[0] == panic_line


def test_argument_checks(db: Database) -> None:
    me = Identity.random()
    with pytest.raises(InvalidArguments, match=r"`add_person` takes 2 arguments \(email: str, age: int\), got 1"):
        db.call("add_person", "x", sender=me)
    with pytest.raises(InvalidArguments, match=r"argument `age` must be int, got str 'ten'"):
        db.call("add_person", "x", "ten", sender=me)
    with pytest.raises(NoSuchReducer, match=r"A reducer with a similar name exists: `add_person`"):
        db.call("add_persn", sender=me)
    assert db.call("add_person", "x", 10, sender=me).ok


def test_lifecycle_not_callable(quickstart_path: Path) -> None:
    with Database.open(None, quickstart_path) as db:
        with pytest.raises(NotCallable, match="lifecycle reducer"):
            db.call("identity_connected", sender=Identity.random())


def test_context_fields_and_rng(tmp_path: Path) -> None:
    src = textwrap.dedent("""
        from db_core import table, reducer, ReducerContext
        seen = []
        @reducer
        def look(ctx: ReducerContext) -> None:
            seen.append((ctx.sender, ctx.connection_id, ctx.timestamp, ctx.identity,
                         ctx.rng.random(), ctx.rng.random()))
    """)
    with Database.open(None, write_module(tmp_path, src)) as db:
        me = Identity.random()
        conn = db.connect(me)
        db.call("look", sender=me, connection_id=conn)
        db.call("look", sender=me)
        (s1, c1, t1, i1, r1, r2), (s2, c2, t2, _, _, _) = db.module.seen
        assert s1 == me and c1 == conn and c2 is None and i1 == db.identity
        assert isinstance(t1, Timestamp) and t2 >= t1
        assert r1 != r2


def test_log_outside_reducer_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log.info("hello there")
    assert "INFO: test_module_api.py:" in capsys.readouterr().err
