"""What the chat's views show: ``LogEntry`` records and their kinds, ``UserLine``s, each user's
name colour.

Plain data, no Textual: the model (``chat``) makes them, the widgets (``MessageLog``,
``UserList``) draw them.
"""

from __future__ import annotations

import dataclasses
import enum
import zlib
from collections.abc import Hashable

__all__ = ["ACTION_PREFIX", "EntryKind", "LogEntry", "NICK_COLOURS", "UserLine", "nick_style"]

ACTION_PREFIX = "/me "
"""A message whose text starts so is an action (IRC's ``/me``): ``/me waves`` is drawn ``* Alice waves``."""


class EntryKind(enum.StrEnum):
    """What a log entry is; it decides how the entry is drawn."""

    MESSAGE = "message"
    """Someone's message, under their name."""
    SYSTEM = "system"
    """The app's own notices (the welcome, "Reconnected."): dim italic, marked ``--``."""
    PRESENCE = "presence"
    """Someone connected, disconnected or was renamed: drawn as ``SYSTEM``; ``/filter presence``
    hides these."""
    ERROR = "error"
    """A refusal or a failure: red, marked ``!!``."""


@dataclasses.dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of chat history, as the model hands it to ``MessageLog``.

    ``key`` identifies the entry: adding a key that is already present is a
    no-op, so a backlog replayed on reconnect does not duplicate anything.
    """

    key: Hashable
    time: int
    """Microseconds since the Unix epoch (UTC); shown as local HH:MM."""
    kind: EntryKind
    text: str
    """As written: a message's newlines each start a row, other entries are drawn on one line."""
    name: str = ""
    """The sender's display name (``MESSAGE`` entries)."""
    name_style: str = ""
    """A Rich style string for the name, e.g. "bold #61afef" (see ``nick_style``)."""
    highlight: bool = False
    """The reader is mentioned: the whole entry is tinted."""
    pending: bool = False
    """Typed while offline, not sent yet: dim italic with a ``…`` marker."""
    failed: bool = False
    """Could not be sent: a red ``✗`` marker."""
    action: bool = False
    """A ``MESSAGE`` whose text starts with ``ACTION_PREFIX``: drawn ``* name text`` in the text
    column, the name column left empty (irssi's look)."""


@dataclasses.dataclass(frozen=True, slots=True)
class UserLine:
    """One user as the user list shows them."""

    key: str          # the identity's hex: the option id
    name: str         # as the user set it; drawn visible
    online: bool
    me: bool = False
    name_style: str = ""


# Mid-brightness colours that stay readable on dark and light backgrounds and
# are far enough apart to tell neighbours in a conversation apart.
NICK_COLOURS: tuple[str, ...] = (
    "#e06c75",  # red
    "#98c379",  # green
    "#e5c07b",  # yellow
    "#61afef",  # blue
    "#c678dd",  # purple
    "#56b6c2",  # cyan
    "#d19a66",  # orange
    "#f08dbf",  # pink
    "#7fd1b9",  # mint
    "#a9a1e1",  # lavender
    "#b5bd68",  # olive
    "#81a2be",  # steel
)


def nick_style(identity: bytes) -> str:
    """A stable "bold <colour>" style for a user, the same in every run and client.

    crc32 rather than ``hash()``: Python salts string/bytes hashes per process.
    """
    return f"bold {NICK_COLOURS[zlib.crc32(identity) % len(NICK_COLOURS)]}"
