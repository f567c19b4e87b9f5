"""Property test: random transactions on a table with a primary key, a unique
column and an index, checked against a plain-dict model after every step and
after close/reopen."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_core import Database, Identity

MODULE = '''
import json
from typing import Annotated
from db_core import (table, reducer, ReducerContext, ReducerError, PrimaryKey, Unique, Index,
                     UniqueConstraintViolation, NoSuchRow)

@table(name="item", public=True)
class Item:
    id: Annotated[int, PrimaryKey]
    code: Annotated[str, Unique]
    grp: Annotated[int, Index]
    val: int

outcomes = []

@reducer
def batch(ctx: ReducerContext, ops: list[str], abort: bool) -> None:
    got = []
    for raw in ops:
        op, *a = json.loads(raw)
        try:
            if op == "ins":
                ctx.db.item.insert(Item(*a))
                got.append("ok")
            elif op == "upd":
                ctx.db.item.id.update(Item(*a))
                got.append("ok")
            elif op == "del":
                got.append(ctx.db.item.id.delete(a[0]))
            elif op == "delgrp":
                got.append(ctx.db.item.grp.delete(a[0]))
        except UniqueConstraintViolation as exc:
            got.append("dup:" + exc.column)
        except NoSuchRow:
            got.append("missing")
    outcomes.append(got)
    if abort:
        raise ReducerError("abort")
'''

ids = st.integers(0, 6)
codes = st.sampled_from(["a", "b", "c", "d", "e", "f"])
grps = st.integers(0, 2)
op = st.one_of(
    st.tuples(st.just("ins"), ids, codes, grps, st.integers(0, 9)),
    st.tuples(st.just("upd"), ids, codes, grps, st.integers(0, 9)),
    st.tuples(st.just("del"), ids),
    st.tuples(st.just("delgrp"), grps),
)
txs = st.lists(st.tuples(st.lists(op, max_size=5), st.booleans()), max_size=12)


def model_apply(state: dict[int, tuple], ops: list[tuple]) -> tuple[dict[int, tuple], list]:
    state = dict(state)
    got: list = []
    for o in ops:
        kind, *a = o
        if kind in ("ins", "upd"):
            row = tuple(a)
            key, code = row[0], row[1]
            existing = state.get(key)
            if kind == "ins" and existing == row:
                got.append("ok")
                continue
            if kind == "upd" and existing is None:
                got.append("missing")
                continue
            if kind == "upd" and existing == row:
                got.append("ok")
                continue
            if kind == "ins" and existing is not None:
                got.append("dup:id")
                continue
            if any(r[1] == code and r[0] != key for r in state.values()):
                got.append("dup:code")
                continue
            state[key] = row
            got.append("ok")
        elif kind == "del":
            got.append(state.pop(a[0], None) is not None)
        else:
            doomed = [k for k, r in state.items() if r[2] == a[0]]
            for k in doomed:
                del state[k]
            got.append(len(doomed))
    return state, got


def check(db: Database, state: dict[int, tuple]) -> None:
    table = db.tables["item"]
    rows = {r.id: (r.id, r.code, r.grp, r.val) for r in table}
    assert rows == state
    assert {code: r.id for code, r in table.uniques[0].map.items()} == {r[1]: r[0] for r in state.values()}
    by_grp: dict[int, set[int]] = {}
    for r in state.values():
        by_grp.setdefault(r[2], set()).add(r[0])
    assert {g: {r.id for r in bucket} for g, bucket in table.btrees[0].map.items()} == by_grp
    assert [r.id for r in table.pk_index.range(None, None)] == sorted(state)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txs)
def test_random_transactions_match_dict_model(transactions: list) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        mod = tmp / "items.py"
        mod.write_text(MODULE)
        me = Identity.random()
        state: dict[int, tuple] = {}
        db = Database.open(tmp / "data", mod)
        try:
            for ops, abort in transactions:
                r = db.call("batch", [json.dumps(o) for o in ops], abort, sender=me)
                new_state, expected = model_apply(state, ops)
                assert db.module.outcomes[-1] == expected
                if abort:
                    assert r.error == "abort" and r.tx is None
                else:
                    assert r.ok
                    state = new_state
                check(db, state)
        finally:
            db.close()
        with Database.open(tmp / "data", mod) as db2:
            check(db2, state)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
