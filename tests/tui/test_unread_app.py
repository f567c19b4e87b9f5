"""chat-tui's unread line, unread count and mention notifications, as a user meets them: the real
app driven by Pilot against a real server, the terminal's focus changes posted as Textual's
``AppBlur``/``AppFocus`` (what its driver posts when the terminal reports them), and what the app
writes to the terminal captured at the driver."""

from __future__ import annotations

import re

from textual import events

from chat_server.client import Client
from chat_server.server import ChatServer
from chat_tui.app import ChatApp
from chat_tui.connection import Changes, ConnState, Status, Welcome
from chat_tui import unread as unread_module
from chat_tui.unread import NotifyMode
from db_core.cache import RowEvent

from . import scenes
from .pilots import SIZE, log_text, named, two_users, type_line, until



def capture(app: ChatApp) -> list[str]:
    """What ``app`` writes to the terminal from now on, past Textual's screen updates."""
    written: list[str] = []
    driver = app._driver
    assert driver is not None
    write = driver.write

    def record(data: str) -> None:
        written.append(data)
        write(data)

    driver.write = record  # type: ignore[method-assign]
    return written


def rings(written: list[str]) -> int:
    return sum(w == "\x07" for w in written)


def titles(written: list[str]) -> list[str]:
    return [m for w in written for m in re.findall("\x1b\\]2;([^\x07]*)\x07", w)]


def status(app: ChatApp) -> str:
    return " · ".join(app.status_bar.words())


def rows(app: ChatApp) -> list[str]:
    return app.log_view.lines_text()


def lines(app: ChatApp) -> list[int]:
    """The rows of ``app``'s log that are the unread line."""
    return [n for n, row in enumerate(rows(app)) if row.startswith("─") and row.strip("─") == " unread "]


