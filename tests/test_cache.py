"""The client cache: reference counts, primary keys, paired updates."""

from __future__ import annotations

from typing import NamedTuple

from db_core.cache import ClientCache, RowEvent, RowEventKind


class User(NamedTuple):
    id: int
    name: str


def cache() -> ClientCache:
    return ClientCache({"user": lambda r: r.id, "log": None})


def test_insert_delete_update_events() -> None:
    c = cache()
    a, b = User(1, "a"), User(2, "b")
    assert c.apply("user", [a, b]) == [RowEvent("insert", "user", None, a), RowEvent("insert", "user", None, b)]
    a2 = User(1, "A")
    assert c.apply("user", [a2], [a]) == [RowEvent("update", "user", a, a2)]
    assert c.find("user", 1) == a2
    assert c.apply("user", [], [b]) == [RowEvent("delete", "user", b, None)]
    assert c.rows("user") == [a2] and c.find("user", 2) is None


def test_overlapping_queries_are_reference_counted() -> None:
    c = cache()
    a = User(1, "a")
    assert c.apply("user", [a]) == [RowEvent("insert", "user", None, a)]
    assert c.apply("user", [a]) == []  # a second query delivers the same row
    assert c.multiplicity("user", a) == 2
    assert c.apply("user", [], [a]) == []  # one query drops it: still there
    assert c.rows("user") == [a]
    assert c.apply("user", [], [a]) == [RowEvent("delete", "user", a, None)]
    assert c.count("user") == 0


def test_unknown_delete_is_ignored_and_tables_without_key() -> None:
    c = cache()
    assert c.apply("user", [], [User(9, "x")]) == []
    assert c.apply("log", [("x",), ("y",)]) == [RowEvent("insert", "log", None, ("x",)),
                                                RowEvent("insert", "log", None, ("y",))]
    assert c.apply("log", [("z",)], [("x",)]) == [RowEvent("delete", "log", ("x",), None),
                                                  RowEvent("insert", "log", None, ("z",))]
    assert c.find("log", ("z",)) is None


def test_clear_returns_deletes() -> None:
    c = cache()
    c.apply("user", [User(1, "a")])
    assert c.clear() == [RowEvent("delete", "user", User(1, "a"), None)]
    assert c.rows("user") == []


def test_event_kinds_are_the_enum_and_equal_their_names() -> None:
    c = cache()
    a, a2 = User(1, "a"), User(1, "A")
    kinds = [e.kind for e in c.apply("user", [a]) + c.apply("user", [a2], [a]) + c.clear()]
    assert kinds == [RowEventKind.INSERT, RowEventKind.UPDATE, RowEventKind.DELETE] == ["insert", "update", "delete"]
    assert all(type(k) is RowEventKind for k in kinds)
