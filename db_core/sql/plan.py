"""The logical plans of checked statements, and the bound expressions in them.

``db_core.sql.check`` builds them from an AST; ``db_core.sql.execute`` runs
them; ``db_core.sql.predicate`` compiles their expressions to Python. A
``Const.value`` is what a row would hold, so plans compare plain values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from db_core.schema import ColType, TableDef

__all__ = [
    "Source", "BoundColumn", "Const", "BCompare", "BAnd", "BOr", "BExpr", "JoinCond",
    "SelectPlan", "InsertPlan", "UpdatePlan", "DeletePlan", "Plan", "SubscriptionPlan",
    "conjoin", "conjuncts", "sources_of", "value_type",
]


# --------------------------------------------------------------------------- bound nodes

@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """One table of a query. ``alias`` is the name the query uses for it (its
    alias, else the table's name)."""
    table: str
    alias: str
    tdef: TableDef = dataclasses.field(repr=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class BoundColumn:
    """A column of ``plan.sources[source]``; ``shown`` is how the query wrote it."""
    source: int
    name: str
    type: ColType
    shown: str = dataclasses.field(default="", compare=False)
    pos: int = dataclasses.field(default=-1, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Const:
    """A literal converted to the column type it is compared with or stored in."""
    value: Any
    pos: int = dataclasses.field(default=-1, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class BCompare:
    """``left op right``; the left side is always a column (the checker flips
    ``5 < x`` into ``x > 5``)."""
    op: str
    left: BoundColumn
    right: BoundColumn | Const
    pos: int = dataclasses.field(default=-1, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class BAnd:
    parts: tuple["BExpr", ...]


@dataclasses.dataclass(frozen=True, slots=True)
class BOr:
    parts: tuple["BExpr", ...]


BExpr = BCompare | BAnd | BOr


@dataclasses.dataclass(frozen=True, slots=True)
class JoinCond:
    """``JOIN`` number k binds ``sources[k + 1]``: ``left`` is a column of an earlier
    table, ``right`` one of the newly joined table."""
    left: BoundColumn
    right: BoundColumn
    pos: int = dataclasses.field(default=-1, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class SelectPlan:
    """A checked SELECT. ``output`` lists the returned columns (``None`` for
    ``COUNT(*)``); ``columns``/``types`` are the result's header and types."""
    sources: tuple[Source, ...]
    joins: tuple[JoinCond, ...]
    where: BExpr | None
    output: tuple[BoundColumn, ...] | None
    columns: tuple[str, ...]
    types: tuple[ColType, ...]
    limit: int | None = None

    @property
    def count(self) -> bool:
        return self.output is None


@dataclasses.dataclass(frozen=True, slots=True)
class InsertPlan:
    """Rows to insert, each a full ``{column: value}`` (AutoInc columns may hold 0:
    generated at execution). ``positions``: where each row starts in the SQL."""
    table: str
    tdef: TableDef
    rows: tuple[dict[str, Any], ...]
    positions: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class UpdatePlan:
    """``assignments`` are converted values; ``select`` finds the rows to change."""
    table: str
    tdef: TableDef
    assignments: dict[str, Any]
    select: SelectPlan
    pos: int = -1


@dataclasses.dataclass(frozen=True, slots=True)
class DeletePlan:
    table: str
    tdef: TableDef
    select: SelectPlan


Plan = SelectPlan | InsertPlan | UpdatePlan | DeletePlan


@dataclasses.dataclass(slots=True)
class SubscriptionPlan:
    """What the subscription engine needs to maintain one subscribed query.

    - ``table``: the table whose rows the query returns.
    - ``predicate(row) -> bool`` over that table's rows, or ``None`` (all rows).
      It is the whole condition on the table (including the ``equalities``).
    - ``equalities``: top-level AND conjuncts ``col = literal`` on ``table``, as
      ``(column, value)`` with the value converted to what a row holds (for an
      ``Optional`` column, the inner value). Indexed columns come first.
    - ``join``: ``None``, or ``(other_table, own_column, other_column)`` for
      ``SELECT t.* FROM t JOIN u ON t.a = u.b``; both columns are indexed.
    - ``other_predicate(other_row) -> bool`` for conditions on the other table
      only, ``pair_predicate(row, other_row) -> bool`` for those that mention
      both (``None`` when there are none).
    - ``plan``: the checked ``SelectPlan`` it came from; ``text``: the query.
    """
    table: str
    predicate: Callable[[Any], bool] | None
    equalities: list[tuple[str, Any]]
    join: tuple[str, str, str] | None = None
    other_predicate: Callable[[Any], bool] | None = None
    pair_predicate: Callable[[Any, Any], bool] | None = None
    plan: SelectPlan | None = dataclasses.field(default=None, repr=False, compare=False)
    text: str = ""

    @property
    def whole_table(self) -> bool:
        """Every row of ``table``: no condition, no join."""
        return self.predicate is None and self.join is None


# --------------------------------------------------------------------------- helpers

def conjuncts(expr: BExpr | None) -> list[BExpr]:
    """The top-level AND conjuncts of ``expr`` (empty for None)."""
    if expr is None:
        return []
    if isinstance(expr, BAnd):
        return list(expr.parts)
    return [expr]


def sources_of(expr: BExpr) -> frozenset[int]:
    """The indexes of the sources an expression mentions."""
    if isinstance(expr, BCompare):
        if isinstance(expr.right, BoundColumn):
            return frozenset((expr.left.source, expr.right.source))
        return frozenset((expr.left.source,))
    out: frozenset[int] = frozenset()
    for part in expr.parts:
        out |= sources_of(part)
    return out


def conjoin(parts: list[BExpr]) -> BExpr | None:
    """The conjunction of ``parts`` (flattened); None for no parts."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    flat: list[BExpr] = []
    for p in parts:
        flat.extend(p.parts if isinstance(p, BAnd) else (p,))
    return BAnd(tuple(flat))


def value_type(t: ColType) -> ColType:
    """The type a comparison sees: an option's inner type (None satisfies no comparison)."""
    return t.item if t.kind == "option" else t