async def test_away_messages_are_counted_marked_and_a_mention_rings(srv: ChatServer, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(unread_module, "NOTIFY_EVERY", 0.0)   # every mention may ring: focus alone decides
    async with two_users(srv, names=("Alice", "Bob")) as (alice, pa, bob, pb):
        written = capture(bob)
        bob.post_message(events.AppBlur())   # the terminal reports: focus went elsewhere
        await pb.pause()
        assert not bob.app_focus
        await type_line(pa, "hello?")
        await type_line(pa, "bob: are you there?")
        await type_line(pa, "/me waves")
        await until(pb, lambda: "* Alice waves" in log_text(bob), what="Alice's messages at Bob")
        await pb.pause(0.2)
        assert "3 unread, 1 mention" in status(bob)
        assert bob.title == "(3, @1) quickstart-chat"
        assert titles(written)[-1].startswith("(3, @1) quickstart-chat — you are Bob")
        assert rings(written) == 1, "the mention rang, the other messages did not"
        [line] = lines(bob)
        assert rows(bob)[line + 1].endswith("│ hello?"), "the line is above the first unread message"

        # Focus back at the end: the counts go, the line stays so Bob finds his place.
        bob.post_message(events.AppFocus())
        await pb.pause()
        assert "unread" not in status(bob) and bob.title == "quickstart-chat"
        assert titles(written)[-1].startswith("quickstart-chat — you are Bob")
        assert lines(bob) == [line]
        # Focused, a mention does not ring (the log shows it).
        await type_line(pa, "bob, still here?")
        await until(pb, lambda: "still here?" in log_text(bob), what="the second mention")
        await pb.pause(0.2)
        assert rings(written) == 1 and "unread" not in status(bob)
        # Bob's own messages are never unread, and sending clears the line.
        await type_line(pb, "yes, here")
        await until(pb, lambda: "│ yes, here" in log_text(bob), what="Bob's message")
        assert lines(bob) == []
        bob.post_message(events.AppBlur())
        await pb.pause()
        await type_line(pb, "typed with the window in the background")   # (a key gives focus back)
        await until(pb, lambda: "│ typed with the window in the background" in log_text(bob), what="sent")
        assert lines(bob) == [] and "unread" not in status(bob)


async def test_scrolled_up_counts_in_the_status_line_and_the_end_clears_it(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    bob = ChatApp(server=url)
    async with bob.run_test(size=SIZE) as pb:
        await named(pb, bob, "Bob")
        written = capture(bob)
        sender = await Client.connect(url, "quickstart-chat")
        for i in range(40):
            await sender.call("send_message", f"backlog {i}")
        await until(pb, lambda: "backlog 39" in log_text(bob), what="the backlog")
        await pb.press("pageup", "pageup")
        await pb.pause()
        assert not bob.log_view.following
        await sender.call("send_message", "while you read")
        await sender.call("send_message", "bob: and a mention")
        await until(pb, lambda: "a mention" in log_text(bob), what="the new messages")
        await pb.pause(0.2)
        assert "2 unread, 1 mention" in status(bob) and bob.title == "(2, @1) quickstart-chat"
        [line] = lines(bob)
        assert rows(bob)[line + 1].endswith("│ while you read")
        # This terminal never reported focus: a mention rings as ever, scrolled up or not.
        assert rings(written) == 1
        await pb.press("ctrl+end")
        await pb.pause()
        assert "unread" not in status(bob) and bob.title == "quickstart-chat"
        assert lines(bob) == [line], "the line stays after coming back"
        # Leaving again moves the line down once something new arrives (the old one was seen).
        await pb.press("pageup")
        await pb.pause()
        assert lines(bob) == [line], "nothing new yet: the old line stays"
        await sender.call("send_message", "later")
        await until(pb, lambda: "│ later" in log_text(bob), what="a later message")
        await pb.pause(0.2)
        [line] = lines(bob)
        assert rows(bob)[line + 1].endswith("│ later")
        assert "1 unread" in status(bob)
        await sender.close()


# -- what reaches the terminal, with messages someone chose to be hostile ------------------

# Exactly what the app may write past Textual's screen: a title, the title stack, the bell, a
# desktop notification, each with no control character inside but its own frame.
PLAIN = "[^\x00-\x1f\x7f-\x9f;]*"
ALLOWED = re.compile(f"\x1b\\[2[23];0t|\x1b\\]2;[^\x00-\x1f\x7f-\x9f]*\x07|\x07|\x1b\\]777;notify;{PLAIN};{PLAIN}\x07")
EVE = scenes.Identity(bytes.fromhex("e7e7" * 16))


async def test_a_hostile_mention_reaches_the_terminal_inert() -> None:
    """A message (and a sender name) holding OSC, BEL, ST and ``;`` from a server that does not
    refuse them: the desktop notification carries them only as visible stand-ins."""
    with scenes.frozen():
        app = ChatApp(server=scenes.SERVER, connect=False, notify=NotifyMode.DESKTOP)
        async with app.run_test(size=SIZE) as pilot:
            written = capture(app)
            app.post_message(Status(ConnState.ONLINE, "Connected"))
            app.post_message(Welcome(scenes.ALICE, scenes.SERVER,
                                     [scenes.User(scenes.ALICE, "Alice", True),
                                      scenes.User(EVE, "Eve\x1b]2;pwned\x07;", True)], [],
                                     has_older=False, first=True))
            await pilot.pause()
            app.post_message(events.AppBlur())
            await pilot.pause()
            hostile = "alice\x1b]777;notify;fake;owned\x07\x1b]0;title\x07\x9c;\x1b[2J done"
            for n, text in enumerate(["no mention \x07\x1b]9;x\x07", hostile]):
                app.post_message(Changes([RowEvent("insert", "message", None,
                                                   scenes.Message(EVE, scenes.DAY1 + n, text))], scenes.DAY1 + n))
            await until(pilot, lambda: "done" in log_text(app), what="the hostile messages")
            await pilot.pause(0.2)
            out = "".join(written)
            assert ALLOWED.sub("", out) == "", f"raw control characters written: {ALLOWED.sub('', out)!r}"
            notes = re.findall(f"\x1b\\]777;notify;({PLAIN});({PLAIN})\x07", out)
            assert len(notes) == 1, "one notification: for the mention only"
            title, body = notes[0]
            assert title == "Eve␛]2,pwned␇, in quickstart-chat"
            assert body == "alice␛]777,notify,fake,owned␇␛]0,title␇<U+009C>,␛[2J done"
            assert "\x07" not in written, "desktop mode does not ring the bell too"


async def test_off_notifies_nothing_and_the_title_is_given_back() -> None:
    with scenes.frozen():
        app = ChatApp(server=scenes.SERVER, connect=False, notify=NotifyMode.OFF)
        async with app.run_test(size=SIZE) as pilot:
            written = capture(app)
            await scenes.conversation(pilot)   # it holds a mention of Alice
            app.post_message(events.AppBlur())
            await pilot.pause()
            app.post_message(Changes([RowEvent("insert", "message", None,
                                               scenes.Message(scenes.BOB, scenes.DAY1, "alice?"))], scenes.DAY1))
            await until(pilot, lambda: "│ alice?" in log_text(app), what="the mention")
            await pilot.pause(0.2)
            assert "1 unread, 1 mention" in status(app)
            assert rings(written) == 0 and not any("777;" in w for w in written)
        assert written[-1] == "\x1b[23;0t", "the terminal's own title is restored on leaving"
