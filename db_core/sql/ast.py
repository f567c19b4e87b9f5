"""The SQL syntax tree, the SQL error, and a renderer back to SQL text.

The tree is what the parser saw, nothing more: names are not bound to tables
(the checker does that) and literals keep their original kind, so the checker
can say ``type mismatch: `online` is bool, got string``.

Every node is a frozen, slotted dataclass built from tuples, so a statement is
hashable. Positions (``pos``, a 0-based character offset into the SQL text)
take no part in equality or hashing: ``SELECT * FROM t`` and
``select *  from t`` parse to equal trees. Nodes that can be the subject of an
error carry a ``pos``; ``SqlError`` turns it into ``line L, column C``.

``to_sql(node)`` renders any node as canonical SQL that parses back to an equal
tree (identifiers are quoted only when they must be).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field

from db_core.errors import DbError

__all__ = [
    "SqlError", "format_position", "to_sql", "quote_ident", "RESERVED",
    "LiteralKind", "CompareOp", "COMPARE_OPS",
    "ColumnRef", "Literal", "Param", "Compare", "And", "Or",
    "Star", "ProjColumn", "CountStar", "TableRef", "Join",
    "Select", "Insert", "Assignment", "Update", "Delete",
    "Operand", "Value", "Expr", "Projection", "Statement",
]


# --------------------------------------------------------------------------- errors

def format_position(text: str, pos: int) -> str:
    """``"line L, column C"`` (both 1-based) for a 0-based offset into ``text``."""
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


class SqlError(DbError):
    """A query that cannot be run: bad syntax, an unsupported construct, or
    (from the checker) an unknown name or a type mismatch.

    ``message`` is the bare text (``unsupported: ORDER BY``); ``position`` the
    0-based offset it refers to, or ``None``; ``text`` the SQL source. When both
    are known, ``str()`` appends ``(at line L, column C)``. A caller that raises
    without the source may set ``err.text`` later, before showing it.
    """

    def __init__(self, message: str, position: int | None = None, text: str | None = None) -> None:
        super().__init__(message, position, text)
        self.message = message
        self.position = position
        self.text = text

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        if self.text is None:
            return f"{self.message} (at offset {self.position})"
        return f"{self.message} (at {format_position(self.text, self.position)})"


# --------------------------------------------------------------------------- nodes

LiteralKind = typing.Literal["int", "float", "string", "bool", "hex"]
CompareOp = typing.Literal["=", "!=", "<", ">", "<=", ">="]
COMPARE_OPS: tuple[str, ...] = ("=", "!=", "<", ">", "<=", ">=")


def _pos() -> typing.Any:
    # Where the node starts in the SQL text; -1 when built by hand.
    return field(default=-1, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """``name`` or ``table.name`` (``table`` is a table name or alias, unresolved)."""
    table: str | None
    name: str
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal as written. ``value`` is an ``int``, ``float``, ``str``, ``bool``
    or (for ``hex``: ``0x…``/``X'…'``) ``bytes``. Negative numbers are literals
    (``pos`` is that of the ``-``)."""
    kind: LiteralKind
    value: int | float | str | bool | bytes
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Param:
    """``:sender``; ``name`` is without the colon."""
    name: str
    pos: int = _pos()


Operand = ColumnRef | Literal | Param
Value = Literal | Param


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``; ``op`` is normalized (``<>`` -> ``!=``); ``pos`` is the operator's.
    At least one side is a ``ColumnRef``."""
    op: CompareOp
    left: Operand
    right: Operand
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr


Expr = Compare | And | Or


@dataclass(frozen=True, slots=True)
class Star:
    """``*`` (``table`` None) or ``t.*``."""
    table: str | None
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class ProjColumn:
    """``col [AS alias]`` in a select list."""
    col: ColumnRef
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class CountStar:
    """``COUNT(*) AS alias`` (the alias is required)."""
    alias: str
    pos: int = _pos()


# A select list is exactly one of: ``*``, ``t.*``, ``COUNT(*) AS n``, or columns.
Projection = Star | CountStar | tuple[ProjColumn, ...]


@dataclass(frozen=True, slots=True)
class TableRef:
    """A table in FROM/JOIN (with an optional alias) or the target of DML (no alias)."""
    name: str
    alias: str | None = None
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Join:
    """``JOIN table ON left = right`` (an inner equi-join); ``pos`` is the JOIN keyword's."""
    table: TableRef
    left: ColumnRef
    right: ColumnRef
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Select:
    projection: Projection
    from_: TableRef
    joins: tuple[Join, ...] = ()
    where: Expr | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Insert:
    """``INSERT INTO table [(columns)] VALUES rows``. Row lengths are not checked
    here (the checker compares them with the columns or the table)."""
    table: TableRef
    columns: tuple[ColumnRef, ...] | None
    rows: tuple[tuple[Value, ...], ...]


@dataclass(frozen=True, slots=True)
class Assignment:
    """``column = value`` in UPDATE … SET."""
    column: ColumnRef
    value: Value


@dataclass(frozen=True, slots=True)
class Update:
    table: TableRef
    assignments: tuple[Assignment, ...]
    where: Expr | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    table: TableRef
    where: Expr | None = None


Statement = Select | Insert | Update | Delete


# --------------------------------------------------------------------------- rendering

