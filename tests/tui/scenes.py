"""Fixed chat scenes for snapshot tests and screenshots: the app fed the messages its
connection worker would post, with frozen identities, clock, time zone and theme."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from textual import events
from textual.pilot import Pilot

from chat_tui import app as app_module
from chat_tui.app import ChatApp
from chat_server.reconnect import Pending
from chat_tui.connection import CallDone, CallStatus, Changes, ConnState, Status, Welcome
from chat_tui.widgets.status_bar import StatusBar
from db_core.cache import RowEvent
from db_core.types import Identity

SERVER = "127.0.0.1:3000"
ALICE = Identity(bytes.fromhex("a1ce" * 16))
BOB = Identity(bytes.fromhex("b0b0" * 16))
ANON = Identity(bytes.fromhex("c0ffee00" * 8))
CAROL = Identity(bytes.fromhex("ca201e00" * 8))
DAY1 = 1_796_380_200_000_000          # 2026-12-03 10:30 UTC, in microseconds
MINUTE = 60_000_000


class User(NamedTuple):
    identity: Identity
    name: str | None
    online: bool


class Message(NamedTuple):
    sender: Identity
    sent: int
    text: str


@contextmanager
def frozen() -> Iterator[None]:
    """UTC local time, a fixed 'now' for lines the app stamps itself, a stopped countdown clock."""
    old_tz, old_now, old_clock = os.environ.get("TZ"), app_module.now_us, StatusBar.clock
    os.environ["TZ"] = "UTC"
    time.tzset()
    app_module.now_us = lambda: DAY1 + 24 * 60 * MINUTE + 5 * MINUTE
    StatusBar.clock = lambda: 0.0
    try:
        yield
    finally:
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
        app_module.now_us = old_now
        StatusBar.clock = old_clock


def make_app() -> ChatApp:
    app = ChatApp(server=SERVER, connect=False)
    return app


async def settle(pilot: Pilot) -> None:
    """Wait until the app shows everything posted to it: the log's and the user list's batching
    timers (FLUSH_EVERY, USERS_EVERY) have fired, then the repaint after them. A bare pause does
    not wait for those timers, so a shot could catch the app half-way (seen at 200 columns)."""
    app: ChatApp = pilot.app  # type: ignore[assignment]  # Pilot types its app as a plain App
    deadline = time.monotonic() + 10
    await pilot.pause()
    while app.log_feed.pending or app.users_feed.pending:
        if time.monotonic() > deadline:
            raise AssertionError("the scene did not settle in 10 s")
        await pilot.pause(0.02)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


CONVERSATION = [
    Message(ALICE, DAY1, "Morning all! Is the build green again?"),
    Message(BOB, DAY1 + 2 * MINUTE, "It is. The flaky test was a race in the reconnect loop; fixed on main."),
    Message(ANON, DAY1 + 3 * MINUTE, "hello? first time here"),
    Message(ALICE, DAY1 + 4 * MINUTE, "Welcome! Type /name to pick a name, /help for the rest."),
]


async def conversation(pilot: Pilot) -> None:
    """Three users: Alice (me), Bob, and a newcomer who names herself Carol; a day change."""
    app: ChatApp = pilot.app  # type: ignore[assignment]  # Pilot types its app as a plain App
    app.composer.cursor_blink = False
    app.post_message(Status(ConnState.ONLINE, f"Connected to {SERVER}"))
    app.post_message(Welcome(ALICE, SERVER,
                             [User(ALICE, "Alice", True), User(BOB, "Bob", True), User(ANON, None, True),
                              User(CAROL, "Dave", False)],
                             CONVERSATION, has_older=False, first=True))
    day2 = DAY1 + 24 * 60 * MINUTE
    app.post_message(Changes([RowEvent("update", "user", User(ANON, None, True), User(ANON, "Carol", True))], day2))
    app.post_message(Changes([RowEvent("insert", "message", None,
                                       Message(ANON, day2 + MINUTE, "Thanks Alice, that worked."))], day2 + MINUTE))
    app.post_message(Changes([RowEvent("update", "user", User(BOB, "Bob", True), User(BOB, "Bob", False))],
                             day2 + 2 * MINUTE))
    app.post_message(Changes([RowEvent("insert", "message", None,
                                       Message(ANON, day2 + 3 * MINUTE, "@alice can I ask about the protocol?"))],
                             day2 + 3 * MINUTE))
    await settle(pilot)


async def errors(pilot: Pilot) -> None:
    """A refused input line and a failed reducer, as the user sees them."""
    await conversation(pilot)
    app: ChatApp = pilot.app  # type: ignore[assignment]  # Pilot types its app as a plain App
    await pilot.press(*"/nick Al", "enter")
    app.post_message(CallDone(Pending("set_name", ("",)), CallStatus.FAILED, "Names must not be empty"))
    await pilot.pause()


async def long_history(pilot: Pilot) -> None:
    """2,000 messages, scrolled back a few pages while more arrive: the new-messages marker."""
    app: ChatApp = pilot.app  # type: ignore[assignment]  # Pilot types its app as a plain App
    app.composer.cursor_blink = False
    people = [ALICE, BOB, ANON, CAROL]
    rows = [Message(people[i % 4], DAY1 + i * MINUTE // 4, f"message number {i}: " + "lorem ipsum " * (i % 7))
            for i in range(2000)]
    app.post_message(Status(ConnState.ONLINE, f"Connected to {SERVER}"))
    app.post_message(Welcome(ALICE, SERVER, [User(ALICE, "Alice", True), User(BOB, "Bob", True),
                                             User(ANON, "Carol", True), User(CAROL, None, False)],
                             rows, has_older=False, first=True))
    await pilot.pause()
    for _ in range(3):
        await pilot.press("pageup")
    later = DAY1 + 2000 * MINUTE // 4
    app.post_message(Changes([RowEvent("insert", "message", None, Message(BOB, later + i, f"new {i}"))
                              for i in range(3)], later))
    await settle(pilot)


async def offline(pilot: Pilot) -> None:
    """The connection dropped; a message typed meanwhile waits."""
    await conversation(pilot)
    app: ChatApp = pilot.app  # type: ignore[assignment]  # Pilot types its app as a plain App
    app.post_message(Status(ConnState.OFFLINE, "Offline: connection lost; reconnecting in 2 s",
                            retry_in=2.0, reason="connection lost"))
    await pilot.pause()
    await pilot.press(*"see you when the wifi is back", "enter")
    await settle(pilot)


async def filtered(pilot: Pilot) -> None:
    """The conversation with an action (``/me``), then F2: presence and rename lines hidden."""
    await conversation(pilot)
    app: ChatApp = pilot.app  # type: ignore[assignment]  # Pilot types its app as a plain App
    day2 = DAY1 + 24 * 60 * MINUTE
    app.post_message(Changes([RowEvent("insert", "message", None,
                                       Message(ANON, day2 + 4 * MINUTE, "/me waves at everyone"))], day2 + 4 * MINUTE))
    await settle(pilot)
    await pilot.press("f2")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


async def unread(pilot: Pilot) -> None:
    """The conversation, then the terminal loses focus and more arrives: the unread line above the
    first message since, the count in the status line and the title."""
    await conversation(pilot)
    app: ChatApp = pilot.app  # type: ignore[assignment]  # Pilot types its app as a plain App
    app.post_message(events.AppBlur())
    await pilot.pause()
    day2 = DAY1 + 24 * 60 * MINUTE
    app.post_message(Changes([RowEvent("update", "user", User(BOB, "Bob", False), User(BOB, "Bob", True))],
                             day2 + 6 * MINUTE))
    app.post_message(Changes([RowEvent("insert", "message", None,
                                       Message(BOB, day2 + 7 * MINUTE, "Back. Alice, the wire format is in "
                                               "docs/protocol.md if Carol wants it."))], day2 + 7 * MINUTE))
    app.post_message(Changes([RowEvent("insert", "message", None,
                                       Message(ANON, day2 + 8 * MINUTE, "Found it, thanks both!"))],
                             day2 + 8 * MINUTE))
    await settle(pilot)


async def search(pilot: Pilot) -> None:
    """The conversation, ctrl+f, "the" typed, then Enter: every match highlighted, the current
    one (the second newest) apart, the bar counting them."""
    await conversation(pilot)
    await pilot.press("ctrl+f", *"the")
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()
    app: ChatApp = pilot.app  # type: ignore[assignment]  # Pilot types its app as a plain App
    app.search_bar.field.cursor_blink = False
    await pilot.wait_for_scheduled_animations()
