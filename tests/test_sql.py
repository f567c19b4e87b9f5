"""The SQL engine: checking (names, types, privacy), execution (indexes, joins, DML),
subscription plans, and the psql-style formatter."""

from __future__ import annotations

import enum
import types
from typing import Annotated, Any

import pytest

from db_core import AutoInc, Database, Identity, Index, PrimaryKey, Timestamp, Unique, table
from db_core.datastore import Datastore
from db_core.schema import ColType, col_type
from db_core.sql import (
    NotAuthorized, SqlError, SubscriptionPlan, check_subscription, compile_predicate, explain, format_table, parse,
    row_to_json, run_sql, to_json_rows,
)
from db_core.sql.check import check
from db_core.sql.plan import SelectPlan
from db_core.subscription import SubscriptionEngine
from db_core.table import Table
from db_core.tx import Transaction

OWNER = Identity(bytes([1]) * 32)
ALICE = Identity(bytes([0xA1]) * 32)
BOB = Identity(bytes([0xB0]) * 32)


class Color(enum.Enum):
    red = 1
    green = 2
    blue = 3


@table(name="item", public=True)
class Item:
    id: Annotated[int, PrimaryKey, AutoInc]
    code: Annotated[str, Unique]
    owner: Annotated[Identity, Index]
    price: float
    color: Color
    tags: list[str] = []
    note: str | None = None
    active: bool = True


@table(name="person", public=True)
class Person:
    identity: Annotated[Identity, PrimaryKey]
    name: str | None
    online: bool


@table(name="secret")
class Secret:
    id: Annotated[int, PrimaryKey]
    value: str


@table(name="a", public=True)
class A:
    id: Annotated[int, PrimaryKey]
    x: int


@table(name="b", public=True)
class B:
    id: Annotated[int, PrimaryKey]
    y: int


@table(name="event", public=True)
class Event:
    at: Annotated[Timestamp, Index]
    what: str


TDEFS = [Item.__table__, Person.__table__, Secret.__table__, A.__table__, B.__table__, Event.__table__]


def make_module() -> types.ModuleType:
    mod = types.ModuleType("sql_test_module")
    for cls in (Item, Person, Secret, A, B, Event):
        setattr(mod, cls.__name__, cls)
    return mod


def fill(tables: dict[str, Table]) -> None:
    tx = Transaction()
    for i, (code, owner, price, color, note) in enumerate([
        ("apple", ALICE, 1.5, Color.red, "fresh"),
        ("pear", ALICE, 2.0, Color.green, None),
        ("plum", BOB, 0.75, Color.blue, "ripe"),
        ("kiwi", BOB, 3.0, Color.green, None),
    ], 1):
        assert tx.next_sequence(tables["item"], "id") == i
        tx.insert(tables["item"], Item(i, code, owner, price, color, ("fruit",), note, i % 2 == 1))
    tx.insert(tables["person"], Person(ALICE, "alice", True))
    tx.insert(tables["person"], Person(BOB, None, False))
    tx.insert(tables["secret"], Secret(1, "hidden"))
    for i in range(5):
        tx.insert(tables["a"], A(i, i % 3))
        tx.insert(tables["b"], B(i, i))
    tx.insert(tables["event"], Event(Timestamp.parse("2025-02-10T15:45:30Z"), "launch"))
    tx.insert(tables["event"], Event(Timestamp.parse("2025-04-08T15:47:46.935402Z"), "hello"))


@pytest.fixture
def tables() -> dict[str, Table]:
    out = {t.name: Table(t) for t in TDEFS}
    fill(out)
    return out


def sql(tables: dict[str, Table], text: str, *, sender: Identity = OWNER, owner: bool = True) -> Any:
    return run_sql(text, tables=tables, sender=sender, is_owner=owner, transact=Datastore(tables).writer(sender))


def rows(tables: dict[str, Table], text: str, **kw: Any) -> list[tuple[Any, ...]]:
    return sql(tables, text, **kw).rows


