"""Compiled predicates: a bound expression as one Python function over rows.

The source is generated from validated names only; constants and helpers live
in the function's namespace, so no value is ever spliced into code.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

from db_core.sql.plan import (
    BAnd, BCompare, BExpr, BOr, BoundColumn, Const, SelectPlan, SubscriptionPlan, sources_of, value_type,
)

__all__ = ["compile_predicate", "compile_pair_predicate", "compile_tuple_predicate", "plain_attribute"]


# --------------------------------------------------------------------------- compiled predicates

_PY_OPS = {"=": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


class _Gen:
    """Generates the Python source of a predicate; constants and helpers go in ``ns``."""

    def __init__(self, ref: Callable[[BoundColumn], str]) -> None:
        self.ref = ref
        self.ns: dict[str, Any] = {"__builtins__": {}}
        self.n = 0

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def name(self, prefix: str, value: Any) -> str:
        key = self.fresh(prefix)
        self.ns[key] = value
        return key

    def attr(self, var: str, col: BoundColumn) -> str:
        if plain_attribute(col.name):
            return f"{var}.{col.name}"
        from operator import attrgetter
        return f"{self.name('_g', attrgetter(col.name))}({var})"

    def expr(self, e: BExpr) -> str:
        if isinstance(e, BAnd):
            return "(" + " and ".join(self.expr(p) for p in e.parts) + ")"
        if isinstance(e, BOr):
            return "(" + " or ".join(self.expr(p) for p in e.parts) + ")"
        return self.compare(e)

    def compare(self, c: BCompare) -> str:
        op = _PY_OPS[c.op]
        ordering = c.op not in ("=", "!=")
        lt = c.left.type
        left = self.ref(c.left)
        checks: list[str] = []
        if lt.kind == "option" and c.op != "=":
            v = self.fresh("_v")
            checks.append(f"({v} := {left}) is not None")
            left = v
        if isinstance(c.right, Const):
            value = c.right.value
            key = value_type(lt).sort_key
            if ordering and key is not None:
                left = f"{self.name('_k', key)}({left})"
                value = key(value)
            right = self.name("_c", value)
        else:
            rt = c.right.type
            right = self.ref(c.right)
            if lt.kind == "option" and c.op == "=":
                v = self.fresh("_v")
                checks.append(f"({v} := {left}) is not None")
                left = v
            if rt.kind == "option":
                w = self.fresh("_w")
                checks.append(f"({w} := {right}) is not None")
                right = w
            if ordering:
                lkey, rkey = value_type(lt).sort_key, value_type(rt).sort_key
                if lkey is not None:
                    left = f"{self.name('_k', lkey)}({left})"
                if rkey is not None:
                    right = f"{self.name('_k', rkey)}({right})"
        checks.append(f"{left} {op} {right}")
        return "(" + " and ".join(checks) + ")" if len(checks) > 1 else checks[0]

    def build(self, params: str, body: str) -> Callable[..., bool]:
        code = compile(f"lambda {params}: {body}", "<sql predicate>", "eval")
        predicate: Callable[..., bool] = eval(code, self.ns)  # noqa: S307 - validated names; values live in ns
        return predicate


def plain_attribute(name: str) -> bool:
    """Whether generated code may read column ``name`` as ``row.name`` (an identifier, not a keyword)."""
    return name.isidentifier() and not keyword.iskeyword(name) and not keyword.issoftkeyword(name)


def _true(_row: Any) -> bool:
    return True


def compile_predicate(plan_or_expr: "BExpr | SelectPlan | SubscriptionPlan | None") -> Callable[[Any], bool]:
    """A closure ``row -> bool`` for a single-table condition.

    Accepts a bound expression whose columns all belong to one table, a
    one-table ``SelectPlan`` (its WHERE), or a ``SubscriptionPlan`` (its
    ``predicate``). The closure is generated Python (``lambda r: r.a == c1 and …``),
    not an interpreter over the tree. ``None``/no condition: always true.
    """
    if isinstance(plan_or_expr, SubscriptionPlan):
        return plan_or_expr.predicate or _true
    if isinstance(plan_or_expr, SelectPlan):
        if len(plan_or_expr.sources) != 1:
            raise ValueError("compile_predicate takes a one-table plan; this one joins tables")
        plan_or_expr = plan_or_expr.where
    if plan_or_expr is None:
        return _true
    if len(sources_of(plan_or_expr)) > 1:
        raise ValueError("compile_predicate takes a condition on one table")
    gen = _Gen(lambda col: gen.attr("r", col))
    return gen.build("r", gen.expr(plan_or_expr))


def compile_pair_predicate(expr: BExpr, first: int, second: int) -> Callable[[Any, Any], bool]:
    """A closure ``(row_of_first, row_of_second) -> bool`` for a condition on two sources."""
    gen = _Gen(lambda col: gen.attr("a" if col.source == first else "b", col))
    return gen.build("a, b", gen.expr(expr))


def compile_tuple_predicate(expr: BExpr, position: dict[int, int]) -> Callable[[tuple[Any, ...]], bool]:
    """A closure over a tuple of rows: source ``s`` is at ``t[position[s]]``."""
    gen = _Gen(lambda col: gen.attr(f"t[{position[col.source]}]", col))
    return gen.build("t", gen.expr(expr))
