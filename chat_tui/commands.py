"""What a line typed into the composer means. No I/O.

A plain line is a message; ``/name NAME``, ``/help`` and ``/quit`` are commands;
``//text`` sends ``/text`` literally. Anything else starting with ``/`` is
refused, never sent (the reference console client sends ``/quit`` as a message).

Names and messages the quickstart-chat module would refuse are refused here at
once, by the same rules (``chat_server/modules/quickstart_chat.py`` is their
authority; a test keeps the two in step): a name is at most 32 printable
characters on one line, drawn as written; a message at most 4,000 characters,
with no control characters but newline and tab.
"""

from __future__ import annotations

import dataclasses
import re

from db_core.visible import visible

MAX_MESSAGE_CHARS = 4000
MAX_NAME_CHARS = 32
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # control characters but tab and newline

#: Command, argument synopsis, what it does; the help screen and Tab completion use it.
COMMANDS: list[tuple[str, str, str]] = [
    ("/name", "NAME", "set your display name"),
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


@dataclasses.dataclass(frozen=True, slots=True)
class Quit:
    pass


Action = Send | SetName | Help | Quit


def parse(line: str) -> Action:
    """The action for ``line``, or InputRefused with the reason."""
    if not line.strip():
        raise InputRefused("Nothing to send: the message is empty.")
    if line.startswith("//"):
        return _message(line[1:])
    if not line.startswith("/"):
        return _message(line)
    word, _, rest = line.partition(" ")
    command = word.lower()
    if command == "/name":
        return SetName(_name(rest.strip()))
    if command in ("/help", "/?"):
        return Help()
    if command in ("/quit", "/exit"):
        return Quit()
    raise InputRefused(f"Unknown command {word}: not sent. Type /help for commands; "
                       f"start a message with // to send a line beginning with /.")


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