def error(tables: dict[str, Table], text: str, **kw: Any) -> SqlError:
    with pytest.raises(SqlError) as info:
        sql(tables, text, **kw)
    return info.value


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("text, message, column", [
    ("SELECT * FROM item WHERE nmae = 'x'", "unknown column `nmae` in table `item`", 26),
    ("SELECT nmae FROM item", "unknown column `nmae` in table `item`", 8),
    ("SELECT i.nmae FROM item i", "unknown column `nmae` in table `item`", 8),
    ("SELECT * FROM usr", "no such table: `usr`. If the table exists, it may be marked private.", 15),
    ("SELECT * FROM person WHERE online = 'yes'", "type mismatch: `online` is bool, got string", 37),
    ("SELECT * FROM person WHERE online = 1", "type mismatch: `online` is bool, got integer", 37),
    ("SELECT * FROM item WHERE price = 'x'", "type mismatch: `price` is float, got string", 34),
    ("SELECT * FROM item WHERE id = 1.5", "type mismatch: `id` is int, got float", 31),
    ("SELECT * FROM item WHERE code = 3", "type mismatch: `code` is str, got integer", 33),
    ("SELECT * FROM item WHERE note = 3", "type mismatch: `note` is str | None, got integer", 33),
    ("SELECT * FROM item WHERE id = :sender", "type mismatch: `id` is int, got Identity (:sender)", 31),
    ("SELECT * FROM a JOIN b ON a.x = b.y WHERE id = 1", "ambiguous column `id` (in `a` and `b`)", 43),
    ("SELECT id FROM a JOIN b ON a.x = b.y", "ambiguous column `id` (in `a` and `b`)", 8),
    ("SELECT * FROM a JOIN b ON a.x = b.y WHERE z = 1", "unknown column `z` (not in `a` or `b`)", 43),
    ("SELECT * FROM a JOIN b ON x = y WHERE a.id = 1", None, None),
    ("SELECT * FROM person WHERE identity = 0x1234",
     "type mismatch: `identity` is Identity (32 bytes), got 2 bytes", 39),
    ("SELECT * FROM person WHERE identity = 'bob'", "type mismatch: `identity` is Identity, got string", 39),
    ("SELECT * FROM item WHERE id = 18446744073709551616",
     "integer out of range for `id` (int: -9223372036854775808 to 18446744073709551615): 18446744073709551616", 31),
    ("SELECT * FROM item WHERE color = 'purple'",
     "unknown variant 'purple' for `color` (Color has red, green, blue)", 34),
    ("SELECT * FROM item WHERE color = 2", "type mismatch: `color` is Color, got integer", 34),
    ("SELECT * FROM event WHERE at > 'yesterday'",
     "invalid timestamp for `at`: 'yesterday' (expected e.g. '2025-02-10T15:45:30Z')", 32),
    ("SELECT * FROM item WHERE tags = 'x'", "unsupported: `tags` is list[str]; list columns cannot be compared", 26),
    ("SELECT * FROM item i JOIN item j ON i.tags = j.tags",
     "unsupported: `i.tags` is list[str]; list columns cannot be compared", 37),
    ("SELECT * FROM a JOIN b ON a.x = a.id",
     "unsupported: the join condition must compare a column of `b` with a column of an earlier table", 17),
    ("SELECT * FROM a JOIN a ON a.x = a.id", "duplicate table or alias `a` in FROM (give each an alias)", 22),
    ("SELECT * FROM a JOIN b ON a.x = b.y WHERE a.x = b.id AND person.online = true",
     "unknown table or alias `person`", 58),
    ("SELECT * FROM item i WHERE item.id = 1",
     "unknown table or alias `item` (table `item` is called `i` in this query)", 28),
    ("SELECT * FROM item WHERE code = price", "type mismatch: `code` is str, `price` is float", 31),
    ("SELECT * FROM item WHERE note IS NULL", "unsupported: IS NULL", 31),
    ("SELECT * FROM item WHERE note = NULL", "unsupported: NULL", 33),
    ("SELECT * FROM item ORDER BY id", "unsupported: ORDER BY", 20),
])
def test_error_messages(tables: dict[str, Table], text: str, message: str | None, column: int | None) -> None:
    if message is None:
        sql(tables, text)  # unambiguous unqualified join columns are fine
        return
    err = error(tables, text)
    assert err.message == message
    assert str(err) == f"{message} (at line 1, column {column})"


def test_error_position_on_a_later_line(tables: dict[str, Table]) -> None:
    err = error(tables, "SELECT *\nFROM item\nWHERE nmae = 1")
    assert str(err) == "unknown column `nmae` in table `item` (at line 3, column 7)"


def test_int_and_float_columns_compare(tables: dict[str, Table]) -> None:
    assert rows(tables, "SELECT id FROM item WHERE price = 2") == [(2,)]
    assert rows(tables, "SELECT a.id FROM a JOIN item ON a.x = item.price") == [(2,)]
    assert rows(tables, "SELECT item.id FROM item JOIN b ON item.price = b.y") == [(2,), (4,)]


# --------------------------------------------------------------------------- privacy and permissions

def test_private_table_hidden_from_non_owner(tables: dict[str, Table]) -> None:
    err = error(tables, "SELECT * FROM secret", sender=ALICE, owner=False)
    assert err.message == "no such table: `secret`. If the table exists, it may be marked private."
    err = error(tables, "SELECT * FROM item JOIN secret ON item.id = secret.id", sender=ALICE, owner=False)
    assert err.message == "no such table: `secret`. If the table exists, it may be marked private."
    assert rows(tables, "SELECT * FROM secret") == [(1, "hidden")]
    assert rows(tables, "SELECT COUNT(*) AS n FROM item", sender=ALICE, owner=False) == [(4,)]


