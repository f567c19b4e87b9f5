"""SQL text -> syntax tree, for the supported subset only. Never sees a schema.

Grammar (keywords case-insensitive, identifiers case-sensitive)::

    statement  := (select | insert | update | delete) [";"]
    select     := SELECT projection FROM table_ref join* [WHERE pred] [LIMIT int]
    projection := "*" | name "." "*" | COUNT "(" "*" ")" AS name
                | column [AS name] ("," column [AS name])*
    table_ref  := name [[AS] name]
    join       := [INNER] JOIN table_ref ON column "=" column
    pred       := conj (OR conj)*
    conj       := atom (AND atom)*
    atom       := "(" pred ")" | operand cmp operand     -- at least one column
    operand    := column | literal | ":sender"
    column     := name ["." name]
    name       := word that is not reserved | "quoted" (a "" inside is one ")
    literal    := ["-"] int | ["-"] float | 'str''ing' | TRUE | FALSE | 0xHEX | X'HEX'
    insert     := INSERT INTO name ["(" name ("," name)* ")"] VALUES row ("," row)*
    row        := "(" value ("," value)* ")"          -- value := literal | ":sender"
    update     := UPDATE name SET name "=" value ("," name "=" value)* [WHERE pred]
    delete     := DELETE FROM name [WHERE pred]

Comments (``-- …`` and ``/* … */``) are skipped. Anything else raises
``SqlError``: ``syntax error: …`` or ``unsupported: …`` naming the construct.
"""

from __future__ import annotations

import typing

from db_core.sql.ast import (
    RESERVED, And, Assignment, ColumnRef, Compare, CompareOp, CountStar, Delete, Expr, Insert, Join, Literal, Or,
    Param, ProjColumn, Projection, Select, SqlError, Star, Statement, TableRef, Update, Value,
    format_position, keyword,
)
from db_core.sql.lexer import Token, syntax_error, tokenize

__all__ = ["parse", "SqlError", "format_position", "PARAMS", "MAX_NESTING", "MAX_COMPARISONS"]

# The parameters a query may use.
PARAMS = frozenset({"sender"})
# Bounds that keep the parser, and whoever walks its trees recursively, well
# inside Python's recursion limit.
MAX_NESTING = 64
MAX_COMPARISONS = 256

_CMP: dict[str, CompareOp] = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_ARITH = frozenset({"+", "-", "*", "/", "%", "||"})

# Statements we know by name, to say "unsupported" rather than "syntax error".
_OTHER_STATEMENTS = frozenset("""
    CREATE DROP ALTER TRUNCATE EXPLAIN SHOW BEGIN COMMIT ROLLBACK START GRANT REVOKE
    REPLACE UPSERT MERGE COPY VACUUM ANALYZE PRAGMA ATTACH DETACH CALL DO SET USE
""".split())
_JOIN_WORDS = frozenset({"LEFT", "RIGHT", "FULL", "CROSS", "NATURAL", "OUTER", "INNER"})
_PLAIN_UNSUPPORTED = frozenset({
    "HAVING", "OFFSET", "DISTINCT", "UNION", "INTERSECT", "EXCEPT", "RETURNING", "EXISTS", "CASE",
    "NULL", "IN", "LIKE", "ILIKE", "BETWEEN",
})


