"""What a typed line means: messages, commands, and the refusals with their reasons."""

import pytest

from chat_tui.commands import MAX_MESSAGE_CHARS, MAX_NAME_CHARS, Help, InputRefused, Quit, Send, SetName, parse


def test_plain_line_is_a_message() -> None:
    assert parse("Hello, World!") == Send("Hello, World!")
    assert parse("  spaced  ") == Send("  spaced  ")


def test_commands() -> None:
    assert parse("/name Alice") == SetName("Alice")
    assert parse("/NAME  Al B ") == SetName("Al B")
    assert parse("/help") == Help()
    assert parse("/quit") == Quit()


def test_empty_name_goes_to_the_module() -> None:
    # The module's own answer ("Names must not be empty") is the one the user sees.
    assert parse("/name") == SetName("")
    assert parse("/name   ") == SetName("")


def test_double_slash_sends_a_literal_slash() -> None:
    assert parse("//quit is a command") == Send("/quit is a command")


@pytest.mark.parametrize("line, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("/quitt", "Unknown command /quitt: not sent"),
    ("/nick Bob", "Unknown command /nick"),
    ("x" * (MAX_MESSAGE_CHARS + 1), f"Message too long: {MAX_MESSAGE_CHARS + 1:,} characters"),
    ("/name " + "n" * (MAX_NAME_CHARS + 1), "Name too long"),
    ("/name a\tb", "printable"),
])
def test_refused_with_reason(line: str, reason: str) -> None:
    with pytest.raises(InputRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse(line)


def test_longest_message_allowed() -> None:
    assert parse("y" * MAX_MESSAGE_CHARS) == Send("y" * MAX_MESSAGE_CHARS)