def test_private_table_hidden_from_non_owner_subscriptions(tables: dict[str, Table]) -> None:
    tdefs = {n: t.tdef for n, t in tables.items()}
    with pytest.raises(SqlError) as info:
        check_subscription("SELECT * FROM secret", tdefs, False, ALICE)
    assert info.value.message == "no such table: `secret`. If the table exists, it may be marked private."
    assert check_subscription("SELECT * FROM secret", tdefs, True, OWNER).table == "secret"


@pytest.mark.parametrize("text", [
    "INSERT INTO a VALUES (10, 1)",
    "UPDATE a SET x = 1",
    "DELETE FROM a",
    "DELETE FROM secret",
])
def test_dml_is_for_the_owner_only(tables: dict[str, Table], text: str) -> None:
    with pytest.raises(NotAuthorized) as info:
        sql(tables, text, sender=ALICE, owner=False)
    assert str(info.value) == f"Identity 0x{ALICE.hex()} is not authorized to run SQL DML statements"
    assert len(tables["a"]) == 5


def test_sender_parameter(tables: dict[str, Table]) -> None:
    assert rows(tables, "SELECT code FROM item WHERE owner = :sender", sender=BOB, owner=False) == [
        ("plum",), ("kiwi",)]
    assert rows(tables, "SELECT name FROM person WHERE identity = :sender", sender=ALICE, owner=False) == [("alice",)]
    assert rows(tables, "SELECT * FROM person WHERE :sender = identity", sender=OWNER) == []


# --------------------------------------------------------------------------- values and semantics

def test_literals_convert_per_column_type(tables: dict[str, Table]) -> None:
    assert rows(tables, f"SELECT name FROM person WHERE identity = 0x{ALICE.hex()}") == [("alice",)]
    assert rows(tables, f"SELECT name FROM person WHERE identity = X'{ALICE.hex()}'") == [("alice",)]
    assert rows(tables, f"SELECT name FROM person WHERE identity = '0x{ALICE.hex()}'") == [("alice",)]
    assert rows(tables, "SELECT code FROM item WHERE color = 'green'") == [("pear",), ("kiwi",)]
    assert rows(tables, "SELECT code FROM item WHERE color > 'red' AND color < 'blue'") == [("pear",), ("kiwi",)]
    assert rows(tables, "SELECT what FROM event WHERE at > '2025-03-01T00:00:00Z'") == [("hello",)]
    launch = Timestamp.parse("2025-02-10T15:45:30Z")
    assert rows(tables, f"SELECT what FROM event WHERE at = {int(launch)}") == [("launch",)]
    assert rows(tables, "SELECT what FROM event WHERE at = '2025-02-10T16:45:30+01:00'") == [("launch",)]
    assert rows(tables, "SELECT code FROM item WHERE price >= 2 AND active = false") == [("pear",), ("kiwi",)]
    assert rows(tables, "SELECT code FROM item WHERE price < -1") == []


def test_optional_columns_compare_inner_value(tables: dict[str, Table]) -> None:
    assert rows(tables, "SELECT code FROM item WHERE note = 'ripe'") == [("plum",)]
    # None never equals anything, nor differs from anything, nor orders.
    assert rows(tables, "SELECT code FROM item WHERE note != 'ripe'") == [("apple",)]
    assert rows(tables, "SELECT code FROM item WHERE note < 'z'") == [("apple",), ("plum",)]
    assert rows(tables, "SELECT i.code FROM item i JOIN item j ON i.note = j.note") == [("apple",), ("plum",)]
    assert rows(tables, "SELECT i.code FROM item i JOIN item j ON i.id = j.id WHERE i.note = j.note") == [
        ("apple",), ("plum",)]


def test_projection_forms(tables: dict[str, Table]) -> None:
    res = sql(tables, "SELECT * FROM a WHERE id = 1")
    assert res.columns == ["id", "x"] and res.rows == [(1, 1)]
    res = sql(tables, "SELECT b.* FROM a JOIN b ON a.x = b.id WHERE a.id = 4")
    assert res.columns == ["id", "y"] and res.rows == [(1, 1)]
    res = sql(tables, "SELECT * FROM a JOIN b ON a.x = b.id WHERE a.id = 4")
    assert res.columns == ["id", "x", "id", "y"] and res.rows == [(4, 1, 1, 1)]
    res = sql(tables, "SELECT a.id AS left_id, y FROM a JOIN b ON a.x = b.id WHERE a.id = 4")
    assert res.columns == ["left_id", "y"] and res.rows == [(4, 1)]
    res = sql(tables, "SELECT COUNT(*) AS n FROM a JOIN b ON a.x = b.id")
    assert res.columns == ["n"] and res.rows == [(5,)] and res.types[0].kind == "int"
    assert rows(tables, "SELECT COUNT(*) AS n FROM a WHERE x = 0") == [(2,)]
    assert rows(tables, "SELECT COUNT(*) AS n FROM a LIMIT 0") == []
    assert len(rows(tables, "SELECT * FROM a LIMIT 2")) == 2
    assert rows(tables, "SELECT * FROM a LIMIT 0") == []
    assert rows(tables, 'SELECT "x" AS "the x" FROM "a" WHERE "id" = 2') == [(2,)]


