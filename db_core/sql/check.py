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

The plans are in ``db_core.sql.plan``; subscription queries are checked by
``db_core.sql.subscribe``.
"""

from __future__ import annotations

import math
import typing
from typing import Any

from db_core.schema import INT_MAX, INT_MIN, ColType, TableDef, col_type
from db_core.sql.ast import (
    And, ColumnRef, Compare, CompareOp, CountStar, Delete, Expr, Insert, Literal, Or, Param, ProjColumn,
    Select, SqlError, Star, Statement, TableRef, Update,
)
from db_core.sql.plan import (
    BAnd, BCompare, BExpr, BOr, BoundColumn, Const, DeletePlan, InsertPlan, JoinCond, Plan, SelectPlan, Source,
    UpdatePlan, value_type,
)
from db_core.types import ConnectionId, Identity, Timestamp

__all__ = ["check", "NotAuthorized", "COUNT_TYPE"]

COUNT_TYPE: ColType = col_type(int, "COUNT(*)")


class NotAuthorized(SqlError):
    """A caller other than the owner tried to run DML (``INSERT``/``UPDATE``/``DELETE``)."""


_LITERAL_KIND_NAMES = {"int": "integer", "float": "float", "string": "string", "bool": "bool", "hex": "bytes"}
_FLIP: dict[CompareOp, CompareOp] = {"=": "=", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


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
        t = value_type(col.type)
        if t.kind == "array":
            raise SqlError(f"unsupported: `{col.shown}` is {col.type.name}; list columns cannot be compared", pos)

    def comparable(self, a: BoundColumn, b: BoundColumn, pos: int) -> None:
        self.no_list(a, a.pos if a.pos >= 0 else pos)
        self.no_list(b, b.pos if b.pos >= 0 else pos)
        ta, tb = value_type(a.type), value_type(b.type)
        if ta.describe() == tb.describe():
            if ta.kind != "enum" or ta.enum_cls is tb.enum_cls:
                return
        elif {ta.kind, tb.kind} <= {"int", "float"}:
            return
        raise SqlError(f"type mismatch: `{a.shown}` is {a.type.name}, `{b.shown}` is {b.type.name}", pos)

    # ---------------------------------------------------------------- values

    def compare_value(self, v: Literal | Param, col: BoundColumn) -> Any:
        return self.convert(v, value_type(col.type), col.type, f"`{col.shown}`")

    def store_value(self, v: Literal | Param, t: ColType, shown: str) -> Any:
        if value_type(t).kind == "array":
            raise SqlError(f"unsupported: {shown} is {t.name}; SQL has no list values", v.pos)
        return self.convert(v, value_type(t), t, shown)

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
