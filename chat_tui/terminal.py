"""What chat-tui writes to the terminal itself, beside what Textual draws: the window title and the
signals of a mention (the bell, a desktop notification). Plain strings, no I/O: the app hands them
to Textual's driver.

Each sequence carries text someone else chose (a name, a message, the server's address), so every
such text goes through ``inert`` first: ``db_core.visible`` turns ESC, BEL and the C1 controls
(ST included) into visible stand-ins, so nothing can end the sequence early or start another, and
``;`` (the field separator of OSC 777, and of ConEmu's and Windows Terminal's OSC 9 sub-commands)
becomes ``,``.

Desktop notifications: one protocol, never both, since terminals that read both (kitty, WezTerm,
Ghostty) would show two. OSC 777 (``notify;TITLE;BODY``) is read by the most terminals (foot,
kitty, WezTerm, Konsole, rxvt-unicode, Fedora's VTE); iTerm2 reads only OSC 9 (``BODY``), so it
gets that (``TERM_PROGRAM=iTerm.app``). A terminal that reads neither ignores an OSC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from chat_tui.unread import Alert, NotifyMode
from db_core.visible import visible

BELL = "\x07"
TITLE_PUSH = "\x1b[22;0t"
"""Save the window title on the terminal's title stack (xterm's XTWINOPS; others ignore it)."""
TITLE_POP = "\x1b[23;0t"
"""Restore the title saved by ``TITLE_PUSH``: the shell's title is back after chat-tui."""
TITLE_MAX = 120
BODY_MAX = 200
"""Characters of a notification's text: enough to read, short enough for any notification."""


class Desktop(enum.StrEnum):
    """Which desktop notification sequence the terminal reads."""

    OSC777 = "777"
    OSC9 = "9"


def desktop_protocol(environ: Mapping[str, str]) -> Desktop:
    """The protocol for the terminal ``environ`` describes (``os.environ``)."""
    return Desktop.OSC9 if environ.get("TERM_PROGRAM") == "iTerm.app" else Desktop.OSC777


def inert(text: str, limit: int) -> str:
    """``text`` on one line, safe inside an OSC sequence (see the module docstring), cut to ``limit``
    characters."""
    text = visible(" ".join(text.split())).replace(";", ",")   # a message's line breaks become spaces
    return text if len(text) <= limit else text[:limit - 1] + "…"


def title(text: str) -> str:
    """Set the window title to ``text`` (OSC 2)."""
    return f"\x1b]2;{inert(text, TITLE_MAX)}\x07"


def notification(mode: NotifyMode, alert: Alert, where: str, protocol: Desktop) -> str:
    """What to write for ``alert`` in ``mode``: the bell, a desktop notification titled with the
    sender and ``where`` (the chat's name), or nothing."""
    if mode is NotifyMode.BELL:
        return BELL
    if mode is NotifyMode.OFF:
        return ""
    sender, body = inert(alert.sender, TITLE_MAX), inert(alert.text, BODY_MAX)
    if protocol is Desktop.OSC9:
        return f"\x1b]9;{sender}: {body}\x07"
    return f"\x1b]777;notify;{sender} in {inert(where, TITLE_MAX)};{body}\x07"
