"""The SQL parser: text -> AST for the supported subset; everything else refused by name."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_core.errors import DbError
from db_core.sql.ast import (
    And, Assignment, ColumnRef, Compare, CountStar, Delete, Insert, Join, Literal, Or, Param, ProjColumn,
    Select, SqlError, Star, TableRef, Update, format_position, quote_ident, to_sql,
)
from db_core.sql.lexer import tokenize
from db_core.sql.parser import parse


def col(name: str, table: str | None = None) -> ColumnRef:
    return ColumnRef(table, name)


def lit(kind: str, value: object) -> Literal:
    return Literal(kind, value)


def cmp(left: object, op: str, right: object) -> Compare:
    return Compare(op, left, right)


def select_star(table: str = "t", **kw: object) -> Select:
    return Select(Star(None), TableRef(table), **kw)


# --------------------------------------------------------------------------- SELECT

@pytest.mark.parametrize("sql, expected", [
    ("SELECT * FROM t", select_star()),
    ("select * from t", select_star()),
    ("SeLeCt * FrOm t", select_star()),
    ("SELECT * FROM user", select_star("user")),
    ("SELECT * FROM User", select_star("User")),
    ('SELECT * FROM "select"', select_star("select")),
    ('SELECT * FROM "a""b"', select_star('a"b')),
    ('SELECT * FROM "my table"', select_star("my table")),
    ("SELECT * FROM t;", select_star()),
    ("  SELECT * FROM t ;  \n", select_star()),
    ("SELECT * FROM t; -- done", select_star()),
    ("SELECT /* all */ * FROM -- the table\n t", select_star()),
    ("SELECT t.* FROM t", Select(Star("t"), TableRef("t"))),
    ('SELECT "t".* FROM t', Select(Star("t"), TableRef("t"))),
    ("SELECT * FROM t AS a", Select(Star(None), TableRef("t", "a"))),
    ("SELECT * FROM t a", Select(Star(None), TableRef("t", "a"))),
    ('SELECT * FROM t "where"', Select(Star(None), TableRef("t", "where"))),
    ("SELECT name FROM t", Select((ProjColumn(col("name")),), TableRef("t"))),
    ("SELECT Name, NAME FROM t", Select((ProjColumn(col("Name")), ProjColumn(col("NAME"))), TableRef("t"))),
    ("SELECT a, b AS c, t.d, t.e AS f FROM t",
     Select((ProjColumn(col("a")), ProjColumn(col("b"), "c"), ProjColumn(col("d", "t")),
             ProjColumn(col("e", "t"), "f")), TableRef("t"))),
    ('SELECT "from" AS "select" FROM t', Select((ProjColumn(col("from"), "select"),), TableRef("t"))),
    ("SELECT count FROM t", Select((ProjColumn(col("count")),), TableRef("t"))),
    ("SELECT COUNT(*) AS n FROM t", Select(CountStar("n"), TableRef("t"))),
    ("select count ( * ) as n from t", Select(CountStar("n"), TableRef("t"))),
    ("SELECT * FROM t LIMIT 0", select_star(limit=0)),
    ("SELECT * FROM t limit 10", select_star(limit=10)),
    ("SELECT * FROM t LIMIT 123456789012345678901234567890",
     select_star(limit=123456789012345678901234567890)),
    ("SELECT * FROM t WHERE a = 1 LIMIT 5", select_star(where=cmp(col("a"), "=", lit("int", 1)), limit=5)),
])
def test_select(sql: str, expected: Select) -> None:
    assert parse(sql) == expected


def test_joins() -> None:
    assert parse("SELECT m.* FROM message m JOIN user AS u ON m.sender = u.identity") == Select(
        Star("m"), TableRef("message", "m"),
        (Join(TableRef("user", "u"), col("sender", "m"), col("identity", "u")),),
    )
    assert parse(
        "SELECT a.x, c.z AS zz FROM a INNER JOIN b ON a.id = b.a_id join c on b.id = c.b_id "
        "WHERE c.z > 3 LIMIT 2"
    ) == Select(
        (ProjColumn(col("x", "a")), ProjColumn(col("z", "c"), "zz")), TableRef("a"),
        (Join(TableRef("b"), col("id", "a"), col("a_id", "b")),
         Join(TableRef("c"), col("id", "b"), col("b_id", "c"))),
        cmp(col("z", "c"), ">", lit("int", 3)), 2,
    )
    # Unqualified join columns are left for the checker to resolve.
    assert parse("SELECT * FROM a JOIN b ON x = y").joins == (Join(TableRef("b"), col("x"), col("y")),)
    assert parse("SELECT * FROM a JOIN a ON a.x = a.y").joins[0].table == TableRef("a")


# --------------------------------------------------------------------------- predicates

@pytest.mark.parametrize("op, normal", [
    ("=", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), (">", ">"), ("<=", "<="), (">=", ">="),
])
def test_comparison_operators(op: str, normal: str) -> None:
    assert parse(f"SELECT * FROM t WHERE a {op} 1").where == cmp(col("a"), normal, lit("int", 1))
    assert parse(f"SELECT * FROM t WHERE a{op}b").where == cmp(col("a"), normal, col("b"))
    assert parse(f"SELECT * FROM t WHERE 1 {op} t.a").where == cmp(lit("int", 1), normal, col("a", "t"))


def where(pred: str) -> object:
    return parse(f"SELECT * FROM t WHERE {pred}").where


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (cmp(col(n), "=", lit("int", i)) for i, n in enumerate("abc"))
    assert where("a = 0 OR b = 1 AND c = 2") == Or(a, And(b, c))
    assert where("a = 0 AND b = 1 OR c = 2") == Or(And(a, b), c)
    assert where("(a = 0 OR b = 1) AND c = 2") == And(Or(a, b), c)
    assert where("a = 0 or b = 1 or c = 2") == Or(Or(a, b), c)
    assert where("a = 0 and b = 1 and c = 2") == And(And(a, b), c)
    assert where("a = 0 AND (b = 1 AND c = 2)") == And(a, And(b, c))
    assert where("((a = 0))") == a


@pytest.mark.parametrize("text, kind, value", [
    ("0", "int", 0),
    ("42", "int", 42),
    ("-7", "int", -7),
    ("- 7", "int", -7),
    ("123456789012345678901234567890123456789", "int", 123456789012345678901234567890123456789),
    ("-340282366920938463463374607431768211456", "int", -(2 ** 128)),
    ("1.5", "float", 1.5),
    ("-2e3", "float", -2000.0),
    ("1E+3", "float", 1000.0),
    ("2.5e-3", "float", 0.0025),
    ("1e999", "float", float("inf")),
    ("'hello'", "string", "hello"),
    ("'it''s'", "string", "it's"),
    ("''", "string", ""),
    ("'2025-02-10T15:45:30Z'", "string", "2025-02-10T15:45:30Z"),
    ("'a -- not a comment /* nor this */'", "string", "a -- not a comment /* nor this */"),
    ("'line\nbreak'", "string", "line\nbreak"),
    ("TRUE", "bool", True),
    ("true", "bool", True),
    ("False", "bool", False),
    ("0xDEADbeef", "hex", b"\xde\xad\xbe\xef"),
    ("0X00ff", "hex", b"\x00\xff"),
    ("X'00ff'", "hex", b"\x00\xff"),
    ("x'AB'", "hex", b"\xab"),
    ("X''", "hex", b""),
])
def test_literals(text: str, kind: str, value: object) -> None:
    w = where(f"a = {text}")
    assert isinstance(w, Compare) and isinstance(w.right, Literal)
    assert w.right.kind == kind
    assert w.right.value == value
    assert type(w.right.value) is type(value)


def test_sender_parameter() -> None:
    assert where("sender = :sender") == cmp(col("sender"), "=", Param("sender"))
    assert where(":sender = m.sender") == cmp(Param("sender"), "=", col("sender", "m"))


def test_identifier_quoting_and_keywords() -> None:
    assert where('"where" = 1') == cmp(col("where"), "=", lit("int", 1))
    assert where('"a b"."c""d" = 1') == cmp(col('c"d', "a b"), "=", lit("int", 1))
    assert where("user.identity = 0x01") == cmp(col("identity", "user"), "=", lit("hex", b"\x01"))
    assert where("_x1 = ünï") == cmp(col("_x1"), "=", col("ünï"))


# --------------------------------------------------------------------------- DML

def test_insert() -> None:
    assert parse("INSERT INTO t VALUES (1)") == Insert(TableRef("t"), None, ((lit("int", 1),),))
    text = "insert into user (identity, name, online) values (:sender, 'bob', true), (0x01, 'x', FALSE);"
    assert parse(text) == Insert(
        TableRef("user"), (col("identity"), col("name"), col("online")),
        ((Param("sender"), lit("string", "bob"), lit("bool", True)),
         (lit("hex", b"\x01"), lit("string", "x"), lit("bool", False))),
    )
    # Arity is the checker's business.
    assert parse("INSERT INTO t (a) VALUES (1, -2.5), (3)").rows == (
        (lit("int", 1), lit("float", -2.5)), (lit("int", 3),))


def test_update() -> None:
    assert parse("UPDATE t SET a = 1") == Update(TableRef("t"), (Assignment(col("a"), lit("int", 1)),))
    assert parse("update user set name = 'x', online = false where identity = :sender") == Update(
        TableRef("user"),
        (Assignment(col("name"), lit("string", "x")), Assignment(col("online"), lit("bool", False))),
        cmp(col("identity"), "=", Param("sender")),
    )


def test_delete() -> None:
    assert parse("DELETE FROM t") == Delete(TableRef("t"))
    assert parse("delete from t where a > 1 or b = 'x'") == Delete(
        TableRef("t"), Or(cmp(col("a"), ">", lit("int", 1)), cmp(col("b"), "=", lit("string", "x"))))


# --------------------------------------------------------------------------- positions, equality

def test_positions() -> None:
    sql = ("SELECT u.name AS n FROM user u\n  JOIN message m ON u.identity = m.sender\n"
           "WHERE m.text = 'hi' AND -5 < u.age")
    s = parse(sql)
    assert isinstance(s, Select) and isinstance(s.projection, tuple)
    assert s.projection[0].col.pos == sql.index("u.name")
    assert s.from_.pos == sql.index("user")
    j = s.joins[0]
    assert j.pos == sql.index("JOIN")
    assert j.table.pos == sql.index("message")
    assert j.left.pos == sql.index("u.identity")
    assert j.right.pos == sql.index("m.sender")
    assert isinstance(s.where, And)
    first, second = s.where.left, s.where.right
    assert isinstance(first, Compare) and isinstance(second, Compare)
    assert first.pos == sql.index("= 'hi'")
    assert first.right.pos == sql.index("'hi'")
    assert second.left.pos == sql.index("-5")
    assert format_position(sql, second.left.pos) == "line 3, column 25"
    c = parse("SELECT COUNT(*) AS n FROM t")
    assert isinstance(c, Select) and isinstance(c.projection, CountStar) and c.projection.pos == 7
    assert parse("INSERT INTO t (a, b) VALUES (:sender, 1)").columns[1].pos == 18


def test_positions_do_not_affect_equality_and_nodes_are_hashable() -> None:
    a = parse("SELECT * FROM t WHERE a = 1")
    b = parse("select *\n  from t\n  where a=1 ;")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, parse("SELECT * FROM t WHERE a = 2")}) == 2
    assert ColumnRef(None, "a", 5) == ColumnRef(None, "a", 9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.limit = 3


def test_format_position() -> None:
    assert format_position("", 0) == "line 1, column 1"
    assert format_position("abc", 3) == "line 1, column 4"
    assert format_position("ab\ncd", 3) == "line 2, column 1"
    assert format_position("ab\ncd", 4) == "line 2, column 2"
    assert format_position("a\n\nb", 3) == "line 3, column 1"


def test_sql_error() -> None:
    with pytest.raises(SqlError) as info:
        parse("SELECT * FROM t ORDER BY a")
    err = info.value
    assert isinstance(err, DbError)
    assert err.message == "unsupported: ORDER BY"
    assert err.position == 16
    assert err.text == "SELECT * FROM t ORDER BY a"
    assert str(err) == "unsupported: ORDER BY (at line 1, column 17)"
    assert str(SqlError("no such table: `x`")) == "no such table: `x`"
    late = SqlError("unknown column `c`", 7)
    assert str(late) == "unknown column `c` (at offset 7)"
    late.text = "SELECT c FROM t"
    assert str(late) == "unknown column `c` (at line 1, column 8)"


# --------------------------------------------------------------------------- errors

ERRORS = [
    # syntax
    ("", "syntax error: expected SELECT, INSERT, UPDATE or DELETE, got end of input (at line 1, column 1)"),
    ("  -- nothing", "syntax error: expected SELECT, INSERT, UPDATE or DELETE, got end of input (at line 1, column 1)"),
    ("SELEC * FROM t", "syntax error: expected SELECT, INSERT, UPDATE or DELETE, got `SELEC` (at line 1, column 1)"),
    ("SELECT *", "syntax error: expected FROM, got end of input (at line 1, column 9)"),
    ("SELECT *  \n", "syntax error: expected FROM, got end of input (at line 1, column 9)"),
    ("SELECT * FROM", "syntax error: expected a table name, got end of input (at line 1, column 14)"),
    ("SELECT * FROM select", "syntax error: expected a table name, got `select` (at line 1, column 15)"),
    ("SELECT * FROM t AS", "syntax error: expected an alias, got end of input (at line 1, column 19)"),
    ("SELECT * FROM t x y", "syntax error: expected end of input, got `y` (at line 1, column 19)"),
    ("SELECT a AS FROM t", "syntax error: expected an alias, got `FROM` (at line 1, column 13)"),
    ("SELECT FROM t", "syntax error: expected a column name, got `FROM` (at line 1, column 8)"),
    ("SELECT a, FROM t", "syntax error: expected a column name, got `FROM` (at line 1, column 11)"),
    ("SELECT a b FROM t", "syntax error: expected FROM, got `b` (at line 1, column 10)"),
    ("SELECT COUNT(*) FROM t", "syntax error: expected AS, got `FROM` (at line 1, column 17)"),
    ("SELECT COUNT(* AS n FROM t", "syntax error: expected `)`, got `AS` (at line 1, column 16)"),
    ("SELECT * FROM t WHERE", "syntax error: expected a column or a literal, got end of input (at line 1, column 22)"),
    ("SELECT * FROM t WHERE a",
     "syntax error: expected a comparison operator, got end of input (at line 1, column 24)"),
    ("SELECT * FROM t WHERE a == 1", "syntax error: expected a column or a literal, got `=` (at line 1, column 26)"),
    ("SELECT * FROM t WHERE (a = 1", "syntax error: expected `)`, got end of input (at line 1, column 29)"),
    ("SELECT * FROM t WHERE a = 1 -- note\n  AND",
     "syntax error: expected a column or a literal, got end of input (at line 2, column 6)"),
    ("SELECT * FROM t WHERE t.* = 1", "syntax error: expected a column name, got `*` (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a = 1 b", "syntax error: expected end of input, got `b` (at line 1, column 29)"),
    ("SELECT * FROM t LIMIT", "syntax error: expected a non-negative integer, got end of input (at line 1, column 22)"),
    ("SELECT * FROM t LIMIT -1", "syntax error: expected a non-negative integer, got `-` (at line 1, column 23)"),
    ("SELECT * FROM t LIMIT 1.5", "syntax error: expected a non-negative integer, got `1.5` (at line 1, column 23)"),
    ("SELECT * FROM t LIMIT :sender",
     "syntax error: expected a non-negative integer, got `:sender` (at line 1, column 23)"),
    ("SELECT * FROM t LIMIT 1 LIMIT 2", "syntax error: expected end of input, got `LIMIT` (at line 1, column 25)"),
    ("SELECT * FROM a JOIN b", "syntax error: expected ON, got end of input (at line 1, column 23)"),
    ("SELECT * FROM a JOIN b ON a.x", "syntax error: expected `=`, got end of input (at line 1, column 30)"),
    ("SELECT * FROM t WHERE a = 1 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
     "syntax error: expected end of input, got `'aaaaaaaaaaaaaaaaaaaaaaaaaa...` (at line 1, column 29)"),
    # lexical
    ("SELECT * FROM t WHERE a = 'abc", "syntax error: unterminated string (at line 1, column 27)"),
    ("SELECT *\nFROM t\nWHERE a = 'it''s\n", "syntax error: unterminated string (at line 3, column 11)"),
    ('SELECT "abc FROM t', "syntax error: unterminated quoted identifier (at line 1, column 8)"),
    ('SELECT * FROM ""', "syntax error: empty quoted identifier (at line 1, column 15)"),
    ("SELECT * FROM t /* x", "syntax error: unterminated comment (at line 1, column 17)"),
    ("SELECT * FROM t WHERE a = 0x", "syntax error: invalid hex literal (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = 0xag", "syntax error: invalid hex literal (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = 0xabc", "syntax error: hex literal has an odd number of digits (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = X'zz'", "syntax error: invalid hex literal (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = X'a'", "syntax error: hex literal has an odd number of digits (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = X'ab", "syntax error: unterminated hex literal (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = 12abc", "syntax error: invalid number `12abc` (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = 1e", "syntax error: invalid number `1e` (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = 1 & 2", "syntax error: unexpected character `&` (at line 1, column 29)"),
    ("SELECT * FROM t WHERE a = ?", "syntax error: unexpected character `?` (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = 1\x00", "syntax error: unexpected character '\\x00' (at line 1, column 28)"),
    ("SELECT * FROM t WHERE a = " + "9" * 5000, "syntax error: integer literal is too long (at line 1, column 27)"),
    # unsupported clauses
    ("SELECT * FROM t ORDER BY a", "unsupported: ORDER BY (at line 1, column 17)"),
    ("SELECT * FROM t WHERE a = 1 order by a", "unsupported: ORDER BY (at line 1, column 29)"),
    ("SELECT * FROM t GROUP BY a", "unsupported: GROUP BY (at line 1, column 17)"),
    ("SELECT * FROM t HAVING a = 1", "unsupported: HAVING (at line 1, column 17)"),
    ("SELECT * FROM t LIMIT 5 OFFSET 2", "unsupported: OFFSET (at line 1, column 25)"),
    ("SELECT * FROM t OFFSET 2", "unsupported: OFFSET (at line 1, column 17)"),
    ("SELECT * FROM t LIMIT 5, 2", "unsupported: OFFSET (at line 1, column 24)"),
    ("SELECT DISTINCT a FROM t", "unsupported: DISTINCT (at line 1, column 8)"),
    ("SELECT * FROM t UNION SELECT * FROM s", "unsupported: UNION (at line 1, column 17)"),
    ("SELECT * FROM t; SELECT * FROM s", "unsupported: multiple statements (at line 1, column 18)"),
    ("DELETE FROM t;\nDELETE FROM s;", "unsupported: multiple statements (at line 2, column 1)"),
    ("SELECT * FROM t;;", "unsupported: multiple statements (at line 1, column 17)"),
    ("CREATE TABLE t (a int)", "unsupported: CREATE statements (at line 1, column 1)"),
    ("drop table t", "unsupported: DROP statements (at line 1, column 1)"),
    ("WITH x AS (SELECT * FROM t) SELECT * FROM x", "unsupported: WITH (at line 1, column 1)"),
    # joins
    ("SELECT * FROM a LEFT JOIN b ON a.x = b.y", "unsupported: LEFT JOIN (at line 1, column 17)"),
    ("SELECT * FROM a left outer join b ON a.x = b.y", "unsupported: LEFT OUTER JOIN (at line 1, column 17)"),
    ("SELECT * FROM a RIGHT JOIN b ON a.x = b.y", "unsupported: RIGHT JOIN (at line 1, column 17)"),
    ("SELECT * FROM a FULL OUTER JOIN b ON a.x = b.y", "unsupported: FULL OUTER JOIN (at line 1, column 17)"),
    ("SELECT * FROM a OUTER JOIN b ON a.x = b.y", "unsupported: OUTER JOIN (at line 1, column 17)"),
    ("SELECT * FROM a CROSS JOIN b", "unsupported: CROSS JOIN (at line 1, column 17)"),
    ("SELECT * FROM a NATURAL JOIN b", "unsupported: NATURAL JOIN (at line 1, column 17)"),
    ("SELECT * FROM a JOIN b ON a.x = b.y LEFT JOIN c ON c.z = b.y", "unsupported: LEFT JOIN (at line 1, column 37)"),
    ("SELECT * FROM a JOIN b USING (x)", "unsupported: JOIN ... USING (at line 1, column 24)"),
    ("SELECT * FROM a, b",
     "unsupported: several tables in FROM separated by commas (use JOIN ... ON) (at line 1, column 16)"),
    ("SELECT * FROM a JOIN b ON a.x < b.y",
     "unsupported: join condition other than column = column (at line 1, column 31)"),
    ("SELECT * FROM a JOIN b ON a.x = 1",
     "unsupported: join condition other than column = column (at line 1, column 33)"),
    ("SELECT * FROM a JOIN b ON a.x = b.y AND a.z = b.w",
     "unsupported: join condition other than column = column (at line 1, column 37)"),
    # projections
    ("SELECT *, a FROM t", "unsupported: mixing * with other columns (at line 1, column 8)"),
    ("SELECT a, t.* FROM t", "unsupported: mixing * with other columns (at line 1, column 11)"),
    ("SELECT COUNT(*) AS n, a FROM t", "unsupported: COUNT(*) with other columns (at line 1, column 8)"),
    ("SELECT COUNT(name) AS n FROM t", "unsupported: COUNT(...) other than COUNT(*) (at line 1, column 14)"),
    ("SELECT COUNT(DISTINCT a) AS n FROM t", "unsupported: COUNT(DISTINCT ...) (at line 1, column 14)"),
    ("SELECT 1 FROM t", "unsupported: literals in the select list (at line 1, column 8)"),
    ("SELECT 'x' AS y FROM t", "unsupported: literals in the select list (at line 1, column 8)"),
    ("SELECT a.b.c FROM t", "unsupported: names with more than one qualifier (at line 1, column 8)"),
    ("SELECT * FROM s.t", "unsupported: qualified table names (at line 1, column 15)"),
    # functions and arithmetic
    ("SELECT lower(name) FROM t", "unsupported: function `lower` (at line 1, column 8)"),
    ("SELECT SUM(a) AS s FROM t", "unsupported: function `SUM` (at line 1, column 8)"),
    ("SELECT * FROM t WHERE lower(name) = 'a'", "unsupported: function `lower` (at line 1, column 23)"),
    ("SELECT * FROM t WHERE COUNT(*) > 1", "unsupported: COUNT(*) outside the select list (at line 1, column 23)"),
    ("SELECT a * 2 FROM t", "unsupported: arithmetic (at line 1, column 10)"),
    ("SELECT * FROM t WHERE a + 1 = 2", "unsupported: arithmetic (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a = b * 2", "unsupported: arithmetic (at line 1, column 29)"),
    ("SELECT * FROM t WHERE a = -b", "unsupported: arithmetic (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = +1", "unsupported: arithmetic (at line 1, column 27)"),
    ("SELECT * FROM t WHERE a = 1 - 1", "unsupported: arithmetic (at line 1, column 29)"),
    ("SELECT * FROM t WHERE a = b || 'x'", "unsupported: arithmetic (at line 1, column 29)"),
    ("SELECT * FROM t WHERE a / 2 = 1", "unsupported: arithmetic (at line 1, column 25)"),
    ("UPDATE t SET a = 1 + 1", "unsupported: arithmetic (at line 1, column 20)"),
    ("SELECT * FROM t WHERE a::int = 1", "unsupported: `::` casts (at line 1, column 24)"),
    # predicates
    ("SELECT * FROM t WHERE NOT a = 1", "unsupported: NOT (at line 1, column 23)"),
    ("SELECT * FROM t WHERE a = 1 AND NOT b = 2", "unsupported: NOT (at line 1, column 33)"),
    ("SELECT * FROM t WHERE a IN (1, 2)", "unsupported: IN (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a NOT IN (1, 2)", "unsupported: NOT IN (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a LIKE 'x%'", "unsupported: LIKE (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a not like 'x%'", "unsupported: NOT LIKE (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a ILIKE 'x%'", "unsupported: ILIKE (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a IS NULL", "unsupported: IS NULL (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a is not null", "unsupported: IS NOT NULL (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a IS TRUE", "unsupported: IS (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a BETWEEN 1 AND 2", "unsupported: BETWEEN (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a NOT BETWEEN 1 AND 2", "unsupported: NOT BETWEEN (at line 1, column 25)"),
    ("SELECT * FROM t WHERE a = NULL", "unsupported: NULL (at line 1, column 27)"),
    ("SELECT * FROM t WHERE EXISTS (SELECT * FROM s)", "unsupported: EXISTS (at line 1, column 23)"),
    ("SELECT * FROM t WHERE CASE WHEN a = 1 THEN 1 END = 1", "unsupported: CASE (at line 1, column 23)"),
    ("SELECT * FROM t WHERE 1 = 1",
     "unsupported: comparison of two values (one side must be a column) (at line 1, column 23)"),
    ("SELECT * FROM t WHERE :sender = 0x01",
     "unsupported: comparison of two values (one side must be a column) (at line 1, column 23)"),
    ("SELECT * FROM t WHERE a = :foo",
     "unsupported: parameter `:foo` (only :sender is defined) (at line 1, column 27)"),
    # subqueries
    ("SELECT * FROM (SELECT * FROM t)", "unsupported: subquery (at line 1, column 15)"),
    ("SELECT * FROM t WHERE a = (SELECT b FROM s)", "unsupported: subquery (at line 1, column 27)"),
    ("SELECT * FROM t WHERE (SELECT b FROM s) = a", "unsupported: subquery (at line 1, column 23)"),
    ("SELECT * FROM t WHERE a IN (SELECT b FROM s)", "unsupported: IN (at line 1, column 25)"),
    # DML
    ("INSERT t VALUES (1)", "syntax error: expected INTO, got `t` (at line 1, column 8)"),
    ("INSERT INTO t", "syntax error: expected VALUES, got end of input (at line 1, column 14)"),
    ("INSERT INTO t ()", "syntax error: expected a column name, got `)` (at line 1, column 16)"),
    ("INSERT INTO t VALUES ()", "syntax error: expected a literal, got `)` (at line 1, column 23)"),
    ("INSERT INTO t VALUES (a)", "syntax error: expected a literal, got `a` (at line 1, column 23)"),
    ("INSERT INTO t VALUES (1", "syntax error: expected `)`, got end of input (at line 1, column 24)"),
    ("INSERT INTO t VALUES (1),", "syntax error: expected `(`, got end of input (at line 1, column 26)"),
    ("INSERT INTO t VALUES (NULL)", "unsupported: NULL (at line 1, column 23)"),
    ("INSERT INTO t SELECT * FROM s", "unsupported: INSERT ... SELECT (at line 1, column 15)"),
    ("INSERT INTO t VALUES (1) RETURNING a", "unsupported: RETURNING (at line 1, column 26)"),
    ("UPDATE t a = 1", "syntax error: expected SET, got `a` (at line 1, column 10)"),
    ("UPDATE t SET a = b", "syntax error: expected a literal, got `b` (at line 1, column 18)"),
    ("UPDATE t SET a", "syntax error: expected `=`, got end of input (at line 1, column 15)"),
    ("UPDATE t SET a = 1 WHERE",
     "syntax error: expected a column or a literal, got end of input (at line 1, column 25)"),
    ("DELETE t", "syntax error: expected FROM, got `t` (at line 1, column 8)"),
    ("DELETE FROM t LIMIT 1", "syntax error: expected end of input, got `LIMIT` (at line 1, column 15)"),
    ("DELETE FROM t WHERE a = 1 ORDER BY a", "unsupported: ORDER BY (at line 1, column 27)"),
]


@pytest.mark.parametrize("sql, message", ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_errors(sql: str, message: str) -> None:
    with pytest.raises(SqlError) as info:
        parse(sql)
    assert str(info.value) == message


# --------------------------------------------------------------------------- properties

RESERVED_SAMPLES = ["select", "FROM", "Where", "join", "on", "and", "or", "not", "limit", "order", "true",
                    "NULL", "values", "set", "as", "in", "is"]
names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True),
    st.sampled_from(["user", "message", "count", "x", "X", "identity", "a b", 'q"uote', "ünï", "ſelect", "1st", "-",
                     *RESERVED_SAMPLES]),
    st.text(min_size=1, max_size=6),
)
opt_names = st.none() | names
literals = st.one_of(
    st.builds(Literal, st.just("int"), st.integers() | st.integers(-(2 ** 256), 2 ** 256)),
    st.builds(Literal, st.just("float"), st.floats(allow_nan=False)),
    st.builds(Literal, st.just("string"), st.text(max_size=12)),
    st.builds(Literal, st.just("bool"), st.booleans()),
    st.builds(Literal, st.just("hex"), st.binary(max_size=33)),
)
values = literals | st.just(Param("sender"))
columns = st.builds(ColumnRef, opt_names, names)
bare_columns = st.builds(ColumnRef, st.none(), names)
ops = st.sampled_from(["=", "!=", "<", ">", "<=", ">="])
comparisons = st.one_of(
    st.builds(Compare, ops, columns, columns),
    st.builds(Compare, ops, columns, values),
    st.builds(Compare, ops, values, columns),
)
exprs = st.recursive(comparisons, lambda sub: st.builds(And, sub, sub) | st.builds(Or, sub, sub), max_leaves=6)
projections = st.one_of(
    st.builds(Star, opt_names),
    st.builds(CountStar, names),
    st.lists(st.builds(ProjColumn, columns, opt_names), min_size=1, max_size=3).map(tuple),
)
selects = st.builds(
    Select, projections, st.builds(TableRef, names, opt_names),
    st.lists(st.builds(Join, st.builds(TableRef, names, opt_names), columns, columns), max_size=3).map(tuple),
    st.none() | exprs, st.none() | st.integers(min_value=0),
)
inserts = st.builds(
    Insert, st.builds(TableRef, names),
    st.none() | st.lists(bare_columns, min_size=1, max_size=3).map(tuple),
    st.lists(st.lists(values, min_size=1, max_size=3).map(tuple), min_size=1, max_size=3).map(tuple),
)
updates = st.builds(
    Update, st.builds(TableRef, names),
    st.lists(st.builds(Assignment, bare_columns, values), min_size=1, max_size=3).map(tuple),
    st.none() | exprs,
)
deletes = st.builds(Delete, st.builds(TableRef, names), st.none() | exprs)
statements = st.one_of(selects, inserts, updates, deletes)


def walk(node: object):
    yield node
    if isinstance(node, tuple):
        for item in node:
            yield from walk(item)
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from walk(getattr(node, f.name))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statements)
def test_render_then_parse_round_trips(stmt: object) -> None:
    text = to_sql(stmt)
    parsed = parse(text)
    assert parsed == stmt
    assert to_sql(parsed) == text
    # Positions point at the node's own text.
    for node in walk(parsed):
        if isinstance(node, (ColumnRef, Literal, Param, Star, CountStar)):
            assert text.startswith(to_sql(node), node.pos), (node, text)
        elif isinstance(node, TableRef):
            assert text.startswith(quote_ident(node.name), node.pos), (node, text)
        elif isinstance(node, Compare):
            assert text.startswith(node.op, node.pos), (node, text)
        elif isinstance(node, Join):
            assert text.startswith("JOIN", node.pos)


FRAGMENTS = ["SELECT", "*", "FROM", "t", "u.x", "WHERE", "a", "=", "<>", "1", "-", "-2.5e3", "(", ")", "AND",
             "OR", "JOIN", "INNER", "LEFT", "ON", ".", "'x''y'", "'open", '"q"', '"open', "LIMIT", ",", ";",
             "COUNT", "AS", "INSERT", "INTO", "VALUES", "UPDATE", "SET", "DELETE", "NOT", "IN", "IS", "NULL",
             "ORDER", "BY", ":sender", ":x", "0x", "0xab", "X'", "X'0f'", "1e", "--", "/*", "*/", "::", "+",
             "true", "lower", "user", "\n", "&", "9" * 30, "ſelect"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map(" ".join), st.text(max_size=40)))
def test_any_text_parses_or_raises_sql_error(text: str) -> None:
    try:
        stmt = parse(text)
    except SqlError as e:
        assert e.position is not None and 0 <= e.position <= len(text)
        assert e.message.startswith(("syntax error: ", "unsupported: "))
        assert str(e).endswith(f"(at {format_position(text, e.position)})")
    else:
        assert parse(to_sql(stmt)) == stmt


def test_limits_keep_recursion_bounded() -> None:
    from db_core.sql.parser import MAX_COMPARISONS, MAX_NESTING

    ok = "(" * MAX_NESTING + "a = 1" + ")" * MAX_NESTING
    assert where(ok) == cmp(col("a"), "=", lit("int", 1))
    deep = "SELECT * FROM t WHERE " + "(" * 10_000 + "a = 1" + ")" * 10_000
    with pytest.raises(SqlError) as info:
        parse(deep)
    assert info.value.message == f"unsupported: parentheses nested more than {MAX_NESTING} deep"
    assert info.value.position == len("SELECT * FROM t WHERE ") + MAX_NESTING
    chain = " OR ".join(["a = 1"] * MAX_COMPARISONS)
    assert to_sql(where(chain)) == chain
    with pytest.raises(SqlError) as info:
        parse("SELECT * FROM t WHERE " + " OR ".join(["a = 1"] * 10_000))
    assert info.value.message == f"unsupported: more than {MAX_COMPARISONS} comparisons in one statement"


def test_only_ascii_words_are_keywords() -> None:
    # "ſ".upper() == "S", but ſelect is an identifier, not SELECT.
    assert parse("SELECT ſelect FROM t") == Select((ProjColumn(col("ſelect")),), TableRef("t"))
    assert quote_ident("ſelect") == "ſelect"
    assert quote_ident("Select") == '"Select"'


def test_tokenize_ends_with_eof() -> None:
    toks = tokenize("SELECT a -- hi")
    assert [t.kind for t in toks] == ["word", "word", "eof"]
    assert toks[-1].pos == len("SELECT a")


def test_to_sql_examples() -> None:
    assert to_sql(parse("select u.name as n from user u where u.online = true and (a <> 'x' or b = 0xAB)")) == (
        "SELECT u.name AS n FROM user AS u WHERE u.online = TRUE AND (a != 'x' OR b = 0xab)")
    assert to_sql(parse('SELECT * FROM "select" WHERE "a b" = X\'\' OR c = -1e999')) == (
        "SELECT * FROM \"select\" WHERE \"a b\" = X'' OR c = -1e999")
    assert to_sql(Literal("float", float("inf"))) == "1e999"
    with pytest.raises(ValueError):
        to_sql(Literal("float", float("nan")))
    with pytest.raises(TypeError):
        to_sql(object())