def test_or_and_parentheses(tables: dict[str, Table]) -> None:
    got = rows(tables, "SELECT id FROM a WHERE (x = 0 OR id = 1) AND id != 3")
    assert sorted(got) == [(0,), (1,)]
    got = rows(tables, "SELECT a.id FROM a JOIN b ON a.id = b.id WHERE a.x = 2 OR b.y = 4")
    assert sorted(got) == [(2,), (4,)]


def test_three_way_join(tables: dict[str, Table]) -> None:
    got = rows(tables, "SELECT a.id, b.id, c.id FROM a JOIN b ON a.x = b.id JOIN a AS c ON c.id = b.y")
    assert sorted(got) == sorted((i, i % 3, i % 3) for i in range(5))
    got = rows(tables, "SELECT p.name, i.code FROM person p JOIN item i ON i.owner = p.identity "
                       "JOIN item j ON j.id = i.id WHERE p.online = true")
    assert sorted(got) == [("alice", "apple"), ("alice", "pear")]


# --------------------------------------------------------------------------- index use

@table(name="big", public=True)
class Big:
    id: Annotated[int, PrimaryKey]
    u: Annotated[int, Unique]
    g: Annotated[int, Index]
    v: int


@table(name="small", public=True)
class Small:
    id: Annotated[int, PrimaryKey]
    big_v: int
    big_g: int


N = 100_000


@pytest.fixture(scope="module")
def big() -> dict[str, Table]:
    tables = {"big": Table(Big.__table__), "small": Table(Small.__table__)}
    tables["big"].load([Big(i, -i, i % 1000, i % 7) for i in range(N)])
    tables["small"].load([Small(i, i, i) for i in range(10)])
    return tables


