"""How a SELECT reads the live tables: the access path of each table and the join order.

SELECT
    ``physical_plan(plan, tables)`` decides, from the live tables, how to read
    each table and in which order to join them; ``run_select`` runs it.

    - Access to a table: an equality on an indexed column (primary key,
      unique or btree) looks the value up; else a range (``<``, ``<=``, ``>``,
      ``>=``, bounds on one column combined) on an indexed column reads the
      index's ordered keys; else the table is scanned. Among the top-level
      AND conjuncts the most selective usable one wins (for equalities the
      exact number of matching rows is known from the index). Everything
      else filters the rows as a compiled closure.
    - Joins run left-deep in an order chosen greedily by estimated cost (every
      start is tried): a table is joined by looking its join column up in its
      index for each row so far (index nested loop) when it has one, else by a
      hash join (a dict built once from the table's own access path). Two
      tables are never scanned in a nested loop. ``col = col`` conjuncts of
      the WHERE clause between two tables serve as join keys too.
    - ``COUNT(*)`` counts; ``LIMIT`` stops the pipeline early.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from db_core.readview import LiveView
from db_core.sql.ast import SqlError
from db_core.sql.plan import BCompare, BExpr, BoundColumn, Const, SelectPlan, conjoin, conjuncts, sources_of
from db_core.sql.predicate import compile_predicate, compile_tuple_predicate
from db_core.table import BTreeIndex, Table, UniqueIndex

__all__ = ["Access", "JoinStep", "PhysicalPlan", "physical_plan", "explain"]

_RANGE_OPS = ("<", "<=", ">", ">=")


# --------------------------------------------------------------------------- access paths

@dataclasses.dataclass(slots=True)
class Access:
    """How the rows of one table are read.

    ``kind`` is ``scan``, ``index_eq`` (``value``) or ``index_range`` (``lo``/``hi``
    with ``inclusive``; a bound may be None). ``index_kind`` names the index:
    ``primary key``, ``unique`` or ``btree``. ``est`` is the expected row count.
    ``consumed`` is the conjunct an ``index_eq`` answers exactly.
    """
    source: int
    table: str
    kind: str = "scan"
    column: str | None = None
    index: UniqueIndex | BTreeIndex | None = None
    index_kind: str = ""
    value: Any = None
    lo: Any = None
    hi: Any = None
    inclusive: tuple[bool, bool] = (True, True)
    est: float = 0.0
    consumed: BExpr | None = None

    def rows(self, table: Table, view: LiveView) -> Iterable[Any]:
        if self.kind == "index_eq":
            assert self.index is not None
            return view.find(table, self.index, self.value)
        if self.kind == "index_range":
            assert self.index is not None
            return view.range(table, self.index, self.lo, self.hi, self.inclusive)
        return view.rows(table)

    def describe(self, alias: str) -> str:
        if self.kind == "scan":
            return f"scan `{alias}`"
        if self.kind == "index_eq":
            return f"index lookup `{alias}`.`{self.column}` = {self.value!r} ({self.index_kind})"
        lo = "" if self.lo is None else f"{self.lo!r} {'<=' if self.inclusive[0] else '<'} "
        hi = "" if self.hi is None else f" {'<=' if self.inclusive[1] else '<'} {self.hi!r}"
        return f"index range `{alias}`: {lo}`{self.column}`{hi} ({self.index_kind})"


def _index_kind(table: Table, index: UniqueIndex | BTreeIndex) -> str:
    if index is table.pk_index:
        return "primary key"
    return "unique" if isinstance(index, UniqueIndex) else "btree"


def _eq_count(index: UniqueIndex | BTreeIndex, value: Any) -> int:
    hit = index.map.get(value)
    if hit is None:
        return 0
    return 1 if isinstance(index, UniqueIndex) else len(hit)


def _choose_access(source: int, table: Table, parts: list[BExpr]) -> Access:
    """The cheapest way to read ``table`` given its own conjuncts ``parts``."""
    n = len(table)
    best = Access(source, table.name, est=float(n))
    eq: Access | None = None
    ranges: dict[str, list[BCompare]] = {}
    for p in parts:
        if not (isinstance(p, BCompare) and isinstance(p.right, Const)):
            continue
        index = table.index_for(p.left.name)
        if index is None:
            continue
        if p.op == "=":
            value = p.right.value
            count = _eq_count(index, value)
            if eq is None or count < eq.est or (count == eq.est and isinstance(index, UniqueIndex)
                                                 and not isinstance(eq.index, UniqueIndex)):
                eq = Access(source, table.name, "index_eq", p.left.name, index, _index_kind(table, index),
                            value=value, est=float(count), consumed=p)
        elif p.op in _RANGE_OPS:
            ranges.setdefault(p.left.name, []).append(p)
    if eq is not None:
        return eq
    if not ranges or n == 0:
        return best
    for column, comps in ranges.items():
        index = table.index_for(column)
        assert index is not None
        key = comps[0].left.type.sort_key or _same
        lo: tuple[Any, bool] | None = None
        hi: tuple[Any, bool] | None = None
        for c in comps:
            v = c.right.value  # type: ignore[union-attr]  # index probes compare to a Const
            if c.op in (">", ">="):
                cand = (v, c.op == ">=")
                if lo is None or key(v) > key(lo[0]) or (key(v) == key(lo[0]) and not cand[1]):
                    lo = cand
            else:
                cand = (v, c.op == "<=")
                if hi is None or key(v) < key(hi[0]) or (key(v) == key(hi[0]) and not cand[1]):
                    hi = cand
        est = n / 8 if lo is not None and hi is not None else n / 3
        if est < best.est:
            best = Access(
                source, table.name, "index_range", column, index, _index_kind(table, index),
                lo=None if lo is None else lo[0], hi=None if hi is None else hi[0],
                inclusive=(True if lo is None else lo[1], True if hi is None else hi[1]), est=est,
            )
    return best


def _same(v: Any) -> Any:
    return v


# --------------------------------------------------------------------------- physical plan

@dataclasses.dataclass(slots=True)
class JoinStep:
    """Bind ``source``: ``index`` (look ``column`` up in its index with the value of
    ``probe``, a column of an earlier table) or ``hash`` (build a dict of the
    table's rows by ``column`` from ``access``, probe it with ``probe``)."""
    source: int
    kind: str
    probe: BoundColumn
    column: BoundColumn
    index: UniqueIndex | BTreeIndex | None
    access: Access | None
    local: Callable[[Any], bool] | None
    residual: Callable[[tuple[Any, ...]], bool] | None
    guard_none: bool = False
    guard_nan: bool = False

    def describe(self, plan: SelectPlan) -> str:
        new = plan.sources[self.source].alias
        old = plan.sources[self.probe.source].alias
        on = f"`{new}`.`{self.column.name}` = `{old}`.`{self.probe.name}`"
        if self.kind == "index":
            assert self.index is not None
            return (f"index join `{new}` on {on}"
                    f" (via the {_kind_name(self.index)} index on `{new}`.`{self.column.name}`)")
        assert self.access is not None
        return f"hash join `{new}` on {on} (building from: {self.access.describe(new)})"


def _kind_name(index: UniqueIndex | BTreeIndex) -> str:
    return "unique" if isinstance(index, UniqueIndex) else "btree"


@dataclasses.dataclass(slots=True)
class PhysicalPlan:
    """How a SELECT runs: ``order`` of sources, the first one's ``access``, the join ``steps``."""
    plan: SelectPlan
    order: list[int]
    access: Access
    start_filter: Callable[[Any], bool] | None
    steps: list[JoinStep]
    position: dict[int, int]

    def describe(self) -> list[str]:
        lines = [self.access.describe(self.plan.sources[self.order[0]].alias)]
        lines += [s.describe(self.plan) for s in self.steps]
        return lines


def _as_compare(j: Any) -> BCompare:
    return BCompare("=", j.left, j.right, j.pos)


def physical_plan(plan: SelectPlan, tables: dict[str, Table]) -> PhysicalPlan:
    """Choose access paths and a join order for ``plan`` over the live ``tables``."""
    n = len(plan.sources)
    tabs = [tables[s.table] for s in plan.sources]
    parts = conjuncts(plan.where)
    local: list[list[BExpr]] = [[] for _ in range(n)]
    multi: list[BExpr] = []
    edges: list[BCompare] = [_as_compare(j) for j in plan.joins]
    for p in parts:
        srcs = sources_of(p)
        if len(srcs) == 1:
            local[next(iter(srcs))].append(p)
        elif (isinstance(p, BCompare) and p.op == "=" and isinstance(p.right, BoundColumn)
              and p.left.source != p.right.source):
            edges.append(p)
        else:
            multi.append(p)
    access = [_choose_access(i, tabs[i], local[i]) for i in range(n)]

    if n == 1:
        a = access[0]
        rest = [p for p in local[0] if p is not a.consumed]
        f = compile_predicate(conjoin(rest)) if rest else None
        return PhysicalPlan(plan, [0], a, f, [], {0: 0})

    # Greedy join order from every start; keep the cheapest.
    best: tuple[float, list[int], list[tuple[int, str, BCompare]]] | None = None
    for start in range(n):
        bound = {start}
        order = [start]
        rows = access[start].est
        cost = access[start].est
        chosen: list[tuple[int, str, BCompare]] = []
        while len(bound) < n:
            option: tuple[float, int, int, int, str, BCompare, float] | None = None
            for ei, e in enumerate(edges):
                a_in, b_in = e.left.source in bound, e.right.source in bound  # type: ignore[union-attr]  # edges: column = column
                if a_in == b_in:
                    continue
                new_col = e.right if a_in else e.left
                assert isinstance(new_col, BoundColumn)
                j = new_col.source
                index = tabs[j].index_for(new_col.name)
                if index is not None:
                    bucket = 1.0 if isinstance(index, UniqueIndex) else len(tabs[j]) / max(1, len(index.map))
                    c, out, kind = rows, rows * bucket, "index"
                else:
                    c, out, kind = access[j].est + rows, rows, "hash"
                cand = (c, kind == "hash", j, ei, kind, e, out)
                if option is None or cand[:4] < option[:4]:
                    option = cand
            if option is None:  # cannot happen: every JOIN links its table to an earlier one
                raise SqlError("unsupported: a join without a join condition")
            c, _, j, _, kind, e, out = option
            cost += c
            rows = out
            bound.add(j)
            order.append(j)
            chosen.append((j, kind, e))
        if best is None or cost < best[0]:
            best = (cost, order, chosen)
    assert best is not None
    _, order, chosen = best
    position = {s: i for i, s in enumerate(order)}
    used = {id(e) for _, _, e in chosen}
    residual_parts = multi + [e for e in edges if id(e) not in used]

    def residual_for(upto: set[int]) -> list[BExpr]:
        here = [p for p in residual_parts if sources_of(p) <= upto]
        for p in here:
            residual_parts.remove(p)
        return here

    start = order[0]
    a = access[start]
    start_local = [p for p in local[start] if p is not a.consumed]
    start_filter = compile_predicate(conjoin(start_local)) if start_local else None
    bound = {start}
    steps: list[JoinStep] = []
    for j, kind, e in chosen:
        bound.add(j)
        new_col, probe = (e.left, e.right) if e.left.source == j else (e.right, e.left)
        assert isinstance(new_col, BoundColumn) and isinstance(probe, BoundColumn)
        res = residual_for(bound)
        residual = compile_tuple_predicate(conjoin(res), position) if res else None  # type: ignore[arg-type]  # res non-empty
        kinds = {new_col.type.kind, probe.type.kind}
        inner_kinds = {_inner_kind(new_col), _inner_kind(probe)}
        guard_none = "option" in kinds
        guard_nan = "float" in inner_kinds
        if kind == "index":
            index = tabs[j].index_for(new_col.name)
            lp = local[j]
            steps.append(JoinStep(j, "index", probe, new_col, index, None,
                                  compile_predicate(conjoin(lp)) if lp else None, residual, guard_none, guard_nan))
        else:
            acc = access[j]
            lp = [p for p in local[j] if p is not acc.consumed]
            steps.append(JoinStep(j, "hash", probe, new_col, None, acc,
                                  compile_predicate(conjoin(lp)) if lp else None, residual, guard_none, guard_nan))
    assert not residual_parts
    return PhysicalPlan(plan, order, a, start_filter, steps, position)


def _inner_kind(col: BoundColumn) -> str:
    t = col.type
    return t.inner.kind if t.kind == "option" and t.inner is not None else t.kind


def explain(plan: SelectPlan, tables: dict[str, Table]) -> list[str]:
    """How ``plan`` would run now, one line per table (access path, then joins)."""
    return physical_plan(plan, tables).describe()
