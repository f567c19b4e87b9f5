"""What the chat's views show: ``LogEntry`` records and their kinds, ``UserLine``s, each user's
name colour (a hue chosen by identity, drawn lighter on dark themes and darker on light ones).

Plain data, no Textual: the model (``chat``) makes them, the widgets (``MessageLog``,
``UserList``) draw them.
"""

from __future__ import annotations

import colorsys
import dataclasses
import enum
import zlib
from collections.abc import Hashable

__all__ = ["ACTION_PREFIX", "EntryKind", "LogEntry", "NICK_HUES", "UserLine", "contrast", "nick_colour", "nick_hue",
           "nick_style"]

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
    sender: bytes = b""
    """The sender's identity (``MESSAGE`` entries): the log draws the sender's current name (and
    colour) from it, so one message reads the same in every client, whenever it arrived."""
    name: str = ""
    """The sender's display name when the entry was made: drawn only while the log knows no
    name for ``sender`` (an unsent message before the welcome, a test's entry)."""
    highlight: bool = False
    """The reader is mentioned: the row is tinted and the sender's name highlighted."""
    mention: str = ""
    """With ``highlight``: the word that mentions the reader (their name then), highlighted in the text."""
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


NICK_HUES: tuple[int, ...] = (0, 40, 80, 120, 160, 200, 240, 280, 320)
"""Name colours, as hues in degrees: nine spaced 40 degrees apart (red, orange, yellow, green,
sea green, sky, blue, violet, magenta), so no two look alike, at one lightness per theme."""


def _hsl(hue: int, saturation: float, lightness: float) -> str:
    red, green, blue = colorsys.hls_to_rgb(hue / 360, lightness, saturation)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def _luminance(colour: str) -> float:
    """WCAG relative luminance of "#rrggbb"."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    red, green, blue = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: str, other: str) -> float:
    """WCAG contrast ratio of two "#rrggbb" colours (1 to 21)."""
    high, low = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _readable(hue: int, dark: bool) -> str:
    """The hue at the lightness nearest to a common one (0.66 on dark, 0.34 on light) that contrasts
    3.5:1 with the lightest dark theme surface (nord's) or the darkest light one (textual-light's)."""
    lightness, step, ground = (0.66, 0.01, "#3b4252") if dark else (0.34, -0.01, "#d8d8d8")
    while contrast(_hsl(hue, 0.75, lightness), ground) < 3.5:
        lightness += step
    return _hsl(hue, 0.75, lightness)


# Light on a dark background, dark on a light one: every hue readable against the theme.
_ON_DARK = tuple(_readable(hue, dark=True) for hue in NICK_HUES)
_ON_LIGHT = tuple(_readable(hue, dark=False) for hue in NICK_HUES)


def nick_hue(identity: bytes) -> int:
    """A user's hue (an index into ``NICK_HUES``), the same in every run and client.

    crc32 rather than ``hash()``: Python salts string/bytes hashes per process."""
    return zlib.crc32(identity) % len(NICK_HUES)


def nick_colour(identity: bytes, *, dark: bool = True) -> str:
    """A user's name colour ("#rrggbb") on a dark (or light) theme."""
    return (_ON_DARK if dark else _ON_LIGHT)[nick_hue(identity)]


def nick_style(identity: bytes, *, dark: bool = True) -> str:
    """A stable "bold <colour>" Rich style for a user's name (see ``nick_colour``)."""
    return f"bold {nick_colour(identity, dark=dark)}"
