"""The quickstart-chat module's behaviours (reference §2), through the embedded API."""

from __future__ import annotations

from pathlib import Path

import pytest

from db_core import ConnectionRejected, Database, Identity


def users(db: Database) -> dict[Identity, tuple[str | None, bool]]:
    return {u.identity: (u.name, u.online) for u in db.tables["user"]}


@pytest.fixture(params=["memory", "disk"])
def db(request: pytest.FixtureRequest, tmp_path: Path, quickstart_path: Path) -> Database:
    with Database.open(None if request.param == "memory" else tmp_path / "data", quickstart_path) as database:
        yield database


def test_connect_inserts_online_user(db: Database) -> None:
    alice = Identity.random()
    db.connect(alice)
    assert users(db) == {alice: (None, True)}


def test_set_name(db: Database) -> None:
    alice = Identity.random()
    conn = db.connect(alice)
    r = db.call("set_name", "Alice", sender=alice, connection_id=conn)
    assert r.ok and r.error is None
    assert users(db)[alice] == ("Alice", True)
    upd = r.tx.tables["user"]
    assert [u.name for u in upd.deletes] == [None] and [u.name for u in upd.inserts] == ["Alice"]


def test_set_name_empty_fails_and_changes_nothing(db: Database) -> None:
    alice = Identity.random()
    conn = db.connect(alice)
    db.call("set_name", "Alice", sender=alice, connection_id=conn)
    r = db.call("set_name", "", sender=alice, connection_id=conn)
    assert (r.ok, r.error, r.status) == (False, "Names must not be empty", "failed")
    assert users(db)[alice] == ("Alice", True)


def test_set_name_unknown_user(db: Database) -> None:
    # The CLI's `call` carries an identity but no connection: no user row exists.
    r = db.call("set_name", "Bob", sender=Identity.random())
    assert r.error == "Cannot set name for unknown user"


def test_send_message(db: Database) -> None:
    alice = Identity.random()
    conn = db.connect(alice)
    r = db.call("send_message", "Hello, World!", sender=alice, connection_id=conn)
    (msg,) = r.tx.tables["message"].inserts
    assert (msg.sender, msg.sent, msg.text) == (alice, r.tx.timestamp, "Hello, World!")
    assert db.logs.lines()[-1].endswith("INFO: quickstart_chat.py:79: Hello, World!")


def test_send_empty_message_fails(db: Database) -> None:
    alice = Identity.random()
    r = db.call("send_message", "", sender=alice)
    assert (r.ok, r.error) == (False, "Messages must not be empty")
    assert len(db.tables["message"]) == 0


def test_reconnect_keeps_name_and_flips_online(db: Database) -> None:
    alice = Identity.random()
    conn = db.connect(alice)
    db.call("set_name", "Alice", sender=alice, connection_id=conn)
    db.disconnect(conn)
    assert users(db)[alice] == ("Alice", False)
    db.connect(alice)
    assert users(db)[alice] == ("Alice", True)


def test_disconnect_unknown_user_warns(db: Database) -> None:
    ghost = Identity.random()
    conn = db.connect(ghost)
    # Remove the user row behind the module's back, as a DML delete would.
    db._calls.run("wipe", lambda ctx: ctx.db.user.identity.delete(ghost), (), ghost, None)
    db.disconnect(conn)
    assert db.logs.lines()[-1].endswith(
        f"WARN: quickstart_chat.py:99: Disconnect event for unknown user with identity {ghost.to_hex()}")


def test_stale_online_fixed_after_crash(tmp_path: Path, quickstart_path: Path) -> None:
    """Connections open when the process died are disconnected at the next start."""
    data = tmp_path / "data"
    db = Database.open(data, quickstart_path)
    alice, bob = Identity.random(), Identity.random()
    db.connect(alice)
    bob_conn = db.connect(bob)
    db.call("set_name", "Bob", sender=bob, connection_id=bob_conn)
    db.durability.log.flush()
    db._release()  # as a crash would: no close, no disconnect hooks
    with Database.open(data, quickstart_path) as db2:
        assert users(db2) == {alice: (None, False), bob: ("Bob", False)}
        assert db2.connections() == []
        assert any("left open by the last run" in line for line in db2.logs.lines())


def test_connect_rejected(tmp_path: Path) -> None:
    src = (
        "from db_core import client_connected, ReducerError\n"
        "@client_connected\n"
        "def on_connect(ctx):\n"
        "    raise ReducerError('banned')\n"
    )
    path = tmp_path / "m.py"
    path.write_text(src)
    with Database.open(None, path) as db:
        with pytest.raises(ConnectionRejected, match="banned"):
            db.connect(Identity.random())
        assert db.connections() == []


