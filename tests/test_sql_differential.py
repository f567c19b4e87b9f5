"""Differential tests: random tables and random queries from the supported grammar,
run by our engine and by sqlite3 over the same data; results must be equal as
multisets (LIMIT without ORDER BY: the right count, and a sub-multiset).

The tables mirror each other: same columns, same primary keys, unique
constraints and indexes (so both engines take their index paths). bools are
0/1 in sqlite and an Optional column holds NULL where ours holds None: without
NOT in the grammar, SQL's unknown behaves exactly like our "None matches no
comparison". Floats come from a small exact set, so equality is meaningful.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Annotated, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_core import Index, PrimaryKey, Unique, table
from db_core.datastore import Datastore
from db_core.sql import run_sql
from db_core.table import Table
from db_core.tx import Transaction
from db_core.types import Identity

OWNER = Identity(bytes(32))


@table(name="t0", public=True)
class T0:
    id: Annotated[int, PrimaryKey]
    u: Annotated[int, Unique]
    k: Annotated[int, Index]
    o: int | None
    s: str
    b: bool
    f: float


@table(name="t1", public=True)
class T1:
    id: Annotated[int, PrimaryKey]
    s: Annotated[str, Unique]
    f: Annotated[float, Index]
    k: int
    b: bool


@table(name="t2", public=True)
class T2:  # no primary key: set semantics (rows are generated distinct)
    a: Annotated[int | None, Index]
    s: str
    b: bool
    f: float


ROW_TYPES = {"t0": T0, "t1": T1, "t2": T2}
# Column -> comparison class ("num" columns compare with each other).
CLASSES = {
    "t0": {"id": "int", "u": "int", "k": "int", "o": "int", "s": "str", "b": "bool", "f": "float"},
    "t1": {"id": "int", "s": "str", "f": "float", "k": "int", "b": "bool"},
    "t2": {"a": "int", "s": "str", "b": "bool", "f": "float"},
}
COLUMNS = {name: list(cols) for name, cols in CLASSES.items()}
DDL = [
    "CREATE TABLE t0 (id INTEGER PRIMARY KEY, u INTEGER UNIQUE, k INTEGER, o INTEGER, s TEXT, b INTEGER, f REAL)",
    "CREATE INDEX t0_k ON t0 (k)",
    "CREATE TABLE t1 (id INTEGER PRIMARY KEY, s TEXT UNIQUE, f REAL, k INTEGER, b INTEGER)",
    "CREATE INDEX t1_f ON t1 (f)",
    "CREATE TABLE t2 (a INTEGER, s TEXT, b INTEGER, f REAL)",
    "CREATE INDEX t2_a ON t2 (a)",
]

INTS = st.integers(-3, 3)
FLOATS = st.sampled_from([-1.5, 0.0, 0.5, 1.0, 2.0, 2.5])
STRS = st.sampled_from(["", "a", "b", "ab", "B", "ba", "é"])
BOOLS = st.booleans()

t0_rows = st.lists(
    st.tuples(st.integers(-4, 6), st.integers(-4, 6), INTS, st.none() | INTS, STRS, BOOLS, FLOATS),
    max_size=8, unique_by=(lambda r: r[0], lambda r: r[1]),
)
t1_rows = st.lists(st.tuples(st.integers(-4, 6), STRS, FLOATS, INTS, BOOLS), max_size=7,
                   unique_by=(lambda r: r[0], lambda r: r[1]))
t2_rows = st.lists(st.tuples(st.none() | INTS, STRS, BOOLS, FLOATS), max_size=8, unique=True)


def literal_for(cls: str) -> st.SearchStrategy[str]:
    if cls == "int":
        return INTS.map(str)
    if cls == "float":
        return st.one_of(FLOATS.map(repr), INTS.map(str))
    if cls == "str":
        return STRS.map(lambda s: "'" + s.replace("'", "''") + "'")
    return BOOLS.map(lambda b: "TRUE" if b else "FALSE")


def compatible(a: str, b: str) -> bool:
    return a == b or {a, b} <= {"int", "float"}


OPS = st.sampled_from(["=", "!=", "<>", "<", ">", "<=", ">="])


@st.composite
def comparison(draw: Any, scope: list[tuple[str, str]]) -> str:
    """``scope``: (alias, table) pairs the query has bound."""
    alias, tname = draw(st.sampled_from(scope))
    col = draw(st.sampled_from(COLUMNS[tname]))
    cls = CLASSES[tname][col]
    left = f"{alias}.{col}"
    op = draw(OPS)
    others = [(a, t, c) for a, t in scope for c in COLUMNS[t] if compatible(cls, CLASSES[t][c])]
    if draw(st.booleans()) and others:
        oa, _, oc = draw(st.sampled_from(others))
        right = f"{oa}.{oc}"
    else:
        right = draw(literal_for(cls))
    if draw(st.booleans()):
        left, right = right, left
    return f"{left} {op} {right}"


@st.composite
def predicate(draw: Any, scope: list[tuple[str, str]], depth: int = 0) -> str:
    if depth >= 2 or draw(st.integers(0, 2)) == 0:
        return draw(comparison(scope))
    parts = draw(st.lists(predicate(scope, depth + 1), min_size=2, max_size=3))
    joiner = draw(st.sampled_from([" AND ", " OR "]))
    text = joiner.join(parts)
    return f"({text})" if depth else text


@st.composite
def query(draw: Any) -> tuple[str, int | None]:
    """A SELECT and its LIMIT (or None)."""
    n = draw(st.integers(1, 3))
    names = [draw(st.sampled_from(list(ROW_TYPES))) for _ in range(n)]
    scope = [(f"x{i}", name) for i, name in enumerate(names)]
    text = f"FROM {names[0]} AS x0"
    for i in range(1, n):
        name = names[i]
        col = draw(st.sampled_from(COLUMNS[name]))
        cls = CLASSES[name][col]
        earlier = [(a, t, c) for a, t in scope[:i] for c in COLUMNS[t] if compatible(cls, CLASSES[t][c])]
        a, _, c = draw(st.sampled_from(earlier))
        on = [f"x{i}.{col}", f"{a}.{c}"]
        if draw(st.booleans()):
            on.reverse()
        text += f" JOIN {name} AS x{i} ON {on[0]} = {on[1]}"
    kind = draw(st.sampled_from(["star", "table_star", "columns", "count"]))
    if kind == "star":
        proj = "*"
    elif kind == "table_star":
        proj = f"{draw(st.sampled_from(scope))[0]}.*"
    elif kind == "count":
        proj = "COUNT(*) AS n"
    else:
        cols = draw(st.lists(st.sampled_from([(a, c) for a, t in scope for c in COLUMNS[t]]), min_size=1, max_size=4))
        proj = ", ".join(f"{a}.{c}" + (f" AS c{j}" if draw(st.booleans()) else "") for j, (a, c) in enumerate(cols))
    sql = f"SELECT {proj} {text}"
    if draw(st.booleans()):
        sql += f" WHERE {draw(predicate(scope))}"
    limit = draw(st.none() | st.integers(0, 4))
    return sql, limit


def build(t0: list[tuple[Any, ...]], t1: list[tuple[Any, ...]],
          t2: list[tuple[Any, ...]]) -> tuple[dict[str, Table], sqlite3.Connection]:
    ours = {name: Table(cls.__table__) for name, cls in ROW_TYPES.items()}
    tx = Transaction()
    for name, data in (("t0", t0), ("t1", t1), ("t2", t2)):
        for values in data:
            tx.insert(ours[name], ROW_TYPES[name](*values))
    conn = sqlite3.connect(":memory:")
    for stmt in DDL:
        conn.execute(stmt)
    for name, data in (("t0", t0), ("t1", t1), ("t2", t2)):
        marks = ", ".join("?" * len(COLUMNS[name]))
        conn.executemany(f"INSERT INTO {name} VALUES ({marks})", data)
    return ours, conn


def ours_rows(tables: dict[str, Table], text: str) -> list[tuple[Any, ...]]:
    return run_sql(text, tables=tables, sender=OWNER, is_owner=True).rows


def norm(rows: list[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
    # bools are 0/1 in sqlite; 1 == True and 2 == 2.0 already hash alike, but be explicit.
    return Counter(tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows)


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(SETTINGS, max_examples=200)
@given(t0_rows, t1_rows, t2_rows, st.lists(query(), min_size=1, max_size=6))
def test_select_matches_sqlite(t0: Any, t1: Any, t2: Any, queries: list[tuple[str, int | None]]) -> None:
    tables, conn = build(t0, t1, t2)
    for text, limit in queries:
        expected = conn.execute(text).fetchall()
        got = ours_rows(tables, text)
        assert norm(got) == norm(expected), text
        if limit is not None:
            limited = f"{text} LIMIT {limit}"
            got_l = ours_rows(tables, limited)
            if text.startswith("SELECT COUNT"):
                assert norm(got_l) == norm(conn.execute(limited).fetchall()), limited
            else:
                assert len(got_l) == min(limit, len(expected)), limited
                assert not norm(got_l) - norm(expected), limited


@st.composite
def dml(draw: Any) -> str:
    name = draw(st.sampled_from(["t0", "t1"]))
    scope = [(name, name)]
    where = f" WHERE {draw(predicate(scope))}" if draw(st.booleans()) else ""
    if draw(st.booleans()):
        return f"DELETE FROM {name}{where}"
    # Columns without unique constraints, so both engines succeed.
    settable = {"t0": ["k", "o", "s", "b", "f"], "t1": ["f", "k", "b"]}[name]
    cols = draw(st.lists(st.sampled_from(settable), min_size=1, max_size=3, unique=True))
    sets = ", ".join(f"{c} = {draw(literal_for(CLASSES[name][c]))}" for c in cols)
    return f"UPDATE {name} SET {sets}{where}"


@SETTINGS
@given(t0_rows, t1_rows, st.lists(dml(), min_size=1, max_size=4))
def test_dml_matches_sqlite(t0: Any, t1: Any, statements: list[str]) -> None:
    tables, conn = build(t0, t1, [])
    for text in statements:
        res = run_sql(text, tables=tables, sender=OWNER, is_owner=True, transact=Datastore(tables).writer(OWNER))
        cur = conn.execute(text)
        assert res.affected == cur.rowcount, text
        for name in ("t0", "t1"):
            expected = conn.execute(f"SELECT * FROM {name}").fetchall()
            assert norm(ours_rows(tables, f"SELECT * FROM {name}")) == norm(expected), text


def test_sqlite_mirror_smoke() -> None:
    tables, conn = build([(1, 2, 3, None, "a", True, 0.5)], [(1, "a", 0.5, 3, False)], [(None, "a", True, 0.5)])
    text = "SELECT x0.id, x1.s FROM t0 AS x0 JOIN t1 AS x1 ON x0.f = x1.f WHERE x0.b = TRUE"
    assert norm(ours_rows(tables, text)) == norm(conn.execute(text).fetchall()) == Counter({(1, "a"): 1})
