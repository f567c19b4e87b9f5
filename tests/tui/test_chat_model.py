"""ChatState: log entries and presence lines from the rows the SDK delivers (no I/O)."""

from chat_tui.chat import ChatState
from db_core.cache import RowEvent
from db_core.types import Identity

from .scenes import Message, User

A = Identity(bytes([0xAA]) * 32)
B = Identity(bytes([0xBB]) * 32)
C = Identity(bytes([0xCC]) * 32)


def upd(old: User, new: User) -> RowEvent:
    return RowEvent("update", "user", old, new)


def texts(entries) -> list[str]:
    return [e.text for e in entries]


def test_first_load_shows_messages_without_presence_lines() -> None:
    s = ChatState()
    s.me = A
    out = s.load([User(A, "Alice", True), User(B, None, True)], [Message(B, 2, "hi"), Message(A, 1, "yo")], 10)
    assert sorted(texts(out)) == ["hi", "yo"]
    by_text = {e.text: e for e in out}
    assert by_text["yo"].name == "Alice"
    assert by_text["hi"].name == B.to_abbreviated_hex()
    assert all(e.kind == "message" for e in out)


def test_presence_and_rename_lines() -> None:
    s = ChatState()
    s.load([User(A, "Alice", True), User(B, None, False)], [], 0)
    b = B.to_abbreviated_hex()
    assert texts(s.apply([upd(User(B, None, False), User(B, None, True))], 5)) == [f"{b} connected."]
    assert texts(s.apply([upd(User(B, None, True), User(B, "Bob", True))], 6)) == [f"{b} renamed to Bob."]
    assert texts(s.apply([upd(User(A, "Alice", True), User(A, "Al", True))], 7)) == ["Alice renamed to Al."]
    assert texts(s.apply([upd(User(A, "Al", True), User(A, "Al", False))], 8)) == ["Al disconnected."]
    c = C.to_abbreviated_hex()
    assert texts(s.apply([RowEvent("insert", "user", None, User(C, None, True))], 9)) == [f"{c} connected."]
    assert all(e.kind == "presence" for e in s.apply([upd(User(A, "Al", False), User(A, "Al", True))], 10))


def test_me_is_an_action_with_its_text_kept() -> None:
    s = ChatState()
    s.me = A
    s.load([User(A, "Alice", True), User(B, "Bob", True)], [], 0)
    out = s.apply([RowEvent("insert", "message", None, Message(B, 3, "/me waves")),
                   RowEvent("insert", "message", None, Message(B, 4, "/me")),
                   RowEvent("insert", "message", None, Message(B, 5, "/meet at noon"))], 5)
    assert [(e.text, e.action) for e in out] == [("/me waves", True), ("/me", False), ("/meet at noon", False)]
    assert s.unsent("/me waves", 6).action


def test_reconnect_load_reports_what_changed_and_dedupes_messages() -> None:
    s = ChatState()
    s.load([User(A, "Alice", True), User(B, "Bob", True)], [Message(A, 1, "one")], 0)
    out = s.load([User(A, "Alice", True), User(B, "Bob", False), User(C, "Cy", True)],
                 [Message(A, 1, "one"), Message(C, 2, "two")], 5)
    assert texts(out) == ["Bob disconnected.", "Cy connected.", "two"]


def test_mentions_highlight_but_not_my_own_messages() -> None:
    s = ChatState()
    s.me = A
    s.load([User(A, "Alice", True), User(B, "Bob", True)], [], 0)
    out = s.apply([RowEvent("insert", "message", None, Message(B, 3, "hey alice, look")),
                   RowEvent("insert", "message", None, Message(B, 4, "malice is not a mention")),
                   RowEvent("insert", "message", None, Message(A, 5, "I am Alice"))], 5)
    assert [e.highlight for e in out] == [True, False, False]


def test_same_name_told_apart() -> None:
    s = ChatState()
    s.load([User(A, "Sam", True), User(B, "Sam", True)], [], 0)
    assert s.display_name(A) == "Sam#" + A.hex()[:4]
    assert s.display_name(B) == "Sam#" + B.hex()[:4]
    assert s.display_name(A) != s.display_name(B)


def test_the_model_and_the_wrapping_load_no_textual() -> None:
    """The chat model (and what it makes) and the text wrapping are plain Python: no widget, no Textual."""
    import json
    import subprocess
    import sys

    for module in ("chat_tui.chat", "chat_tui.entries", "chat_tui.wrap"):
        code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
        loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout)
        assert not [m for m in loaded if m.split(".")[0] == "textual" or m.startswith("chat_tui.widgets")], module


def test_an_unsent_message_and_how_its_call_ends() -> None:
    s = ChatState()
    s.welcome(A, [User(A, "Alice", True)], [], first=True, floor=None, time=0)
    unsent = s.unsent('say "hi"', 5)
    assert unsent.pending and unsent.name == "Alice" and unsent.kind == "message" and unsent.time == 5
    assert s.unsent("again", 6).key != unsent.key
    assert s.call_done("send_message", ('say "hi"',), None, unsent, 7) == []
    failed, why = s.call_done("send_message", ('say "hi"',), "rate limited", unsent, 7)
    assert failed.failed and not failed.pending and failed.text == 'say "hi"' and failed.key != unsent.key
    assert why.kind == "error" and why.text == 'Failed to send message "say \\"hi\\"": rate limited'
    (why,) = s.call_done("set_name", ("",), "Names must not be empty", None, 8)
    assert why.text == 'Failed to set name to "": Names must not be empty'


def test_history_floor_follows_pages_and_trims() -> None:
    s = ChatState()
    s.welcome(A, [], [Message(B, 100, "recent")], first=True, floor=100, time=0)
    assert s.history_floor == 100
    older = s.older(50, [Message(B, 60, "older"), Message(B, 100, "recent")])
    assert texts(older) == ["older"] and s.history_floor == 50
    assert s.keep(10) is None
    dropped = s.older(None, [Message(B, 10, "first")])
    assert s.history_floor is None
    assert s.trimmed(dropped + older) == 61 and s.history_floor == 61
    assert texts(s.messages([Message(B, 10, "first")])) == ["first"]   # forgotten: shown again
    assert s.trimmed([s.system_entry(0, "a line")]) is None
