"""What a line typed into the composer means. No I/O.

A plain line is a message; ``/name NAME``, ``/help`` and ``/quit`` are commands;
``//text`` sends ``/text`` literally. Anything else starting with ``/`` is
refused, never sent (the reference console client sends ``/quit`` as a message).
"""

from __future__ import annotations

import dataclasses

MAX_MESSAGE_CHARS = 4000
MAX_NAME_CHARS = 32

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


def _message(text: str) -> Send:
    if len(text) > MAX_MESSAGE_CHARS:
        raise InputRefused(f"Message too long: {len(text):,} characters (the limit is {MAX_MESSAGE_CHARS:,}).")
    return Send(text)


def _name(name: str) -> str:
    # An empty name goes to the module, whose answer ("Names must not be empty") is the reference's.
    if name and not name.isprintable():
        raise InputRefused("Names must be printable text on one line.")
    if len(name) > MAX_NAME_CHARS:
        raise InputRefused(f"Name too long: {len(name)} characters (the limit is {MAX_NAME_CHARS}).")
    return name
