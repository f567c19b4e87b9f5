"""What a line typed into the composer means. No I/O.

A plain line is a message; a line whose first character other than a space is
``/`` is a command (``/name NAME``, ``/me ACTION``, ``/filter presence``,
``/search TEXT``, ``/help``, ``/quit``), the spaces before it ignored, so spaces left in the input
never turn a command into a message; ``//text`` sends ``/text`` literally.
Anything else starting with ``/`` is refused, never sent (the reference console
client sends ``/quit`` as a message). A blank line (nothing, or only spaces) is
ignored, as irssi and weechat do. Text of several lines (only a paste makes one)
is always a message, even when it starts with ``/``: a paste never runs a
command. ``/me waves`` is sent as the message ``/me waves``, which every client
reads, and shows as ``* Alice waves``.

Names and messages the quickstart-chat module would refuse are refused here at
once, by the same rules (``chat_server/modules/quickstart_chat.py`` is their
authority; a test keeps the two in step): a name is at most 32 printable
characters on one line, drawn as written; a message at most 4,000 characters,
with no control characters but newline and tab.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from chat_tui.entries import ACTION_PREFIX
from db_core.visible import visible

MAX_MESSAGE_CHARS = 4000
MAX_NAME_CHARS = 32
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # control characters but tab and newline

#: Command, argument synopsis, what it does; the help screen and Tab completion use it.
COMMANDS: list[tuple[str, str, str]] = [
    ("/name", "NAME", "set your display name"),
    ("/me", "ACTION", "say what you do: /me waves shows as * Alice waves"),
    ("/filter", "presence", "hide or show connect, disconnect and rename lines (F2)"),
    ("/search", "TEXT", "find TEXT in the messages, older history too (ctrl+f)"),
    ("/help", "", "show commands and keys"),
    ("/quit", "", "leave (you go offline for everyone)"),
]


class InputRefused(ValueError):
    """The line cannot be sent; the message says why, in words for the user."""


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class SetName:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Help:
    pass


class Filter(enum.Enum):
    """What ``/filter`` hides or shows."""

    PRESENCE = "presence"
    """Connect, disconnect and rename lines."""


@dataclasses.dataclass(frozen=True, slots=True)
class ToggleFilter:
    what: Filter


@dataclasses.dataclass(frozen=True, slots=True)
class Search:
    """Open the search bar with ``text`` ("" : the last search's)."""

    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Ignore:
    """A blank line: nothing happens, nothing is said."""


@dataclasses.dataclass(frozen=True, slots=True)
class Quit:
    pass


Action = Send | SetName | Help | Quit | ToggleFilter | Search | Ignore


def parse(line: str) -> Action:
    """The action for ``line``, or InputRefused with the reason."""
    if not line.strip():
        return Ignore()
    command_line = line.lstrip()
    if "\n" in line or not command_line.startswith("/"):
        return _message(line)
    if command_line.startswith("//"):
        return _message(command_line[1:])
    word, _, rest = command_line.partition(" ")
    command = word.lower()
    if command == "/name":
        return SetName(_name(rest.strip()))
    if command == "/me":
        if not rest.strip():
            raise InputRefused("Nothing to send: /me needs an action, as in /me waves.")
        return _message(ACTION_PREFIX + rest.strip())
    if command == "/filter":
        what = rest.strip().lower()
        if what != Filter.PRESENCE.value:
            unknown = f"Unknown filter {visible(what)}: " if what else ""
            raise InputRefused(f"{unknown}/filter presence hides or shows connect, disconnect and rename lines.")
        return ToggleFilter(Filter.PRESENCE)
    if command == "/search":
        return Search(rest.strip())
    if command in ("/help", "/?"):
        return Help()
    if command in ("/quit", "/exit"):
        return Quit()
    raise InputRefused(f"Unknown command {word}: not sent. Type /help for commands; "
                       f"start a message with // to send a line beginning with /.")


def refusal(line: str) -> str | None:
    """Why ``line`` would be refused (``parse`` raises InputRefused), or None."""
    try:
        parse(line)
    except InputRefused as exc:
        return str(exc)
    return None


def paste_note(text: str) -> str | None:
    """What a paste dialog should add for ``text``: several lines starting with ``/`` are not a command."""
    if "\n" in text and text.lstrip().startswith("/"):
        return "It begins with / but has several lines: it is sent as a message, not run as a command."
    return None


def message_problem(text: str) -> str | None:
    """Why the module would refuse to post ``text`` (other than its being empty), or None."""
    if len(text) > MAX_MESSAGE_CHARS:
        return f"Message too long: {len(text):,} characters (the limit is {MAX_MESSAGE_CHARS:,})."
    control = _CONTROL.search(text)
    if control is not None:
        return ("Messages must not contain control characters other than newline and tab, "
                f"not U+{ord(control.group()):04X}.")
    return None


def name_problem(name: str) -> str | None:
    """Why the module would refuse ``name`` (other than its being empty), or None."""
    if len(name) > MAX_NAME_CHARS:
        return f"Name too long: {len(name)} characters (the limit is {MAX_NAME_CHARS})."
    if "\n" in name or "\r" in name:
        return "Names must be on one line."
    for char in name:
        if not char.isprintable() or visible(char) != char:
            return f"Names must contain only printable characters, not U+{ord(char):04X}."
    if name.isspace():
        return "Names must not be only spaces."
    return None


def _message(text: str) -> Send:
    problem = message_problem(text)
    if problem is not None:
        raise InputRefused(problem)
    return Send(text)


def _name(name: str) -> str:
    # An empty name goes to the module, whose answer ("Names must not be empty") is the reference's.
    problem = name_problem(name) if name else None
    if problem is not None:
        raise InputRefused(problem)
    return name