# -- the limits the TUI advertises: the module is their authority ---------------------
def named(db: Database) -> tuple[Identity, object]:
    alice = Identity.random()
    return alice, db.connect(alice)


@pytest.mark.parametrize("name", ["A", "Alice", "n" * 32, "Zoë", "日本語の名前", "Ali ce", " Al ", "😀", "[bold]x[/]"])
def test_set_name_accepts_printable_names_of_1_to_32_characters(db: Database, name: str) -> None:
    alice, conn = named(db)
    r = db.call("set_name", name, sender=alice, connection_id=conn)
    assert r.ok, r.error
    assert users(db)[alice] == (name, True)  # exactly as given: nothing stripped


@pytest.mark.parametrize("name, error", [
    ("n" * 33, "Names must be at most 32 characters"),
    ("N" * 5_000, "Names must be at most 32 characters"),
    ("Alice\nBob connected.", "Names must be on one line"),
    ("Alice\r", "Names must be on one line"),
    ("\x1b]0;pwned\x07", "Names must contain only printable characters, not U+001B"),
    ("ding\x07", "Names must contain only printable characters, not U+0007"),
    ("a\tb", "Names must contain only printable characters, not U+0009"),
    ("\x9b2J", "Names must contain only printable characters, not U+009B"),
    ("\u202eevil", "Names must contain only printable characters, not U+202E"),
    ("ad\u200bmin", "Names must contain only printable characters, not U+200B"),
    ("a\u200db", "Names must contain only printable characters, not U+200D"),
    ("\ufeffBOM", "Names must contain only printable characters, not U+FEFF"),
    ("soft\u00adhyphen", "Names must contain only printable characters, not U+00AD"),
    ("a\u2028b", "Names must contain only printable characters, not U+2028"),
    ("no\u00a0break", "Names must contain only printable characters, not U+00A0"),
    ("\u3164", "Names must contain only printable characters, not U+3164"),
    ("\ue000", "Names must contain only printable characters, not U+E000"),
    (" ", "Names must not be only spaces"),
    ("    ", "Names must not be only spaces"),
])
def test_set_name_refuses_with_a_reason_and_changes_nothing(db: Database, name: str, error: str) -> None:
    alice, conn = named(db)
    db.call("set_name", "Alice", sender=alice, connection_id=conn)
    r = db.call("set_name", name, sender=alice, connection_id=conn)
    assert (r.ok, r.status, r.error) == (False, "failed", error)
    assert users(db)[alice] == ("Alice", True)


@pytest.mark.parametrize("text", ["x" * 4_000, "two\nlines", "a\ttab", "bidi \u202e and zero-width \u200b pass",
                                  "❤️ café 日本", "[link=http://evil]x[/link]"])
def test_send_message_accepts_up_to_4000_characters_with_newline_and_tab(db: Database, text: str) -> None:
    alice, conn = named(db)
    r = db.call("send_message", text, sender=alice, connection_id=conn)
    assert r.ok, r.error
    assert [m.text for m in db.tables["message"]] == [text]


@pytest.mark.parametrize("text, error", [
    ("x" * 4_001, "Messages must be at most 4,000 characters"),
    ("x" * 65_000, "Messages must be at most 4,000 characters"),
    ("\x1b]52;c;cm0gLXJmIH4=\x07", "Messages must not contain control characters other than newline and tab, "
                                   "not U+001B"),
    ("over\rwrite", "Messages must not contain control characters other than newline and tab, not U+000D"),
    ("nul\x00", "Messages must not contain control characters other than newline and tab, not U+0000"),
    ("del\x7f", "Messages must not contain control characters other than newline and tab, not U+007F"),
    ("\x9b2J", "Messages must not contain control characters other than newline and tab, not U+009B"),
])
def test_send_message_refuses_with_a_reason_and_stores_nothing(db: Database, text: str, error: str) -> None:
    alice, conn = named(db)
    r = db.call("send_message", text, sender=alice, connection_id=conn)
    assert (r.ok, r.status, r.error) == (False, "failed", error)
    assert len(db.tables["message"]) == 0


def test_docs_quote_the_module_exactly(quickstart_path: Path) -> None:
    """docs/modules.md walks through the module "quoted exactly, in file order"."""
    import re
    docs = (Path(__file__).resolve().parent.parent / "docs" / "modules.md").read_text()
    section = docs.split("## The quickstart-chat module", 1)[1].split("\n## ", 1)[0]
    quoted = [line for block in re.findall(r"```python\n(.*?)```", section, re.S) for line in block.splitlines()]
    source = quickstart_path.read_text().split('"""', 2)[2].splitlines()
    assert [line for line in quoted if line.strip()] == [line for line in source if line.strip()]
