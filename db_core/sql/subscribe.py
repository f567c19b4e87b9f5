"""Subscription queries: checked like any SELECT, then shaped for the subscription engine.

``check_subscription(text, tables, is_owner, sender)`` parses and checks a
subscription query and returns a ``SubscriptionPlan`` (see there) with
compiled predicates.
"""

from __future__ import annotations

from typing import Any

from db_core.schema import TableDef
from db_core.sql.ast import CountStar, Select, SqlError, Star
from db_core.sql.check import check
from db_core.sql.parser import parse
from db_core.sql.plan import (
    BCompare, BExpr, Const, SelectPlan, SubscriptionPlan, conjoin, conjuncts, sources_of,
)
from db_core.sql.predicate import compile_pair_predicate, compile_predicate
from db_core.types import Identity

__all__ = ["check_subscription"]


def check_subscription(text: str, tables: dict[str, TableDef], is_owner: bool, sender: Identity) -> SubscriptionPlan:
    """Parse and check a subscription query: ``SELECT * | t.* FROM t [WHERE …]`` or
    ``SELECT t.* FROM t JOIN u ON t.a = u.b [WHERE …]`` with both join columns
    indexed. ``SqlError`` (with ``text`` set) for anything else."""
    try:
        stmt = parse(text)
        if not isinstance(stmt, Select):
            raise SqlError("unsupported: subscriptions take SELECT queries only", 0)
        plan = check(stmt, tables, is_owner, sender)
        assert isinstance(plan, SelectPlan)
        return _subscription_plan(stmt, plan, text)
    except SqlError as err:
        if err.text is None:
            err.text = text
        raise


def _subscription_plan(stmt: Select, plan: SelectPlan, text: str) -> SubscriptionPlan:
    proj = stmt.projection
    if isinstance(proj, CountStar):
        raise SqlError("unsupported: COUNT(*) in a subscription (subscriptions return whole rows)", proj.pos)
    if not isinstance(proj, Star):
        pos = proj[0].col.pos if proj else 0
        raise SqlError("unsupported: column lists in a subscription (subscriptions return whole rows:"
                       " use `SELECT *` or `SELECT t.*`)", pos)
    if stmt.limit is not None:
        raise SqlError("unsupported: LIMIT in a subscription", _find_limit_pos(text))
    if len(plan.joins) > 1:
        raise SqlError("unsupported: a subscription can join at most two tables", stmt.joins[1].pos)
    sources = plan.sources
    if plan.joins and proj.table is None:
        raise SqlError(
            "unsupported: a subscription over a join returns one table's rows: use "
            f"`SELECT {sources[0].alias}.*` or `SELECT {sources[1].alias}.*`", proj.pos)
    own = 0 if proj.table is None else next(i for i, s in enumerate(sources) if s.alias == proj.table)
    parts = conjuncts(plan.where)
    own_parts = [p for p in parts if sources_of(p) == {own}]
    predicate = compile_predicate(conjoin(own_parts)) if own_parts else None
    equalities = _equalities(own_parts, sources[own].tdef)
    if not plan.joins:
        return SubscriptionPlan(sources[own].table, predicate, equalities, plan=plan, text=text)
    other = 1 - own
    cond = plan.joins[0]
    cols = {cond.left.source: cond.left, cond.right.source: cond.right}
    for side in (0, 1):
        col = cols[side]
        tdef = sources[side].tdef
        if not (col.name == tdef.primary_key or col.name in tdef.unique or col.name in tdef.indexes):
            raise SqlError("unsupported: subscription joins need an index on both join columns"
                           f" (`{sources[side].alias}.{col.name}` has none)", cond.pos)
    other_parts = [p for p in parts if sources_of(p) == {other}]
    pair_parts = [p for p in parts if len(sources_of(p)) > 1]
    other_pred = None
    if other_parts:
        expr = conjoin(other_parts)
        assert expr is not None
        other_pred = compile_predicate(expr)
    pair_pred = None
    if pair_parts:
        pexpr = conjoin(pair_parts)
        assert pexpr is not None
        pair_pred = compile_pair_predicate(pexpr, own, other)
    return SubscriptionPlan(
        sources[own].table, predicate, equalities,
        (sources[other].table, cols[own].name, cols[other].name), other_pred, pair_pred, plan, text,
    )


def _equalities(parts: list[BExpr], tdef: TableDef) -> list[tuple[str, Any]]:
    eqs = [(p.left.name, p.right.value) for p in parts
           if isinstance(p, BCompare) and p.op == "=" and isinstance(p.right, Const)]

    def rank(item: tuple[str, Any]) -> int:
        name = item[0]
        if name == tdef.primary_key or name in tdef.unique:
            return 0
        return 1 if name in tdef.indexes else 2

    return sorted(eqs, key=rank)


def _find_limit_pos(text: str) -> int:
    from db_core.sql.lexer import tokenize

    for tok in reversed(tokenize(text)):
        if tok.kind == "word" and tok.value.upper() == "LIMIT":
            return tok.pos
    return 0