def parse(text: str) -> Statement:
    """Parse one SQL statement (an optional trailing ``;`` is allowed)."""
    return _Parser(text).statement()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.nesting = 0
        self.comparisons = 0

    # ---------------------------------------------------------------- helpers

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    @staticmethod
    def is_kw(t: Token, *words: str) -> bool:
        return t.kind == "word" and keyword(t.value) in words

    def at_kw(self, *words: str) -> bool:
        return self.is_kw(self.tok, *words)

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def accept_kw(self, word: str) -> Token | None:
        return self.advance() if self.at_kw(word) else None

    def accept_op(self, op: str) -> Token | None:
        return self.advance() if self.at_op(op) else None

    def expect_kw(self, word: str) -> Token:
        if not self.at_kw(word):
            self.fail(word)
        return self.advance()

    def expect_op(self, op: str) -> Token:
        if not self.at_op(op):
            self.fail(f"`{op}`")
        return self.advance()

    def is_name(self, t: Token) -> bool:
        return t.kind == "qident" or (t.kind == "word" and keyword(t.value) not in RESERVED)

    def name(self, what: str) -> str:
        t = self.tok
        if not self.is_name(t):
            self.fail(what)
        self.advance()
        name: str = t.value
        return name

    def describe(self, t: Token) -> str:
        if t.kind == "eof":
            return "end of input"
        raw = self.text[t.pos:t.end]
        if len(raw) > 30:
            raw = raw[:27] + "..."
        return f"`{raw}`"

    def unsupported(self, what: str, pos: int) -> typing.NoReturn:
        raise SqlError(f"unsupported: {what}", pos, self.text)

    def fail(self, expected: str) -> typing.NoReturn:
        """Refuse the current token: an unsupported construct if it starts one we
        know, else ``expected …, got …``."""
        self.check_unsupported()
        t = self.tok
        raise syntax_error(self.text, f"expected {expected}, got {self.describe(t)}", t.pos)

    def check_unsupported(self) -> None:
        t = self.tok
        if t.kind == "op":
            if t.value == "(" and self.is_kw(self.peek(), "SELECT"):
                self.unsupported("subquery", t.pos)
            if t.value == "::":
                self.unsupported("`::` casts", t.pos)
            return
        if t.kind != "word":
            return
        word = keyword(t.value)
        nxt = self.peek()
        if word in ("ORDER", "GROUP"):
            self.unsupported(f"{word} BY", t.pos)
        if word in _PLAIN_UNSUPPORTED:
            self.unsupported(word, t.pos)
        if word in _JOIN_WORDS:
            words = []
            k = 0
            while self.is_kw(self.peek(k), *_JOIN_WORDS):
                words.append(self.peek(k).value.upper())
                k += 1
            if word != "INNER" or self.is_kw(self.peek(k), "JOIN"):
                self.unsupported(" ".join(words + ["JOIN"]), t.pos)
            return
        if word == "USING":
            self.unsupported("JOIN ... USING", t.pos)
        if word == "IS":
            if self.is_kw(nxt, "NOT") and self.is_kw(self.peek(2), "NULL"):
                self.unsupported("IS NOT NULL", t.pos)
            self.unsupported("IS NULL" if self.is_kw(nxt, "NULL") else "IS", t.pos)
        if word == "NOT":
            if self.is_kw(nxt, "IN", "LIKE", "ILIKE", "BETWEEN", "EXISTS"):
                self.unsupported(f"NOT {nxt.value.upper()}", t.pos)
            self.unsupported("NOT", t.pos)

    def no_arithmetic(self) -> None:
        if self.at_op(*_ARITH):
            self.unsupported("arithmetic", self.tok.pos)

    # ---------------------------------------------------------------- statements

    def statement(self) -> Statement:
        t = self.tok
        stmt: Statement
        if self.at_kw("SELECT"):
            stmt = self.select()
        elif self.at_kw("INSERT"):
            stmt = self.insert()
        elif self.at_kw("UPDATE"):
            stmt = self.update()
        elif self.at_kw("DELETE"):
            stmt = self.delete()
        elif self.at_kw("WITH"):
            self.unsupported("WITH", t.pos)
        elif t.kind == "word" and keyword(t.value) in _OTHER_STATEMENTS:
            self.unsupported(f"{t.value.upper()} statements", t.pos)
        else:
            self.fail("SELECT, INSERT, UPDATE or DELETE")
        if self.accept_op(";") and self.tok.kind != "eof":
            self.unsupported("multiple statements", self.tok.pos)
        if self.tok.kind != "eof":
            self.fail("end of input")
        return stmt

    def select(self) -> Select:
        self.advance()  # SELECT
        projection = self.projection()
        self.expect_kw("FROM")
        from_ = self.table_ref(alias=True)
        joins: list[Join] = []
        while True:
            self.no_comma_join()
            if not (self.at_kw("JOIN") or (self.at_kw("INNER") and self.is_kw(self.peek(), "JOIN"))):
                break
            joins.append(self.join())
        where = self.predicate() if self.accept_kw("WHERE") else None
        limit = None
        if self.accept_kw("LIMIT"):
            t = self.tok
            if t.kind != "int":
                self.fail("a non-negative integer")
            self.advance()
            limit = t.value
            if self.at_op(","):
                self.unsupported("OFFSET", self.tok.pos)
        return Select(projection, from_, tuple(joins), where, limit)

    def no_comma_join(self) -> None:
        if self.at_op(","):
            self.unsupported("several tables in FROM separated by commas (use JOIN ... ON)", self.tok.pos)

    def join(self) -> Join:
        start = self.advance()  # JOIN or INNER
        if start.value.upper() == "INNER":
            self.advance()
        table = self.table_ref(alias=True)
        self.expect_kw("ON")
        left = self.operand()
        t = self.tok
        if t.kind == "op" and t.value in _CMP and t.value != "=":
            self.unsupported("join condition other than column = column", t.pos)
        self.expect_op("=")
        right = self.operand()
        for side in (left, right):
            if not isinstance(side, ColumnRef):
                self.unsupported("join condition other than column = column", side.pos)
        self.no_arithmetic()
        if self.at_kw("AND", "OR"):
            self.unsupported("join condition other than column = column", self.tok.pos)
        return Join(table, left, right, start.pos)  # type: ignore[arg-type]  # both ColumnRefs: checked above

    def table_ref(self, alias: bool) -> TableRef:
        t = self.tok
        name = self.name("a table name")
        if self.at_op("."):
            self.unsupported("qualified table names", t.pos)
        as_name = None
        if alias:
            if self.accept_kw("AS"):
                as_name = self.name("an alias")
            elif self.is_name(self.tok):
                as_name = self.name("an alias")
        return TableRef(name, as_name, t.pos)

    def projection(self) -> Projection:
        items = [self.proj_item()]
        while self.accept_op(","):
            items.append(self.proj_item())
        if len(items) == 1 and isinstance(items[0], (Star, CountStar)):
            return items[0]
        for item in items:
            if isinstance(item, Star):
                self.unsupported("mixing * with other columns", item.pos)
            if isinstance(item, CountStar):
                self.unsupported("COUNT(*) with other columns", item.pos)
        return tuple(items)  # type: ignore[arg-type]  # Star, CountStar refused above

    def proj_item(self) -> Star | CountStar | ProjColumn:
        t = self.tok
        if self.accept_op("*"):
            return Star(None, t.pos)
        if t.kind == "word" and self.is_name(t) and self.peek().kind == "op" and self.peek().value == "(":
            if keyword(t.value) != "COUNT":
                self.unsupported(f"function `{t.value}`", t.pos)
            self.advance()
            self.advance()  # COUNT (
            if not self.accept_op("*"):
                if self.at_kw("DISTINCT"):
                    self.unsupported("COUNT(DISTINCT ...)", self.tok.pos)
                self.unsupported("COUNT(...) other than COUNT(*)", self.tok.pos)
            self.expect_op(")")
            self.expect_kw("AS")
            return CountStar(self.name("an alias"), t.pos)
        if t.kind in ("int", "float", "string", "hex", "param") or self.is_kw(t, "TRUE", "FALSE") or self.at_op("-"):
            self.unsupported("literals in the select list", t.pos)
        col = self.column(star=True)
        if isinstance(col, Star):
            return col
        self.no_arithmetic()
        alias = self.name("an alias") if self.accept_kw("AS") else None
        return ProjColumn(col, alias)

    def column(self, star: bool = False) -> ColumnRef | Star:
        t = self.tok
        first = self.name("a column name")
        if not self.accept_op("."):
            return ColumnRef(None, first, t.pos)
        if star and self.accept_op("*"):
            return Star(first, t.pos)
        name = self.name("a column name")
        if self.at_op("."):
            self.unsupported("names with more than one qualifier", t.pos)
        return ColumnRef(first, name, t.pos)

    def insert(self) -> Insert:
        self.advance()  # INSERT
        self.expect_kw("INTO")
        table = self.table_ref(alias=False)
        columns = None
        if self.accept_op("("):
            cols = []
            while True:
                t = self.tok
                cols.append(ColumnRef(None, self.name("a column name"), t.pos))
                if not self.accept_op(","):
                    break
            self.expect_op(")")
            columns = tuple(cols)
        if self.at_kw("SELECT"):
            self.unsupported("INSERT ... SELECT", self.tok.pos)
        self.expect_kw("VALUES")
        rows = []
        while True:
            self.expect_op("(")
            row = [self.value()]
            while self.accept_op(","):
                row.append(self.value())
            self.expect_op(")")
            rows.append(tuple(row))
            if not self.accept_op(","):
                break
        return Insert(table, columns, tuple(rows))

    def update(self) -> Update:
        self.advance()  # UPDATE
        table = self.table_ref(alias=False)
        self.expect_kw("SET")
        assignments = []
        while True:
            t = self.tok
            col = ColumnRef(None, self.name("a column name"), t.pos)
            self.expect_op("=")
            assignments.append(Assignment(col, self.value()))
            if not self.accept_op(","):
                break
        where = self.predicate() if self.accept_kw("WHERE") else None
        return Update(table, tuple(assignments), where)

    def delete(self) -> Delete:
        self.advance()  # DELETE
        self.expect_kw("FROM")
        table = self.table_ref(alias=False)
        where = self.predicate() if self.accept_kw("WHERE") else None
        return Delete(table, where)

    # ---------------------------------------------------------------- expressions

    def predicate(self) -> Expr:
        left = self.conjunction()
        while self.accept_kw("OR"):
            left = Or(left, self.conjunction())
        return left

    def conjunction(self) -> Expr:
        left = self.atom()
        while self.accept_kw("AND"):
            left = And(left, self.atom())
        return left

    def atom(self) -> Expr:
        if self.at_op("(") and not self.is_kw(self.peek(), "SELECT"):
            self.nesting += 1
            if self.nesting > MAX_NESTING:
                self.unsupported(f"parentheses nested more than {MAX_NESTING} deep", self.tok.pos)
            self.advance()
            e = self.predicate()
            self.expect_op(")")
            self.nesting -= 1
            return e
        return self.comparison()

    def comparison(self) -> Compare:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            self.unsupported(f"more than {MAX_COMPARISONS} comparisons in one statement", self.tok.pos)
        left = self.operand()
        self.no_arithmetic()
        t = self.tok
        if not (t.kind == "op" and t.value in _CMP):
            self.fail("a comparison operator")
        self.advance()
        right = self.operand()
        self.no_arithmetic()
        if not isinstance(left, ColumnRef) and not isinstance(right, ColumnRef):
            self.unsupported("comparison of two values (one side must be a column)", left.pos)
        return Compare(_CMP[t.value], left, right, t.pos)

    def operand(self) -> ColumnRef | Literal | Param:
        v = self.literal()
        if v is not None:
            return v
        t = self.tok
        if self.is_name(t):
            nxt = self.peek()
            if t.kind == "word" and nxt.kind == "op" and nxt.value == "(":
                if keyword(t.value) == "COUNT":
                    self.unsupported("COUNT(*) outside the select list", t.pos)
                self.unsupported(f"function `{t.value}`", t.pos)
            return self.column()  # type: ignore[return-value]  # a ColumnRef is an Operand
        self.fail("a column or a literal")

    def value(self) -> Value:
        v = self.literal()
        if v is None:
            self.fail("a literal")
        self.no_arithmetic()
        return v

    def literal(self) -> Literal | Param | None:
        """A literal or parameter at the current token, or None if there is none."""
        t = self.tok
        kind = t.kind
        if kind in ("int", "float", "string", "hex"):
            self.advance()
            return Literal(kind, t.value, t.pos)
        if self.is_kw(t, "TRUE", "FALSE"):
            self.advance()
            return Literal("bool", t.value.upper() == "TRUE", t.pos)
        if kind == "param":
            if t.value not in PARAMS:
                self.unsupported(f"parameter `:{t.value}` (only :sender is defined)", t.pos)
            self.advance()
            return Param(t.value, t.pos)
        if kind == "op" and t.value in ("-", "+"):
            nxt = self.peek()
            if t.value == "-" and nxt.kind in ("int", "float"):
                self.advance()
                self.advance()
                return Literal("int" if nxt.kind == "int" else "float", -nxt.value, t.pos)
            self.unsupported("arithmetic", t.pos)
        return None
