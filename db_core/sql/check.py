"""Bind a parsed statement to the schema: names resolved, literals converted, a plan.

``check(stmt, tables, is_owner, sender=None)`` turns an AST from
``db_core.sql.parser`` into one of the *logical* plans below. It never looks
at rows: which index to use is decided by ``db_core.sql.execute`` when the
plan runs, from the live tables.

Names: a table is visible when it is public or the caller is the owner (a
private table is reported exactly like a missing one). A column may be
qualified by its table's alias (or by the table's name when it has none);
an unqualified column must belong to exactly one table of the query.

Values: every literal is converted to the type of the column it meets
(``Const.value`` is what a row would hold), so execution compares plain
Python values. Comparing an ``Optional`` column compares its inner value;
``None`` satisfies no comparison (like SQL's NULL). List columns cannot be
compared. ``:sender`` is the caller's ``Identity``.

Errors are ``SqlError`` with the position of the offending node; the caller
sets ``err.text`` so that ``str(err)`` shows line and column. A non-owner's DML
is refused with ``NotAuthorized`` (no position).

``check_subscription(text, tables, is_owner, sender)`` parses and checks a
subscription query and returns a ``SubscriptionPlan`` (see there) with
compiled predicates for the subscription engine.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import typing
from collections.abc import Callable
from typing import Any

from db_core.schema import INT_MAX, INT_MIN, ColType, TableDef, col_type
from db_core.sql.ast import (
    And, ColumnRef, Compare, CompareOp, CountStar, Delete, Expr, Insert, Literal, Or, Param, ProjColumn,
    Select, SqlError, Star, Statement, TableRef, Update,
)
from db_core.types import ConnectionId, Identity, Timestamp

__all__ = [
    "check", "check_subscription", "NotAuthorized",
    "Source", "BoundColumn", "Const", "BCompare", "BAnd", "BOr", "BExpr", "JoinCond",
    "SelectPlan", "InsertPlan", "UpdatePlan", "DeletePlan", "Plan", "SubscriptionPlan",
    "conjoin", "conjuncts", "plain_attribute", "sources_of",
    "compile_predicate", "compile_pair_predicate", "compile_tuple_predicate",
    "COUNT_TYPE",
]

COUNT_TYPE: ColType = col_type(int, "COUNT(*)")


class NotAuthorized(SqlError):
    """A caller other than the owner tried to run DML (``INSERT``/``UPDATE``/``DELETE``)."""


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

_LITERAL_KIND_NAMES = {"int": "integer", "float": "float", "string": "string", "bool": "bool", "hex": "bytes"}
_FLIP: dict[CompareOp, CompareOp] = {"=": "=", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


def _base(t: ColType) -> ColType:
    return t.item if t.kind == "option" else t


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


# --------------------------------------------------------------------------- the checker

def check(stmt: Statement, tables: dict[str, TableDef], is_owner: bool, sender: Identity | None = None) -> Plan:
    """Bind ``stmt`` to ``tables``; a plan, or ``SqlError`` (``err.text`` unset)."""
    return _Checker(tables, is_owner, sender).statement(stmt)


class _Checker:
    def __init__(self, tables: dict[str, TableDef], is_owner: bool, sender: Identity | None) -> None:
        self.tables = tables
        self.is_owner = is_owner
        self.sender = sender
        self.sources: list[Source] = []

    # ---------------------------------------------------------------- statements

    def statement(self, stmt: Statement) -> Plan:
        if isinstance(stmt, Select):
            return self.select(stmt)
        if not self.is_owner:
            who = f"Identity 0x{self.sender.hex()}" if self.sender is not None else "This caller"
            raise NotAuthorized(f"{who} is not authorized to run SQL DML statements")
        if isinstance(stmt, Insert):
            return self.insert(stmt)
        if isinstance(stmt, Update):
            return self.update(stmt)
        if isinstance(stmt, Delete):
            return self.delete(stmt)
        raise SqlError(f"unsupported: statement {type(stmt).__name__}")

    def table(self, ref: TableRef) -> TableDef:
        tdef = self.tables.get(ref.name)
        if tdef is None or not (tdef.public or self.is_owner):
            raise SqlError(f"no such table: `{ref.name}`. If the table exists, it may be marked private.", ref.pos)
        return tdef

    def add_source(self, ref: TableRef) -> int:
        tdef = self.table(ref)
        alias = ref.alias if ref.alias is not None else ref.name
        for s in self.sources:
            if s.alias == alias:
                hint = "" if ref.alias is not None else " (give each an alias)"
                raise SqlError(f"duplicate table or alias `{alias}` in FROM{hint}", ref.pos)
        self.sources.append(Source(ref.name, alias, tdef))
        return len(self.sources) - 1

    def select(self, stmt: Select) -> SelectPlan:
        self.sources = []
        self.add_source(stmt.from_)
        joins: list[JoinCond] = []
        for join in stmt.joins:
            new = self.add_source(join.table)
            left = self.column(join.left)
            right = self.column(join.right)
            if right.source == new and left.source != new:
                pass
            elif left.source == new and right.source != new:
                left, right = right, left
            else:
                raise SqlError(
                    f"unsupported: the join condition must compare a column of `{self.sources[new].alias}`"
                    " with a column of an earlier table", join.pos)
            self.comparable(left, right, join.pos)
            joins.append(JoinCond(left, right, join.pos))
        where = self.expr(stmt.where) if stmt.where is not None else None
        proj = stmt.projection
        output: tuple[BoundColumn, ...] | None
        if isinstance(proj, CountStar):
            output = None
            columns: tuple[str, ...] = (proj.alias,)
            types: tuple[ColType, ...] = (COUNT_TYPE,)
        elif isinstance(proj, Star):
            if proj.table is None:
                chosen = list(range(len(self.sources)))
            else:
                chosen = [self.qualifier(proj.table, proj.pos)]
            cols = [BoundColumn(i, c.name, c.type, c.name) for i in chosen for c in self.sources[i].tdef.columns]
            output = tuple(cols)
            columns = tuple(c.name for c in cols)
            types = tuple(c.type for c in cols)
        else:
            items: tuple[ProjColumn, ...] = proj
            bound = [self.column(item.col) for item in items]
            output = tuple(bound)
            columns = tuple(item.alias if item.alias is not None else item.col.name for item in items)
            types = tuple(c.type for c in bound)
        return SelectPlan(tuple(self.sources), tuple(joins), where, output, columns, types, stmt.limit)

    def single(self, ref: TableRef, where: Expr | None) -> SelectPlan:
        tdef = self.table(ref)
        if tdef.system:
            raise SqlError(f"unsupported: changing system table `{ref.name}`", ref.pos)
        self.sources = []
        self.add_source(ref)
        bound = self.expr(where) if where is not None else None
        out = tuple(BoundColumn(0, c.name, c.type, c.name) for c in tdef.columns)
        return SelectPlan(tuple(self.sources), (), bound, out, tuple(c.name for c in out), tuple(c.type for c in out))

    def insert(self, stmt: Insert) -> InsertPlan:
        select = self.single(stmt.table, None)
        tdef = select.sources[0].tdef
        table = tdef.name
        if stmt.columns is None:
            names = [c.name for c in tdef.columns]
            positions = [stmt.table.pos] * len(names)
        else:
            names = []
            positions = []
            for ref in stmt.columns:
                if tdef.column(ref.name) is None:
                    raise SqlError(f"unknown column `{ref.name}` in table `{table}`", ref.pos)
                if ref.name in names:
                    raise SqlError(f"column `{ref.name}` is given twice", ref.pos)
                names.append(ref.name)
                positions.append(ref.pos)
        defaults: dict[str, Any] = {}
        for c in tdef.columns:
            if c.name in names:
                continue
            if c.has_default:
                defaults[c.name] = c.default
            elif c.type.kind == "option":
                defaults[c.name] = None
            elif c.name in tdef.autoinc:
                defaults[c.name] = 0
            else:
                pos = stmt.columns[0].pos if stmt.columns else stmt.table.pos
                raise SqlError(f"missing value for column `{c.name}` of table `{table}` (it has no default)", pos)
        rows: list[dict[str, Any]] = []
        starts: list[int] = []
        for n, values in enumerate(stmt.rows, 1):
            start = values[0].pos if values else stmt.table.pos
            if len(values) != len(names):
                raise SqlError(
                    f"row {n} has {len(values)} value{'s' if len(values) != 1 else ''}"
                    f" but {len(names)} column{'s are' if len(names) != 1 else ' is'} named"
                    if stmt.columns is not None else
                    f"row {n} has {len(values)} value{'s' if len(values) != 1 else ''}"
                    f" but table `{table}` has {len(names)} column{'s' if len(names) != 1 else ''}", start)
            row = dict(defaults)
            for name, value in zip(names, values, strict=True):
                col = tdef.column(name)
                assert col is not None
                row[name] = self.store_value(value, col.type, f"`{name}`")
            rows.append(row)
            starts.append(start)
        return InsertPlan(table, tdef, tuple(rows), tuple(starts))

    def update(self, stmt: Update) -> UpdatePlan:
        select = self.single(stmt.table, stmt.where)
        tdef = select.sources[0].tdef
        assignments: dict[str, Any] = {}
        for a in stmt.assignments:
            ref = a.column
            col = tdef.column(ref.name)
            if col is None:
                raise SqlError(f"unknown column `{ref.name}` in table `{tdef.name}`", ref.pos)
            if ref.name in assignments:
                raise SqlError(f"column `{ref.name}` is set twice", ref.pos)
            assignments[ref.name] = self.store_value(a.value, col.type, f"`{ref.name}`")
        return UpdatePlan(tdef.name, tdef, assignments, select, stmt.table.pos)

    def delete(self, stmt: Delete) -> DeletePlan:
        select = self.single(stmt.table, stmt.where)
        return DeletePlan(select.sources[0].table, select.sources[0].tdef, select)

    # ---------------------------------------------------------------- names

    def qualifier(self, name: str, pos: int) -> int:
        for i, s in enumerate(self.sources):
            if s.alias == name:
                return i
        hint = ""
        for s in self.sources:
            if s.table == name and s.alias != name:
                hint = f" (table `{name}` is called `{s.alias}` in this query)"
        raise SqlError(f"unknown table or alias `{name}`{hint}", pos)

    def column(self, ref: ColumnRef) -> BoundColumn:
        if ref.table is not None:
            i = self.qualifier(ref.table, ref.pos)
            col = self.sources[i].tdef.column(ref.name)
            if col is None:
                raise SqlError(f"unknown column `{ref.name}` in table `{self.sources[i].table}`", ref.pos)
            return BoundColumn(i, ref.name, col.type, f"{ref.table}.{ref.name}", ref.pos)
        found = [i for i, s in enumerate(self.sources) if s.tdef.column(ref.name) is not None]
        if not found:
            if len(self.sources) == 1:
                raise SqlError(f"unknown column `{ref.name}` in table `{self.sources[0].table}`", ref.pos)
            raise SqlError(f"unknown column `{ref.name}` (not in {_list_names([s.alias for s in self.sources], 'or')})",
                           ref.pos)
        if len(found) > 1:
            raise SqlError(
                f"ambiguous column `{ref.name}` (in {_list_names([self.sources[i].alias for i in found], 'and')})",
                ref.pos)
        i = found[0]
        col = self.sources[i].tdef.column(ref.name)
        assert col is not None
        return BoundColumn(i, ref.name, col.type, ref.name, ref.pos)

    # ---------------------------------------------------------------- expressions

    def expr(self, e: Expr) -> BExpr:
        if isinstance(e, And):
            return BAnd(tuple(self._flatten(e, And)))
        if isinstance(e, Or):
            return BOr(tuple(self._flatten(e, Or)))
        return self.compare(e)

    def _flatten(self, e: Expr, kind: type) -> list[BExpr]:
        # Iterative over the left spine (the parser builds left-deep chains).
        parts: list[BExpr] = []
        stack: list[Expr] = [e]
        while stack:
            node = stack.pop()
            if isinstance(node, kind):
                assert isinstance(node, (And, Or))
                stack.append(node.right)
                stack.append(node.left)
            else:
                parts.append(self.expr(node))
        return parts

    def compare(self, c: Compare) -> BCompare:
        op = c.op
        left, right = c.left, c.right
        if not isinstance(left, ColumnRef):
            left, right, op = right, left, _FLIP[op]
        assert isinstance(left, ColumnRef)
        col = self.column(left)
        self.no_list(col, left.pos)
        if isinstance(right, ColumnRef):
            other = self.column(right)
            self.no_list(other, right.pos)
            self.comparable(col, other, c.pos)
            return BCompare(op, col, other, c.pos)
        return BCompare(op, col, Const(self.compare_value(right, col), right.pos), c.pos)

    def no_list(self, col: BoundColumn, pos: int) -> None:
        t = _base(col.type)
        if t.kind == "array":
            raise SqlError(f"unsupported: `{col.shown}` is {col.type.name}; list columns cannot be compared", pos)

    def comparable(self, a: BoundColumn, b: BoundColumn, pos: int) -> None:
        self.no_list(a, a.pos if a.pos >= 0 else pos)
        self.no_list(b, b.pos if b.pos >= 0 else pos)
        ta, tb = _base(a.type), _base(b.type)
        if ta.describe() == tb.describe():
            if ta.kind != "enum" or ta.enum_cls is tb.enum_cls:
                return
        elif {ta.kind, tb.kind} <= {"int", "float"}:
            return
        raise SqlError(f"type mismatch: `{a.shown}` is {a.type.name}, `{b.shown}` is {b.type.name}", pos)

    # ---------------------------------------------------------------- values

    def compare_value(self, v: Literal | Param, col: BoundColumn) -> Any:
        return self.convert(v, _base(col.type), col.type, f"`{col.shown}`")

    def store_value(self, v: Literal | Param, t: ColType, shown: str) -> Any:
        if _base(t).kind == "array":
            raise SqlError(f"unsupported: {shown} is {t.name}; SQL has no list values", v.pos)
        return self.convert(v, _base(t), t, shown)

    def convert(self, v: Literal | Param, t: ColType, declared: ColType, shown: str) -> Any:
        """``v`` as a value of (non-option) type ``t``; ``declared`` is the column's type, for messages."""
        kind = t.kind

        def mismatch(extra: str = "") -> typing.NoReturn:
            raise SqlError(f"type mismatch: {shown} is {declared.name}, got {got}{extra}", v.pos)

        if isinstance(v, Param):
            got = f"Identity (:{v.name})"
            if v.name != "sender":
                raise SqlError(f"unsupported: parameter `:{v.name}`", v.pos)
            if self.sender is None:
                raise SqlError("`:sender` is not available here (no caller)", v.pos)
            if kind != "identity":
                mismatch()
            return Identity(self.sender)
        lk, value = v.kind, v.value
        got = _LITERAL_KIND_NAMES[lk]
        if kind == "array":
            raise SqlError(f"unsupported: {shown} is {declared.name}; list columns cannot be compared", v.pos)
        if kind == "bool":
            if lk == "bool":
                return bool(value)
            mismatch()
        if kind == "int":
            if lk == "int":
                assert isinstance(value, int)
                if not INT_MIN <= value <= INT_MAX:
                    raise SqlError(
                        f"integer out of range for {shown} ({declared.name}: {INT_MIN} to {INT_MAX}): {value}", v.pos)
                return int(value)
            mismatch()
        if kind == "float":
            if lk == "float":
                assert isinstance(value, float)
                return float(value)
            if lk == "int":
                assert isinstance(value, int)
                try:
                    f = float(value)
                except OverflowError:
                    raise SqlError(f"number out of range for {shown} ({declared.name}): {value}", v.pos) from None
                if math.isinf(f):
                    raise SqlError(f"number out of range for {shown} ({declared.name}): {value}", v.pos)
                return f
            mismatch()
        if kind == "str":
            if lk == "string":
                return str(value)
            mismatch()
        if kind in ("identity", "connection_id", "bytes"):
            raw: bytes
            if lk == "hex":
                assert isinstance(value, bytes)
                raw = bytes(value)
            elif lk == "string" and str(value)[:2].lower() == "0x":
                try:
                    raw = bytes.fromhex(str(value)[2:])
                except ValueError:
                    mismatch(" (not hex)")
            else:
                mismatch()
            if kind == "bytes":
                return raw
            cls = Identity if kind == "identity" else ConnectionId
            if len(raw) != cls.SIZE:
                raise SqlError(
                    f"type mismatch: {shown} is {declared.name} ({cls.SIZE} bytes), got {len(raw)}"
                    f" byte{'s' if len(raw) != 1 else ''}", v.pos)
            try:
                return cls(raw)
            except ValueError as exc:
                raise SqlError(f"invalid {cls.__name__} for {shown}: {exc}", v.pos) from None
        if kind == "timestamp":
            if lk == "string":
                try:
                    return Timestamp.parse(str(value))
                except (ValueError, OverflowError):
                    raise SqlError(
                        f"invalid timestamp for {shown}: {value!r} (expected e.g. '2025-02-10T15:45:30Z')", v.pos
                    ) from None
            if lk == "int":
                assert isinstance(value, int)
                if not INT_MIN <= value <= INT_MAX:
                    raise SqlError(f"integer out of range for {shown} ({declared.name}): {value}", v.pos)
                return Timestamp(value)
            mismatch()
        if kind == "enum":
            if lk == "string":
                cls_e = t.enum_cls
                assert cls_e is not None
                try:
                    return cls_e[str(value)]
                except KeyError:
                    names = ", ".join(m.name for m in cls_e)
                    raise SqlError(f"unknown variant {value!r} for {shown} ({t.name} has {names})", v.pos) from None
            mismatch()
        raise SqlError(f"unsupported: comparing {shown} of type {declared.name}", v.pos)


def _list_names(names: list[str], conj: str) -> str:
    quoted = [f"`{n}`" for n in names]
    if len(quoted) <= 2:
        return f" {conj} ".join(quoted)
    return ", ".join(quoted[:-1]) + f" {conj} " + quoted[-1]


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
            key = _base(lt).sort_key
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
                lkey, rkey = _base(lt).sort_key, _base(rt).sort_key
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


# --------------------------------------------------------------------------- subscriptions

def check_subscription(text: str, tables: dict[str, TableDef], is_owner: bool, sender: Identity) -> SubscriptionPlan:
    """Parse and check a subscription query: ``SELECT * | t.* FROM t [WHERE …]`` or
    ``SELECT t.* FROM t JOIN u ON t.a = u.b [WHERE …]`` with both join columns
    indexed. ``SqlError`` (with ``text`` set) for anything else."""
    from db_core.sql.parser import parse

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
        gen = _Gen(lambda col: gen.attr("r", col))
        other_pred = gen.build("r", gen.expr(expr))
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
    from db_core.sql.parser import tokenize

    for tok in reversed(tokenize(text)):
        if tok.kind == "word" and tok.value.upper() == "LIMIT":
            return tok.pos
    return 0
