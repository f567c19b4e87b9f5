"""Incremental subscriptions: property tests against fresh evaluation, plus the engine's indexing."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_core import Database, Identity
from db_core.cache import ClientCache
from db_core.sql import SqlError, check_subscription
from db_core.subscription import SubscriptionEngine

MODULE = textwrap.dedent('''
    import json
    from typing import Annotated
    from db_core import table, reducer, ReducerContext, PrimaryKey, Index, Unique

    @table(name="item", public=True)
    class Item:
        id: Annotated[int, PrimaryKey]
        grp: Annotated[int, Index]
        val: int

    @table(name="grp", public=True)
    class Grp:
        gid: Annotated[int, PrimaryKey]
        active: bool

    @table(name="tag", public=True)
    class Tag:
        grp: Annotated[int, Index]
        word: str

    @reducer
    def apply(ctx: ReducerContext, ops: list[str]) -> None:
        for raw in ops:
            op, *a = json.loads(raw)
            if op == "item":
                old = ctx.db.item.id.find(a[0])
                if old is not None:
                    ctx.db.item.id.update(Item(*a))
                else:
                    ctx.db.item.insert(Item(*a))
            elif op == "del_item":
                ctx.db.item.id.delete(a[0])
            elif op == "grp":
                if ctx.db.grp.gid.find(a[0]) is not None:
                    ctx.db.grp.gid.update(Grp(a[0], a[1]))
                else:
                    ctx.db.grp.insert(Grp(a[0], a[1]))
            elif op == "del_grp":
                ctx.db.grp.gid.delete(a[0])
            elif op == "tag":
                ctx.db.tag.insert(Tag(a[0], a[1]))
            elif op == "del_tag":
                ctx.db.tag.delete(Tag(a[0], a[1]))
''')

QUERIES = [
    "SELECT * FROM item",
    "SELECT * FROM item WHERE grp = 1",
    "SELECT * FROM item WHERE val > 5 AND grp = 2",
    "SELECT * FROM item WHERE val < 3 OR val > 7",
    "SELECT item.* FROM item JOIN grp ON item.grp = grp.gid WHERE grp.active = true",
    "SELECT t.* FROM tag t JOIN item i ON t.grp = i.grp WHERE i.val >= 5",
    "SELECT * FROM grp WHERE active = false",
]

small = st.integers(0, 4)
op = st.one_of(
    st.tuples(st.just("item"), small, st.integers(0, 3), st.integers(0, 9)),
    st.tuples(st.just("del_item"), small),
    st.tuples(st.just("grp"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("del_grp"), st.integers(0, 3)),
    st.tuples(st.just("tag"), st.integers(0, 3), st.sampled_from(["a", "b"])),
    st.tuples(st.just("del_tag"), st.integers(0, 3), st.sampled_from(["a", "b"])),
)


@pytest.fixture(scope="module")
def module_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("subs") / "subs_mod.py"
    path.write_text(MODULE)
    return path


def as_tuple(db: Database, table: str, row: Any) -> tuple:
    return tuple(getattr(row, c.name) for c in db.tables[table].tdef.columns)


def fresh(db: Database, query: str) -> Counter:
    return Counter(db.sql(query).rows)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(op, min_size=1, max_size=4), max_size=10))
def test_incremental_updates_equal_fresh_evaluation(module_path: Path, txs: list) -> None:
    with Database.open(None, module_path) as db:
        me = Identity.random()
        db.call("apply", [json.dumps(o) for o in [("grp", 1, True), ("item", 0, 1, 6)]], sender=me)
        engine = SubscriptionEngine(db.tables)
        plans = {q: check_subscription(q, {n: t.tdef for n, t in db.tables.items()}, True, me) for q in QUERIES}
        for q, plan in plans.items():
            engine.add(q, plan)
        held = {q: Counter(as_tuple(db, p.table, r) for r in engine.initial_rows(p)) for q, p in plans.items()}
        cache = ClientCache({"item": lambda r: r[0], "grp": lambda r: r[0], "tag": None})
        for plan in plans.values():
            cache.apply(plan.table, [as_tuple(db, plan.table, r) for r in engine.initial_rows(plan)])
        for q in QUERIES:
            assert held[q] == fresh(db, q), q
        deltas: dict = {}
        db.add_commit_listener(lambda tx: deltas.update(engine.evaluate(tx)))
        for ops in txs:
            before = {q: fresh(db, q) for q in QUERIES}
            deltas.clear()
            assert db.call("apply", [json.dumps(o) for o in ops], sender=me).ok
            for q in QUERIES:
                after = fresh(db, q)
                delta = deltas.get(q)
                ins = Counter(as_tuple(db, plans[q].table, r) for r in delta.inserts) if delta else Counter()
                dels = Counter(as_tuple(db, plans[q].table, r) for r in delta.deletes) if delta else Counter()
                # exactly the rows whose membership changed, with multiplicity
                assert ins == after - before[q], (q, ops)
                assert dels == before[q] - after, (q, ops)
                held[q] = held[q] + ins - dels
                assert held[q] == after, q
                if delta:
                    cache.apply(delta.table, [as_tuple(db, delta.table, r) for r in delta.inserts],
                                [as_tuple(db, delta.table, r) for r in delta.deletes])
            for table in ("item", "grp", "tag"):
                expected = Counter()
                for q in QUERIES:
                    if plans[q].table == table:
                        expected += held[q]
                assert Counter({r: cache.multiplicity(table, r) for r in cache.rows(table)}) == expected


def test_distinct_equality_queries_are_indexed(module_path: Path) -> None:
    with Database.open(None, module_path) as db:
        me = Identity.random()
        engine = SubscriptionEngine(db.tables)
        tdefs = {n: t.tdef for n, t in db.tables.items()}
        for g in range(1000):
            engine.add(("g", g), check_subscription(f"SELECT * FROM item WHERE grp = {g}", tdefs, True, me))
        calls = Counter()
        for key in [("g", g) for g in range(1000)]:
            q = engine.get(key)
            original = q.residual
            q.residual = (lambda orig, k: (lambda row: (calls.update([k]), orig(row) if orig else True)[1]))(
                original, key)
        out: dict = {}
        db.add_commit_listener(lambda tx: out.update(engine.evaluate(tx)))
        db.call("apply", [json.dumps(("item", 1, 7, 3))], sender=me)
        assert list(out) == [("g", 7)]
        assert set(calls) <= {("g", 7)}  # only the matching query's residual ran


def test_same_query_registered_once(module_path: Path) -> None:
    with Database.open(None, module_path) as db:
        engine = SubscriptionEngine(db.tables)
        tdefs = {n: t.tdef for n, t in db.tables.items()}
        plan = check_subscription("SELECT * FROM item", tdefs, True, Identity.random())
        for _ in range(100):
            engine.add("all", plan)
        assert len(engine) == 1
        for _ in range(99):
            assert engine.remove("all") is False
        assert engine.remove("all") is True and len(engine) == 0


def test_subscription_errors(module_path: Path) -> None:
    with Database.open(None, module_path) as db:
        tdefs = {n: t.tdef for n, t in db.tables.items()}
        me = Identity.random()
        with pytest.raises(SqlError, match="unsupported"):
            check_subscription("SELECT COUNT(*) AS n FROM item", tdefs, True, me)
        with pytest.raises(SqlError, match="index on both join columns"):
            check_subscription("SELECT item.* FROM item JOIN tag ON item.val = tag.grp", tdefs, True, me)
