"""What a typed line means: messages, commands, and the refusals with their reasons."""

from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chat_server.modules import QUICKSTART_CHAT
from chat_tui.commands import (MAX_MESSAGE_CHARS, MAX_NAME_CHARS, Filter, Help, Ignore, InputRefused, Quit, Send,
                               SetName, ToggleFilter, message_problem, name_problem, parse, paste_note, refusal)
from db_core import Database, Identity

from ..security.hostile import CORPUS


def test_plain_line_is_a_message() -> None:
    assert parse("Hello, World!") == Send("Hello, World!")
    assert parse("  spaced  ") == Send("  spaced  ")


def test_commands() -> None:
    assert parse("/name Alice") == SetName("Alice")
    assert parse("/NAME  Al B ") == SetName("Al B")
    assert parse("/help") == Help()
    assert parse("/quit") == Quit()


def test_blank_lines_are_ignored_not_refused() -> None:
    # As irssi and weechat do: nothing happens, no red line.
    assert parse("") == Ignore()
    assert parse("   ") == Ignore()
    assert parse(" \t ") == Ignore()
    assert refusal("   ") is None


def test_spaces_before_a_command_are_ignored() -> None:
    # Spaces left in the input (or typed) never turn a command into a message.
    assert parse("   /name Carol2") == SetName("Carol2")
    assert parse("\t/help") == Help()
    assert parse("  //x") == Send("/x")
    assert parse("  hi") == Send("  hi")          # a message keeps its spaces


def test_several_lines_are_a_message_even_with_a_slash() -> None:
    # Only a paste makes several lines: it never runs a command.
    assert parse("/name Multi\nLine") == Send("/name Multi\nLine")
    assert parse("  /quit\nnow") == Send("  /quit\nnow")
    assert paste_note("/name Multi\nLine") is not None
    assert paste_note("hello\n/name x") is None and paste_note("/name x") is None


def test_me_is_sent_as_its_text() -> None:
    assert parse("/me waves") == Send("/me waves")
    assert parse("  /ME   waves hello ") == Send("/me waves hello")
    with pytest.raises(InputRefused, match="/me needs an action"):
        parse("/me  ")


def test_filter_presence() -> None:
    assert parse("/filter presence") == ToggleFilter(Filter.PRESENCE)
    assert parse("/FILTER Presence ") == ToggleFilter(Filter.PRESENCE)
    with pytest.raises(InputRefused, match="Unknown filter joins"):
        parse("/filter joins")
    with pytest.raises(InputRefused, match="/filter presence hides"):
        parse("/filter")


def test_empty_name_goes_to_the_module() -> None:
    # The module's own answer ("Names must not be empty") is the one the user sees.
    assert parse("/name") == SetName("")
    assert parse("/name   ") == SetName("")


def test_double_slash_sends_a_literal_slash() -> None:
    assert parse("//quit is a command") == Send("/quit is a command")


@pytest.mark.parametrize("line, reason", [
    ("/quitt", "Unknown command /quitt: not sent"),
    ("/nick Bob", "Unknown command /nick"),
    ("x" * (MAX_MESSAGE_CHARS + 1), f"Message too long: {MAX_MESSAGE_CHARS + 1:,} characters"),
    ("/name " + "n" * (MAX_NAME_CHARS + 1), "Name too long"),
    ("/name a\tb", "printable"),
    ("/name Al\u202eice", "not U\\+202E"),
    ("/name \u200b", "not U\\+200B"),
    ("/name \u3164", "not U\\+3164"),
    ("hi\x1b[2J", "control characters other than newline and tab, not U\\+001B"),
    ("\x9b2J", "not U\\+009B"),
    ("over\rwrite", "not U\\+000D"),
])
def test_refused_with_reason(line: str, reason: str) -> None:
    with pytest.raises(InputRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse(line)


def test_longest_message_allowed() -> None:
    assert parse("y" * MAX_MESSAGE_CHARS) == Send("y" * MAX_MESSAGE_CHARS)


def test_multiline_messages_and_tabs_are_sent() -> None:
    assert parse("one\ntwo\tthree") == Send("one\ntwo\tthree")


@pytest.fixture(scope="module")
def module_db() -> Iterator[tuple[Database, Identity, object]]:
    with Database.open(None, QUICKSTART_CHAT) as db:
        me = Identity.random()
        yield db, me, db.connect(me)


def module_refuses(db_me: tuple[Database, Identity, object], reducer: str, text: str) -> bool:
    db, me, conn = db_me
    return not db.call(reducer, text, sender=me, connection_id=conn).ok


texts = st.lists(st.one_of(
    st.text(max_size=8), st.sampled_from([text for _, text in CORPUS]), st.text(" \n\t\r", max_size=3),
    st.characters(exclude_categories=("Cs",)), st.just("x" * 30), st.just("y" * 3_990),
), min_size=1, max_size=5).map("".join).filter(bool)


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_the_tui_refuses_exactly_the_names_and_messages_the_module_refuses(module_db, text: str) -> None:
    """The module is the authority; the TUI's checks only answer sooner, and never differently."""
    assert (name_problem(text) is not None) == module_refuses(module_db, "set_name", text), text
    assert (message_problem(text) is not None) == module_refuses(module_db, "send_message", text), text


for _, hostile in CORPUS:  # every attack we know of, besides what hypothesis finds
    test_the_tui_refuses_exactly_the_names_and_messages_the_module_refuses = example(text=hostile)(
        test_the_tui_refuses_exactly_the_names_and_messages_the_module_refuses)