# Words that are keywords everywhere: an identifier spelled like one (in any
# case) must be "quoted". ``user`` and ``count`` are not reserved.
RESERVED: frozenset[str] = frozenset("""
    SELECT FROM WHERE JOIN INNER LEFT RIGHT FULL OUTER CROSS NATURAL ON USING AS
    AND OR NOT LIMIT OFFSET ORDER GROUP BY HAVING DISTINCT UNION INTERSECT EXCEPT
    INSERT INTO VALUES UPDATE SET DELETE RETURNING IN LIKE ILIKE IS NULL BETWEEN
    EXISTS CASE TRUE FALSE WITH
""".split())


def keyword(word: str) -> str:
    """The keyword an unquoted word spells (its upper case), or "" if it is not
    ASCII (so that e.g. ``ſelect`` stays an identifier)."""
    return word.upper() if word.isascii() else ""


def is_word_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def quote_ident(name: str) -> str:
    """``name`` as written in SQL: bare when it can be, else ``"quoted"``."""
    if name and is_word_start(name[0]) and all(map(is_word_char, name)) and keyword(name) not in RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def _literal_sql(lit: Literal) -> str:
    kind, v = lit.kind, lit.value
    if kind == "int":
        return str(int(v))
    if kind == "float":
        v = float(v)
        if math.isnan(v):
            raise ValueError("NaN has no SQL literal")
        if math.isinf(v):
            return "1e999" if v > 0 else "-1e999"
        return repr(v)
    if kind == "string":
        return "'" + str(v).replace("'", "''") + "'"
    if kind == "bool":
        return "TRUE" if v else "FALSE"
    if kind == "hex":
        return "0x" + bytes(v).hex() if v else "X''"  # type: ignore[arg-type]  # a hex literal holds bytes
    raise ValueError(f"unknown literal kind {kind!r}")


def _expr_sql(e: Expr) -> str:
    if isinstance(e, Compare):
        return f"{to_sql(e.left)} {e.op} {to_sql(e.right)}"
    if isinstance(e, And):
        left = _expr_sql(e.left)
        right = _expr_sql(e.right)
        if isinstance(e.left, Or):
            left = f"({left})"
        if isinstance(e.right, (And, Or)):
            right = f"({right})"
        return f"{left} AND {right}"
    if isinstance(e, Or):
        right = _expr_sql(e.right)
        if isinstance(e.right, Or):
            right = f"({right})"
        return f"{_expr_sql(e.left)} OR {right}"
    raise TypeError(f"not an expression: {e!r}")


def _projection_sql(p: Projection) -> str:
    if isinstance(p, (Star, CountStar)):
        return to_sql(p)
    return ", ".join(to_sql(item) for item in p)


def to_sql(node: object) -> str:
    """Render a statement or any node as SQL text that parses back to an equal node."""
    if isinstance(node, ColumnRef):
        name = quote_ident(node.name)
        return f"{quote_ident(node.table)}.{name}" if node.table is not None else name
    if isinstance(node, Literal):
        return _literal_sql(node)
    if isinstance(node, Param):
        return f":{node.name}"
    if isinstance(node, (Compare, And, Or)):
        return _expr_sql(node)
    if isinstance(node, Star):
        return "*" if node.table is None else f"{quote_ident(node.table)}.*"
    if isinstance(node, CountStar):
        return f"COUNT(*) AS {quote_ident(node.alias)}"
    if isinstance(node, ProjColumn):
        col = to_sql(node.col)
        return col if node.alias is None else f"{col} AS {quote_ident(node.alias)}"
    if isinstance(node, TableRef):
        name = quote_ident(node.name)
        return name if node.alias is None else f"{name} AS {quote_ident(node.alias)}"
    if isinstance(node, Join):
        return f"JOIN {to_sql(node.table)} ON {to_sql(node.left)} = {to_sql(node.right)}"
    if isinstance(node, Assignment):
        return f"{to_sql(node.column)} = {to_sql(node.value)}"
    if isinstance(node, Select):
        parts = ["SELECT", _projection_sql(node.projection), "FROM", to_sql(node.from_)]
        parts += [to_sql(j) for j in node.joins]
        if node.where is not None:
            parts += ["WHERE", _expr_sql(node.where)]
        if node.limit is not None:
            parts += ["LIMIT", str(node.limit)]
        return " ".join(parts)
    if isinstance(node, Insert):
        parts = ["INSERT INTO", to_sql(node.table)]
        if node.columns is not None:
            parts.append("(" + ", ".join(to_sql(c) for c in node.columns) + ")")
        rows = ", ".join("(" + ", ".join(to_sql(v) for v in row) + ")" for row in node.rows)
        parts += ["VALUES", rows]
        return " ".join(parts)
    if isinstance(node, Update):
        parts = ["UPDATE", to_sql(node.table), "SET", ", ".join(to_sql(a) for a in node.assignments)]
        if node.where is not None:
            parts += ["WHERE", _expr_sql(node.where)]
        return " ".join(parts)
    if isinstance(node, Delete):
        parts = ["DELETE FROM", to_sql(node.table)]
        if node.where is not None:
            parts += ["WHERE", _expr_sql(node.where)]
        return " ".join(parts)
    if isinstance(node, tuple):  # a select list of columns
        return _projection_sql(node)
    raise TypeError(f"not an SQL node: {node!r}")
