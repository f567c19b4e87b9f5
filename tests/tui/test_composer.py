"""The composer and the commands, driven by Pilot against a real in-process server: blank and
refused lines, pastes that are too long or start with ``/``, nick completion, ``/me``,
``/filter presence``, and Escape on the Keys panel."""

from __future__ import annotations

from textual import events
from textual.app import App, ComposeResult
from textual.widgets import HelpPanel, TextArea

from chat_server.client import Client
from chat_server.server import ChatServer
from chat_tui.app import ChatApp
from chat_tui.commands import MAX_MESSAGE_CHARS
from chat_tui.screens import PasteScreen
from chat_tui.widgets.composer import Composer

from .pilots import SIZE, log_text, online, two_users, type_line, until


async def stored_texts(url: str) -> list[str]:
    """The message texts the database holds."""
    checker = await Client.connect(url, "quickstart-chat")
    try:
        return [row[0] for row in (await checker.sql("SELECT text FROM message")).rows]
    finally:
        await checker.close()


async def test_a_blank_line_is_ignored_and_leaves_nothing_to_spoil_a_command(srv: ChatServer) -> None:
    """Issue 12: "   " Enter was refused, its spaces stayed in the input, and the next
    "/name Carol2" was broadcast as a message."""
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        before = log_text(app)
        await type_line(pilot, "   ")
        await pilot.press("enter")                     # a bare Enter too
        await pilot.pause(0.1)
        assert app.composer.value == ""                # nothing stays in the input
        assert log_text(app) == before                 # and no red line
        await type_line(pilot, "/name Carol2")
        await until(pilot, lambda: app.state.my_name == "Carol2", what="renamed to Carol2")
        # Spaces before a command (typed, or left over) keep it a command.
        await type_line(pilot, "   /name Carol3")
        await until(pilot, lambda: app.state.my_name == "Carol3", what="renamed to Carol3")
        assert await stored_texts(url) == []           # no message was sent


async def test_a_refused_line_stays_and_a_command_after_it_runs(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        composer = app.composer
        long_line = "y" * (MAX_MESSAGE_CHARS + 1)
        composer.post_message(events.Paste(long_line))   # one line: inserted as typed
        await until(pilot, lambda: composer.value == long_line, what="paste inserted")
        await pilot.press("enter")
        await until(pilot, lambda: "Message too long: 4,001 characters" in log_text(app))
        assert composer.value == long_line             # kept for editing
        await pilot.press("ctrl+u")                   # delete it all (the cursor is at the end)
        assert composer.value == ""
        # Typed on before the refusal came back: the refused line goes to the history instead.
        composer.value = "draft"
        composer.post_message(Composer.Submitted(composer, "/nick Bob"))
        await until(pilot, lambda: "Unknown command /nick" in log_text(app))
        assert composer.value == "draft"
        await pilot.press("ctrl+u")
        await pilot.press("up")
        assert composer.value == "/nick Bob"
        await pilot.press("ctrl+u")
        await type_line(pilot, "/name Dora")
        await until(pilot, lambda: app.state.my_name == "Dora", what="renamed to Dora")
        assert await stored_texts(url) == []


async def test_a_long_paste_that_is_refused_stays_in_the_dialog_for_editing(srv: ChatServer) -> None:
    """Issue 12: a 5,099-character paste offered Send, was refused as too long, and was gone."""
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        text = "\n".join(f"{i:03d} " + "z" * 46 for i in range(100))[:5099]
        assert len(text) == 5099
        app.composer.post_message(events.Paste(text))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen), what="paste dialog")
        dialog = app.screen
        assert isinstance(dialog, PasteScreen)
        problem = dialog.query_one("#paste-problem")
        await until(pilot, lambda: "Message too long: 5,099 characters" in str(problem.render()),
                    what="the refusal shown at once")
        await pilot.press("enter")                     # Send: refused, the dialog stays
        await pilot.pause(0.1)
        assert app.screen is dialog
        area = dialog.query_one("#paste-text", TextArea)
        assert area.text == text                       # nothing lost
        area.text = text[:3000]                       # edited down to the limit
        await until(pilot, lambda: str(problem.render()).strip() == "", what="the refusal gone")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PasteScreen), what="dialog closed")
        await until(pilot, lambda: "001 zzz" in log_text(app), what="the message shown")
        for _ in range(50):
            if await stored_texts(url):
                break
            await pilot.pause(0.05)
        assert await stored_texts(url) == [text[:3000]]


async def test_a_multiline_paste_starting_with_a_slash_is_a_message_not_a_command(srv: ChatServer) -> None:
    """Issue 12: a pasted "/name Multi\\nLine" asked "Send them as one message?" and ran a command."""
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        app.composer.post_message(events.Paste("/name Multi\nLine"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen), what="paste dialog")
        question = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "sent as a message, not run as a command" in question
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PasteScreen))
        for _ in range(50):
            if await stored_texts(url):
                break
            await pilot.pause(0.05)
        assert await stored_texts(url) == ["/name Multi\nLine"]
        assert app.state.my_name is None               # no name was set


