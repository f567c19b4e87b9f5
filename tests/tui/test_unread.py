"""The unread model (``chat_tui.unread``) and the sequences it makes the terminal get
(``chat_tui.terminal``), without a widget."""

from __future__ import annotations

import re

import pytest

from chat_tui import terminal
from chat_tui.entries import EntryKind, LogEntry
from chat_tui.unread import NOTIFY_EVERY, Alert, NotifyMode, Unread

ME, BOB = b"\x01" * 16, b"\x02" * 16


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def said(key: str, text: str = "hi", sender: bytes = BOB, *, at: int = 0, mention: bool = False) -> LogEntry:
    return LogEntry(key=key, time=at, kind=EntryKind.MESSAGE, text=text, sender=sender, name="Bob",
                    highlight=mention, mention="alice" if mention else "", action=text.startswith("/me "))


def presence(key: str) -> LogEntry:
    return LogEntry(key=key, time=0, kind=EntryKind.PRESENCE, text="Bob connected.")


def test_nothing_is_unread_while_you_are_present() -> None:
    unread = Unread()
    unread.arrived([said("a"), said("b", mention=True)], ME)
    assert (unread.count, unread.mentions, unread.marker) == (0, 0, None)
    assert unread.title("quickstart-chat") == "quickstart-chat"


def test_away_counts_messages_from_others_only_and_marks_the_first() -> None:
    unread = Unread()
    unread.focus(False, line_in_view=True)
    assert unread.away
    unread.arrived([presence("p"), said("mine", sender=ME)], ME)
    assert (unread.count, unread.marker) == (0, None), "own messages and presence lines are never unread"
    unread.arrived([said("b", at=2), said("a", at=1, mention=True)], ME)
    unread.arrived([said("c", at=3)], ME)
    assert (unread.count, unread.mentions, unread.marker) == (3, 1, "a")
    assert unread.title("quickstart-chat") == "(3, @1) quickstart-chat"
    # Back, but scrolled up: still away; at the end with focus: present, counts gone, the line stays.
    unread.scrolled(False)
    unread.focus(True, line_in_view=False)
    assert unread.away and unread.count == 3
    unread.scrolled(True)
    assert (unread.count, unread.mentions, unread.marker) == (0, 0, "a")
    assert unread.title("quickstart-chat") == "quickstart-chat"


def test_scrolling_up_is_leaving_too() -> None:
    unread = Unread()
    unread.scrolled(False)
    unread.arrived([said("a")], ME)
    assert (unread.count, unread.marker) == (1, "a")
    assert unread.title("t") == "(1) t"


def test_a_seen_line_moves_with_the_next_unread_message_and_not_before() -> None:
    unread = Unread()
    unread.focus(False, line_in_view=True)
    unread.arrived([said("a")], ME)
    unread.focus(True, line_in_view=True)   # back, and the line is on screen: seen
    unread.scrolled(False)                  # scrolled up to read above it: left again
    assert unread.marker == "a", "the line stays until something new arrives"
    unread.scrolled(True)
    unread.focus(False, line_in_view=True)
    unread.arrived([said("b")], ME)
    assert (unread.marker, unread.count) == ("b", 1)


def test_a_line_never_scrolled_back_to_stays_where_it_is() -> None:
    unread = Unread()
    unread.focus(False, line_in_view=True)
    unread.arrived([said("a"), said("b")], ME)
    unread.focus(True, line_in_view=False)   # back at the end, the line above the view
    unread.focus(False, line_in_view=False)  # and away again without looking for it
    unread.arrived([said("c")], ME)
    assert (unread.marker, unread.count) == ("a", 1)
    # Shown while unfocused does not count as seen; shown while focused does.
    unread.viewed()
    unread.focus(True, line_in_view=False)
    unread.focus(False, line_in_view=False)
    unread.arrived([said("d")], ME)
    assert unread.marker == "a"
    unread.focus(True, line_in_view=False)
    unread.viewed()
    unread.focus(False, line_in_view=False)
    unread.arrived([said("e")], ME)
    assert unread.marker == "e"