@pytest.fixture
def no_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Scanning a table goes through ``Table.__iter__``; record every scan."""
    scans: list[str] = []
    original = Table.__iter__

    def counting(self: Table) -> Any:
        scans.append(self.name)
        return original(self)

    monkeypatch.setattr(Table, "__iter__", counting)
    return scans


@pytest.mark.parametrize("text, expected, access", [
    ("SELECT * FROM big WHERE id = 77777", [(77777, -77777, 777, 77777 % 7)], "(primary key)"),
    ("SELECT id FROM big WHERE u = -5", [(5,)], "(unique)"),
    ("SELECT COUNT(*) AS n FROM big WHERE g = 3", [(100,)], "(btree)"),
    ("SELECT id FROM big WHERE v = 3 AND id = 10", [(10,)], "(primary key)"),
    ("SELECT id FROM big WHERE g = 3 AND u = -3", [(3,)], "(unique)"),
    ("SELECT id FROM big WHERE id >= 99998", [(99998,), (99999,)], "index range"),
    ("SELECT id FROM big WHERE id > 10 AND id < 13 AND v >= 0", [(11,), (12,)], "index range"),
    ("SELECT id FROM big WHERE 99998 < id", [(99999,)], "index range"),
    ("SELECT id FROM big WHERE (id = 5 OR id = 6) AND u = -6", [(6,)], "(unique)"),
])
def test_indexed_predicates_do_not_scan(big: dict[str, Table], no_scans: list[str], text: str,
                                        expected: list[tuple[Any, ...]], access: str) -> None:
    res = sql(big, text)
    assert sorted(res.rows) == expected
    assert no_scans == []
    assert access in res.plan[0]


def test_unindexed_predicate_scans_once(big: dict[str, Table], no_scans: list[str]) -> None:
    expected = sum(1 for i in range(N) if i % 7 == 0 or i == 3)
    assert rows(big, "SELECT COUNT(*) AS n FROM big WHERE v = 0 OR id = 3") == [(expected,)]
    assert no_scans == ["big"]


def test_index_nested_loop_join(big: dict[str, Table], no_scans: list[str]) -> None:
    # small.big_v is not indexed but big.id is: drive from small, look big up by its key.
    res = sql(big, "SELECT big.id, small.id FROM big JOIN small ON big.id = small.big_v")
    assert sorted(res.rows) == [(i, i) for i in range(10)]
    assert no_scans == ["small"]
    assert res.plan == ["scan `small`",
                        "index join `big` on `big`.`id` = `small`.`big_v` (via the unique index on `big`.`id`)"]
    no_scans.clear()
    res = sql(big, "SELECT COUNT(*) AS n FROM small JOIN big ON big.g = small.big_g WHERE small.id < 2")
    assert res.rows == [(200,)]
    assert res.plan[0].startswith("index range `small`") and "btree index" in res.plan[1]
    assert no_scans == []


def test_hash_join_when_neither_side_is_indexed(big: dict[str, Table], no_scans: list[str]) -> None:
    res = sql(big, "SELECT COUNT(*) AS n FROM small JOIN big ON big.v = small.big_v")
    assert res.rows == [(sum(N // 7 + (1 if v < N % 7 else 0) for v in range(7)),)]
    assert sorted(no_scans) == ["big", "small"]  # each table read once: never a nested loop
    assert res.plan[1].startswith("hash join")


def test_join_uses_filter_index_before_joining(big: dict[str, Table], no_scans: list[str]) -> None:
    res = sql(big, "SELECT small.id FROM big JOIN small ON big.v = small.big_v WHERE big.id = 12")
    assert sorted(res.rows) == [(5,)]
    assert no_scans == ["small"]


def test_explain_describes_the_access(big: dict[str, Table]) -> None:
    stmt = parse("SELECT * FROM big WHERE u = -9 AND v = 2")
    plan = check(stmt, {n: t.tdef for n, t in big.items()}, True)
    assert isinstance(plan, SelectPlan)
    assert explain(plan, big) == ["index lookup `big`.`u` = -9 (unique)"]


# --------------------------------------------------------------------------- DML through a database

@pytest.fixture
def db() -> Any:
    database = Database.open(None, make_module(), owner=OWNER)
    database.transact(lambda tx: fill(database.tables), sender=OWNER)
    yield database
    database.close()


def dml(db: Any, text: str, sender: Identity = OWNER) -> Any:
    res = run_sql(text, tables=db.tables, sender=sender, is_owner=sender == db.owner,
                  transact=db.store.writer(sender))
    return res


def test_insert_through_database(db: Any) -> None:
    commits: list[Any] = []
    db.add_commit_listener(commits.append)
    res = dml(db, f"INSERT INTO person VALUES (0x{'cc' * 32}, 'carol', true), (0x{'dd' * 32}, 'dan', false)")
    assert res.affected == 2 and res.columns == [] and res.rows == []
    assert res.tx is commits[0]
    assert sorted(r.name for r in res.tx.tables["person"].inserts) == ["carol", "dan"]
    assert res.tx.tables["person"].deletes == []
    assert db.wait_durable(res.tx.offset)
    assert dml(db, f"SELECT online FROM person WHERE identity = 0x{'cc' * 32}").rows == [(True,)]


def test_insert_defaults_and_autoinc(db: Any) -> None:
    res = dml(db, f"INSERT INTO item (code, owner, price, color) VALUES ('fig', 0x{'aa' * 32}, 4, 'red')")
    (row,) = res.tx.tables["item"].inserts
    assert row == Item(5, "fig", Identity(bytes([0xAA]) * 32), 4.0, Color.red, (), None, True)
    res = dml(db, f"INSERT INTO item (id, code, owner, price, color, note) VALUES "
                  f"(0, 'date', 0x{'aa' * 32}, 1, 'blue', 'x'), (100, 'lime', 0x{'aa' * 32}, 1, 'blue', 'y')")
    assert sorted(r.id for r in res.tx.tables["item"].inserts) == [6, 100]
    err = pytest.raises(SqlError, dml, db, "INSERT INTO item (code) VALUES ('x')").value
    assert err.message == "missing value for column `owner` of table `item` (it has no default)"
    err = pytest.raises(SqlError, dml, db, "INSERT INTO a VALUES (1)").value
    assert str(err) == "row 1 has 1 value but table `a` has 2 columns (at line 1, column 23)"
    err = pytest.raises(SqlError, dml, db, "INSERT INTO a (id, id) VALUES (1, 2)").value
    assert err.message == "column `id` is given twice"
    err = pytest.raises(SqlError, dml, db, "INSERT INTO a (id, z) VALUES (1, 2)").value
    assert err.message == "unknown column `z` in table `a`"
    err = pytest.raises(SqlError, dml, db, "INSERT INTO a VALUES (1, 'x')").value
    assert err.message == "type mismatch: `x` is int, got string"
    err = pytest.raises(SqlError, dml, db,
                        f"INSERT INTO item VALUES (0, 'q', 0x{'aa' * 32}, 1, 'red', 'x', 'n', true)").value
    assert err.message == "unsupported: `tags` is list[str]; SQL has no list values"


def test_unique_violation_changes_nothing(db: Any) -> None:
    before = db.last_offset
    items = dict(db.tables["item"].rows)
    with pytest.raises(SqlError) as info:
        dml(db, f"INSERT INTO item (code, owner, price, color) VALUES ('new', 0x{'aa' * 32}, 1, 'red'), "
                f"('apple', 0x{'aa' * 32}, 1, 'red')")
    assert info.value.message == ("duplicate unique value 'apple' in column `code` of table `item`"
                                  " (constraint `item_code_key`)")
    assert "(at line 1, column" in str(info.value)
    assert db.tables["item"].rows == items and db.last_offset == before
    with pytest.raises(SqlError) as info:
        dml(db, "UPDATE item SET code = 'same' WHERE price > 1")
    assert "constraint `item_code_key`" in info.value.message
    assert db.tables["item"].rows == items and db.last_offset == before
    with pytest.raises(SqlError):
        dml(db, "UPDATE a SET id = 1 WHERE id = 2")
    assert sorted(r.id for r in db.tables["a"]) == [0, 1, 2, 3, 4]


def test_update_through_database(db: Any) -> None:
    res = dml(db, "UPDATE person SET online = true, name = 'bobby' WHERE online = false")
    assert res.affected == 1
    upd = res.tx.tables["person"]
    assert upd.deletes == [Person(BOB, None, False)]
    assert upd.inserts == [Person(BOB, "bobby", True)]
    # A primary key update is a delete plus an insert.
    res = dml(db, "UPDATE a SET id = 42 WHERE id = 4")
    assert res.tx.tables["a"].deletes == [A(4, 1)] and res.tx.tables["a"].inserts == [A(42, 1)]
    assert dml(db, "SELECT x FROM a WHERE id = 42").rows == [(1,)]
    # Matching rows that already hold the values: counted, but nothing is logged.
    res = dml(db, "UPDATE a SET x = 1 WHERE id = 42")
    assert res.affected == 1 and res.tx.tables == {}
    err = pytest.raises(SqlError, dml, db, "UPDATE a SET x = 1, x = 2").value
    assert err.message == "column `x` is set twice"


def test_delete_through_database(db: Any) -> None:
    res = dml(db, "DELETE FROM a WHERE x = 0")
    assert res.affected == 2
    assert sorted(r.id for r in res.tx.tables["a"].deletes) == [0, 3]
    res = dml(db, "DELETE FROM b")
    assert res.affected == 5 and len(db.tables["b"]) == 0
    res = dml(db, "DELETE FROM b")
    assert res.affected == 0 and res.tx.tables == {}


def test_dml_denied_for_non_owner_through_database(db: Any) -> None:
    with pytest.raises(NotAuthorized) as info:
        dml(db, "DELETE FROM a", sender=ALICE)
    assert str(info.value) == f"Identity 0x{ALICE.hex()} is not authorized to run SQL DML statements"
    assert len(db.tables["a"]) == 5


def test_dml_on_system_tables_is_refused(db: Any) -> None:
    err = pytest.raises(SqlError, dml, db, "DELETE FROM st_client").value
    assert err.message == "unsupported: changing system table `st_client`"


def test_dml_changes_reach_subscriptions(db: Any) -> None:
    engine = SubscriptionEngine(db.tables)
    tdefs = {n: t.tdef for n, t in db.tables.items()}
    engine.add("q", check_subscription("SELECT * FROM a WHERE x = 7", tdefs, False, ALICE))
    seen: list[Any] = []
    db.add_commit_listener(lambda tx: seen.append(engine.evaluate(tx)))
    dml(db, "INSERT INTO a VALUES (10, 7), (11, 8)")
    assert seen[-1]["q"].inserts == [A(10, 7)]
    dml(db, "UPDATE a SET x = 9 WHERE id = 10")
    assert seen[-1]["q"].deletes == [A(10, 7)] and seen[-1]["q"].inserts == []


# --------------------------------------------------------------------------- subscriptions

def test_subscription_plan_single_table(tables: dict[str, Table]) -> None:
    tdefs = {n: t.tdef for n, t in tables.items()}
    plan = check_subscription("SELECT * FROM item WHERE owner = :sender AND price > 1 AND code = 'pear'",
                              tdefs, False, ALICE)
    assert isinstance(plan, SubscriptionPlan)
    assert plan.table == "item" and plan.join is None
    assert plan.equalities == [("code", "pear"), ("owner", ALICE)]  # indexed (unique first) columns first
    assert plan.predicate is not None
    assert [r.code for r in tables["item"] if plan.predicate(r)] == ["pear"]
    plan = check_subscription("SELECT t.* FROM item AS t", tdefs, False, ALICE)
    assert plan.table == "item" and plan.predicate is None and plan.equalities == []
    plan = check_subscription("SELECT * FROM item WHERE note = 'ripe' OR id = 1", tdefs, False, ALICE)
    assert plan.equalities == []
    assert [r.code for r in tables["item"] if plan.predicate(r)] == ["apple", "plum"]
    plan = check_subscription("SELECT * FROM item WHERE note = 'ripe'", tdefs, False, ALICE)
    assert plan.equalities == [("note", "ripe")]  # the inner value, as rows hold it
    engine = SubscriptionEngine(tables)
    assert [r.code for r in engine.initial_rows(plan)] == ["plum"]


def test_subscription_plan_join(tables: dict[str, Table]) -> None:
    tdefs = {n: t.tdef for n, t in tables.items()}
    text = ("SELECT i.* FROM item i JOIN person p ON i.owner = p.identity "
            "WHERE p.online = true AND i.price > 1 AND (i.note = p.name OR i.active = true)")
    plan = check_subscription(text, tdefs, False, BOB)
    assert plan.table == "item" and plan.join == ("person", "owner", "identity")
    assert plan.predicate is not None and plan.other_predicate is not None and plan.pair_predicate is not None
    engine = SubscriptionEngine(tables)
    assert [r.code for r in engine.initial_rows(plan)] == ["apple"]
    plan = check_subscription("SELECT p.* FROM item i JOIN person p ON i.owner = p.identity WHERE i.code = 'plum'",
                              tdefs, False, BOB)
    assert plan.table == "person" and plan.join == ("item", "identity", "owner")
    assert plan.predicate is None and plan.pair_predicate is None
    assert [r.identity for r in engine.initial_rows(plan)] == [BOB]


@pytest.mark.parametrize("text, message", [
    ("SELECT b.* FROM a JOIN b ON a.x = b.id",
     "unsupported: subscription joins need an index on both join columns (`a.x` has none)"),
    ("SELECT a.* FROM a JOIN b ON a.id = b.y",
     "unsupported: subscription joins need an index on both join columns (`b.y` has none)"),
    ("SELECT x.* FROM a AS x JOIN b ON x.id = b.y",
     "unsupported: subscription joins need an index on both join columns (`b.y` has none)"),
    ("SELECT * FROM a JOIN b ON a.id = b.id",
     "unsupported: a subscription over a join returns one table's rows: use `SELECT a.*` or `SELECT b.*`"),
    ("SELECT id FROM a", "unsupported: column lists in a subscription (subscriptions return whole rows:"
                         " use `SELECT *` or `SELECT t.*`)"),
    ("SELECT COUNT(*) AS n FROM a", "unsupported: COUNT(*) in a subscription (subscriptions return whole rows)"),
    ("SELECT * FROM a LIMIT 5", "unsupported: LIMIT in a subscription"),
    ("SELECT a.* FROM a JOIN b ON a.id = b.id JOIN a AS c ON c.id = b.id",
     "unsupported: a subscription can join at most two tables"),
    ("DELETE FROM a", "unsupported: subscriptions take SELECT queries only"),
    ("SELECT * FROM a WHERE nope = 1", "unknown column `nope` in table `a`"),
])
def test_subscription_restrictions(tables: dict[str, Table], text: str, message: str) -> None:
    tdefs = {n: t.tdef for n, t in tables.items()}
    with pytest.raises(SqlError) as info:
        check_subscription(text, tdefs, True, OWNER)
    assert info.value.message == message
    assert info.value.text == text and "(at line 1, column" in str(info.value)


def test_compile_predicate(tables: dict[str, Table]) -> None:
    tdefs = {n: t.tdef for n, t in tables.items()}
    plan = check(parse("SELECT * FROM item WHERE (color >= 'green' AND note != 'x') OR price < 1"), tdefs, True)
    assert isinstance(plan, SelectPlan)
    pred = compile_predicate(plan)
    assert [r.code for r in tables["item"] if pred(r)] == ["plum"]
    assert compile_predicate(plan.where) is not pred
    everything = compile_predicate(check(parse("SELECT * FROM item"), tdefs, True))
    assert all(everything(r) for r in tables["item"])
    join = check(parse("SELECT * FROM a JOIN b ON a.id = b.id"), tdefs, True)
    with pytest.raises(ValueError):
        compile_predicate(join)


# --------------------------------------------------------------------------- formatting

REFERENCE = (
    " sender                                                             | sent                             | text\n"
    "--------------------------------------------------------------------+----------------------------------+-----------------\n"
    " 0x93dda09db9a56d8fa6c024d843e805d8262191db3b4ba84c5efcd1ad451fed4e | 2025-04-08T15:47:46.935402+00:00 |"
    " \"Hello, World!\""
)


def test_format_matches_the_reference_byte_for_byte() -> None:
    sender = Identity.from_hex("0x93dda09db9a56d8fa6c024d843e805d8262191db3b4ba84c5efcd1ad451fed4e")
    sent = Timestamp.parse("2025-04-08T15:47:46.935402+00:00")
    types_ = [col_type(Identity, "t"), col_type(Timestamp, "t"), col_type(str, "t")]
    out = format_table(["sender", "sent", "text"], types_, [(sender, sent, "Hello, World!")])
    assert out == REFERENCE
    assert out.encode() == REFERENCE.encode()


def test_format_reference_query_end_to_end() -> None:
    @table(name="message", public=True)
    class Message:
        sender: Identity
        sent: Timestamp
        text: str

    t = Table(Message.__table__)
    t.add(Message(Identity.from_hex("93dda09db9a56d8fa6c024d843e805d8262191db3b4ba84c5efcd1ad451fed4e"),
                  Timestamp.parse("2025-04-08T15:47:46.935402Z"), "Hello, World!"))
    res = run_sql("SELECT * FROM message", tables={"message": t}, sender=ALICE, is_owner=False)
    assert res.format() == REFERENCE


def test_format_empty_result_prints_header_and_separator(tables: dict[str, Table]) -> None:
    res = sql(tables, "SELECT * FROM person WHERE online = true AND online = false")
    assert res.format() == " identity | name | online\n----------+------+--------"


def test_format_values(tables: dict[str, Table]) -> None:
    res = sql(tables, "SELECT code, note, color, tags, price, active FROM item WHERE id <= 2")
    assert res.format() == "\n".join([
        ' code    | note             | color | tags      | price | active',
        '---------+------------------+-------+-----------+-------+--------',
        ' "apple" | (some = "fresh") | red   | ["fruit"] | 1.5   | true',
        ' "pear"  | (none = ())      | green | ["fruit"] | 2.0   | false',
    ])
    text = ColType("str")
    assert format_table(["s"], [text], [('say "hi"\n',)]) == ' s\n----------------\n "say \\"hi\\"\\n"'
    assert format_table(["w", "z"], [text, text], [("日本", "x")]) == ' w      | z\n--------+-----\n "日本" | "x"'
    assert format_table([], [], []) == ""


def test_json_rows(tables: dict[str, Table]) -> None:
    res = sql(tables, "SELECT * FROM item WHERE id = 1")
    (obj,) = to_json_rows(res.columns, res.types, res.rows)
    assert obj == {"id": 1, "code": "apple", "owner": "0x" + ALICE.hex(), "price": 1.5, "color": "red",
                   "tags": ["fruit"], "note": {"some": "fresh"}, "active": True}
    assert to_json_rows(["n"], [ColType("option", inner=ColType("int"))], [(None,)]) == [{"n": {"none": []}}]
    ev = sql(tables, "SELECT * FROM event WHERE what = 'hello'")
    assert ev.to_json() == [{"at": "2025-04-08T15:47:46.935402+00:00", "what": "hello"}]
    # Every JSON value converts back with ColType.convert.
    for col, t in zip(res.columns, res.types, strict=True):
        assert t.convert(obj[col]) == res.rows[0][res.columns.index(col)]
    joined = sql(tables, "SELECT * FROM a JOIN b ON a.id = b.id WHERE a.id = 1").to_json()
    assert joined == [{"id": 1, "x": 1, "id#2": 1, "y": 1}]
    assert row_to_json(Person.__table__, Person(BOB, None, False)) == {
        "identity": "0x" + BOB.hex(), "name": {"none": []}, "online": False}


# --------------------------------------------------------------------------- more index use, and the bundled module

def test_dml_where_uses_the_index(big: dict[str, Table], no_scans: list[str]) -> None:
    assert sql(big, "DELETE FROM big WHERE id = -1").affected == 0
    assert sql(big, "UPDATE big SET v = 1 WHERE u = 1").affected == 0
    assert sql(big, "UPDATE big SET v = 1 WHERE g = 5000 AND v = 2").affected == 0
    assert no_scans == []


def test_three_way_join_uses_indexes(big: dict[str, Table], no_scans: list[str]) -> None:
    res = sql(big, "SELECT small.id, b1.id, b2.id FROM small JOIN big AS b1 ON b1.id = small.big_v "
                   "JOIN big AS b2 ON b2.u = b1.u WHERE small.id >= 8")
    assert sorted(res.rows) == [(8, 8, 8), (9, 9, 9)]
    assert no_scans == []
    assert [line.split(" ")[0] for line in res.plan] == ["index", "index", "index"]


def test_quickstart_module_end_to_end(quickstart_path: Any) -> None:
    db = Database.open(None, quickstart_path, owner=OWNER)
    try:
        db.connect(ALICE)
        db.call("set_name", "alice", sender=ALICE)
        db.call("send_message", "Hello, World!", sender=ALICE)

        def q(text: str, sender: Identity) -> Any:
            return run_sql(text, tables=db.tables, sender=sender, is_owner=sender == db.owner,
                           transact=db.store.writer(sender))

        res = q("SELECT text FROM message WHERE sender = :sender", ALICE)
        assert res.rows == [("Hello, World!",)]
        assert q("SELECT text FROM message WHERE sender = :sender", BOB).rows == []
        res = q("SELECT u.name, m.text FROM message m JOIN user u ON m.sender = u.identity", BOB)
        assert res.format() == (' name             | text\n------------------+-----------------\n'
                                ' (some = "alice") | "Hello, World!"')
        res = q(f"UPDATE user SET name = 'Alice' WHERE identity = 0x{ALICE.hex()}", OWNER)
        assert res.affected == 1 and [u.name for u in res.tx.tables["user"].inserts] == ["Alice"]
        assert db.wait_durable(res.tx.offset)
        with pytest.raises(NotAuthorized):
            q("DELETE FROM message", ALICE)
        err = pytest.raises(SqlError, q, "SELECT * FROM user WHERE online = 'yes'", ALICE).value
        assert str(err) == "type mismatch: `online` is bool, got string (at line 1, column 35)"
    finally:
        db.close()