async def test_at_prefix_tab_completes_a_nick(srv: ChatServer) -> None:
    async with two_users(srv) as (app, pilot, other, po):
        await type_line(po, "/name Bobby")
        await until(pilot, lambda: "Bobby" in app.composer.names, what="Bobby known")
        composer = app.composer
        await pilot.press("@", "B", "o", "tab")
        assert composer.value == "@Bobby "
        composer.value = ""
        await pilot.press(*"hi @bo", "tab")
        assert composer.value == "hi @Bobby "
        composer.value = ""
        await pilot.press("b", "o", "tab")
        assert composer.value == "Bobby: "             # at the start, as irssi does


class _ComposerApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Composer(id="composer")


async def test_tab_cycles_through_matching_nicks() -> None:
    app = _ComposerApp()
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.names = ["Bob", "Bobby", "Alice"]
        composer.focus()
        await pilot.press("@", "b", "tab")
        assert composer.value == "@Bob "
        await pilot.press("tab")
        assert composer.value == "@Bobby "
        await pilot.press("tab")
        assert composer.value == "@Bob "
        composer.value = ""
        await pilot.press("@", "tab")                  # "@" alone: every name in turn
        assert composer.value == "@Bob "


async def test_escape_closes_the_keys_panel() -> None:
    app = ChatApp(connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Keys")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: bool(app.screen.query(HelpPanel)), what="Keys panel shown")
        await pilot.press("escape")
        await until(pilot, lambda: not app.screen.query(HelpPanel), what="Keys panel closed")
        assert app.is_running


async def test_me_shows_as_an_action_and_is_stored_as_its_text(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    async with two_users(srv) as (alice, pa, bob, pb):
        await type_line(pa, "/name Alice")
        await until(pb, lambda: "renamed to Alice." in log_text(bob))
        await type_line(pa, "/me waves")
        await until(pb, lambda: "* Alice waves" in log_text(bob), what="the action at Bob")
        await until(pa, lambda: "* Alice waves" in log_text(alice) and "…" not in log_text(alice),
                    what="the action at Alice, sent")
        row = next(r for r in bob.log_view.lines_text() if "* Alice waves" in r)
        assert "/me" not in row
        assert await stored_texts(url) == ["/me waves"]


async def test_filter_presence_hides_and_shows_presence_lines(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        first = ChatApp(server=url)
        async with first.run_test(size=SIZE) as pf:
            await online(pf, first)
            await type_line(pf, "/name Ed")
            await type_line(pf, "hello from Ed")
            await until(pilot, lambda: "renamed to Ed." in log_text(app) and "hello from Ed" in log_text(app))
        await until(pilot, lambda: "Ed disconnected." in log_text(app))
        assert "connected." in log_text(app)

        await type_line(pilot, "/filter presence")
        await until(pilot, lambda: "rename lines are hidden" in log_text(app), what="the notice")
        text = log_text(app)
        assert "connected." not in text and "renamed to" not in text
        assert "hello from Ed" in text                 # messages stay
        assert "presence lines hidden" in str(app.log_view.border_subtitle)
        # One arriving while hidden stays hidden, until the filter is off.
        second = ChatApp(server=url)
        async with second.run_test(size=SIZE) as ps:
            await online(ps, second)
            await type_line(ps, "/name Flo")
            await until(pilot, lambda: "Flo" in app.composer.names, what="Flo known")
        await pilot.pause(0.3)
        assert "Flo" not in log_text(app)

        await pilot.press("f2")
        await until(pilot, lambda: "rename lines are shown again" in log_text(app))
        text = log_text(app)
        assert "Ed disconnected." in text and "renamed to Flo." in text
        assert app.log_view.border_subtitle == ""


async def test_a_paste_shown_as_codes_sends_what_was_pasted_unless_edited(srv: ChatServer) -> None:
    """The dialog's editor shows a paste ``visible``; unedited, Send sends the paste itself (with
    what was typed around it); a control character is refused there, and the edit is sent."""
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        await pilot.press(*"pre ")
        app.composer.post_message(events.Paste("hi \u202eyo"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen), what="paste dialog")
        area = app.screen.query_one("#paste-text", TextArea)
        assert area.text == "pre hi <U+202E>yo"
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PasteScreen))
        assert app.composer.value == ""               # it went with the paste
        await until(pilot, lambda: "pre hi" in log_text(app))
        app.composer.post_message(events.Paste("bell\x07"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen), what="paste dialog")
        dialog = app.screen
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.screen is dialog                   # refused: still open, the reason shown
        assert "not U+0007" in str(dialog.query_one("#paste-problem").render())
        area = dialog.query_one("#paste-text", TextArea)
        area.text = area.text.replace("␇", "!")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PasteScreen))
        for _ in range(50):
            if len(await stored_texts(url)) == 2:
                break
            await pilot.pause(0.05)
        assert sorted(await stored_texts(url)) == ["bell!", "pre hi \u202eyo"]