def test_sending_clears_the_line() -> None:
    unread = Unread()
    unread.scrolled(False)
    unread.arrived([said("a")], ME)
    unread.scrolled(True)
    unread.sent()
    assert unread.marker is None
    unread.scrolled(False)
    unread.arrived([said("b")], ME)
    assert unread.marker == "b"


@pytest.mark.parametrize(("reported", "focused", "alerts"), [
    (True, True, False),     # the terminal says you are looking: nothing
    (True, False, True),     # in the background: notify
    (False, True, True),     # a terminal that never reports focus: every mention notifies
])
def test_a_mention_notifies_only_in_the_background(reported: bool, focused: bool, alerts: bool) -> None:
    unread = Unread()
    unread.focus_reported = reported
    unread.focus(focused, line_in_view=True)
    assert unread.arrived([said("a")], ME) is None, "a message without a mention never notifies"
    alert = unread.arrived([said("b", "alice: look", mention=True)], ME)
    assert (alert == Alert("Bob", "alice: look")) is alerts


def test_notifications_are_rate_limited_and_can_be_off() -> None:
    clock = Clock()
    unread = Unread(clock=clock)
    unread.focus(False, line_in_view=True)
    assert unread.arrived([said("a", mention=True)], ME) is not None
    clock.now += NOTIFY_EVERY - 0.1
    assert unread.arrived([said("b", mention=True)], ME) is None, "a flood notifies once"
    clock.now += 0.2
    assert unread.arrived([said("c", mention=True)], ME) is not None
    assert unread.mentions == 3, "every mention is counted, notified or not"
    unread.notify = NotifyMode.OFF
    clock.now += NOTIFY_EVERY
    assert unread.arrived([said("d", mention=True)], ME) is None
    assert unread.arrived([said("e", sender=ME, mention=True)], ME) is None


def test_an_action_notifies_as_the_log_shows_it() -> None:
    unread = Unread()
    unread.focus(False, line_in_view=True)
    alert = unread.arrived([said("a", "/me waves at alice", mention=True)], ME)
    assert alert == Alert("Bob", "* Bob waves at alice")


# -- what the terminal gets ------------------------------------------------------------

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
HOSTILE = Alert("Eve\x1b]0;owned\x07;x", "hi\x1b]777;notify;fake;text\x07\x9c\x1b[2J\nnext; line")


def test_notifications_carry_no_control_characters_but_their_frame() -> None:
    assert terminal.notification(NotifyMode.BELL, HOSTILE, "chat", terminal.Desktop.OSC777) == "\x07"
    assert terminal.notification(NotifyMode.OFF, HOSTILE, "chat", terminal.Desktop.OSC777) == ""
    osc777 = terminal.notification(NotifyMode.DESKTOP, HOSTILE, "chat;x", terminal.Desktop.OSC777)
    assert osc777.startswith("\x1b]777;notify;") and osc777.endswith("\x07")
    inner = osc777[len("\x1b]777;notify;"):-1]
    assert not CONTROL.search(inner)
    title, body = inner.split(";")   # exactly the two fields: a ';' in the text moves nothing
    assert title == "Eve␛]0,owned␇,x in chat,x"
    assert body == "hi␛]777,notify,fake,text␇<U+009C>␛[2J next, line"
    osc9 = terminal.notification(NotifyMode.DESKTOP, HOSTILE, "chat", terminal.Desktop.OSC9)
    assert osc9.startswith("\x1b]9;") and osc9.endswith("\x07") and not CONTROL.search(osc9[4:-1])
    assert ";" not in osc9[4:-1]


def test_title_and_desktop_protocol() -> None:
    sequence = terminal.title("(2) quickstart-chat — you are \x1b]2;x\x07")
    assert sequence.startswith("\x1b]2;") and sequence.endswith("\x07")
    assert not CONTROL.search(sequence[4:-1])
    assert len(terminal.title("x" * 1000)) == len("\x1b]2;\x07") + terminal.TITLE_MAX
    assert terminal.desktop_protocol({"TERM_PROGRAM": "iTerm.app"}) is terminal.Desktop.OSC9
    assert terminal.desktop_protocol({"TERM": "xterm-kitty"}) is terminal.Desktop.OSC777
