"""What chat-tui draws, against a real in-process server: the status line, the sender's names, the
layout at every width, the mention highlight, hostile names at their cell width."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from rich.style import Style
from textual.strip import Strip

from chat_server.client import Client
from chat_server.server import ChatServer, ServerConfig
from chat_tui.app import ChatApp
from db_core.types import Identity

from ..security.test_hostile_text import permissive_module
from .pilots import log_text, online, two_users, type_line, until


def rows(app: ChatApp) -> list[Strip]:
    return list(app.screen._compositor.render_strips())


def status_line(app: ChatApp) -> str:
    return rows(app)[-1].text


# -- 1. the status line --------------------------------------------------------------
async def test_offline_status_line_puts_state_countdown_and_unsent_first(tmp_path: Path) -> None:
    """Offline with a message waiting: at 80 and 120 columns the line says so in short words, the
    reconnect countdown, the unsent count and the online count as last known; the reason is in the
    log once and in the tooltip, not in the way."""
    srv = ChatServer(ServerConfig(data_dir=tmp_path, port=0))
    await srv.start()
    app = ChatApp(server=f"127.0.0.1:{srv.port}")
    async with app.run_test(size=(120, 30)) as pilot:
        await online(pilot, app)
        await until(pilot, lambda: " 1 online" in status_line(app), what="the online count")
        await srv.stop()
        await until(pilot, lambda: app.status_bar.state == "offline", what="offline")
        await type_line(pilot, "typed while offline")
        await until(pilot, lambda: app.status_bar.queued == 1, what="queued")
        for width in (80, 120):
            await pilot.resize_terminal(width, 30)
            await until(pilot, lambda: app.status_bar.state == "offline", what="offline again")
            await pilot.pause()
            line = status_line(app)
            assert line.startswith(" ○ Offline · retry in "), line
            assert " s · 1 unsent · 1 online (last known)" in line, line
            assert "cannot reach" not in line and "3…" not in line, line
        assert "3000/v1" not in status_line(app)
        assert "cannot reach" in str(app.status_bar.tooltip)
        log = log_text(app)
        # The details, once each: the connection lost, then why it cannot be made again.
        assert log.count("Disconnected (") == 1
        await pilot.pause(1.5)   # a few more attempts fail the same way
        assert log_text(app).count("Cannot connect (cannot reach") == 1, log_text(app)


# -- 2. names ------------------------------------------------------------------------
async def test_a_message_shows_its_senders_current_name_in_every_client(srv: ChatServer) -> None:
    """One client started before a rename, one after: both draw the message under the new name;
    the rename line tells the history in the one that saw it."""
    url = f"127.0.0.1:{srv.port}"
    before = ChatApp(server=url)
    async with before.run_test(size=(110, 30)) as pb:
        await online(pb, before)
        sender = await Client.connect(url, "quickstart-chat")
        anon = Identity(sender.identity).to_abbreviated_hex()
        await sender.call("send_message", "said before the rename")
        await until(pb, lambda: "said before the rename" in log_text(before), what="the message")
        line = next(r for r in before.log_view.lines_text() if "said before the rename" in r)
        assert anon[:11] in line
        await sender.call("set_name", "Bob")
        await until(pb, lambda: f"{anon} renamed to Bob." in log_text(before), what="the rename line")
        after = ChatApp(server=url)
        async with after.run_test(size=(110, 30)) as pa:
            await online(pa, after)
            await until(pa, lambda: "said before the rename" in log_text(after), what="the backlog")
            for app, pilot in ((before, pb), (after, pa)):
                await pilot.pause(0.3)   # the batched user-list refresh
                line = next(r for r in app.log_view.lines_text() if "said before the rename" in r)
                assert "Bob │ said before the rename" in line and anon[:11] not in line, line
        await sender.close()


# -- 3. layout -----------------------------------------------------------------------
async def test_layout_is_proportional_from_60_to_250_columns() -> None:
    """The user list hides below 80 columns and is a fifth of the width, 18 to 32 columns; the
    log takes the rest."""
    app = ChatApp(connect=False)
    expected = {60: None, 70: None, 79: None, 80: 18, 120: 24, 160: 32, 250: 32}
    async with app.run_test(size=(120, 30)) as pilot:
        for width, users in expected.items():
            await pilot.resize_terminal(width, 30)
            await pilot.pause()
            shown = app.users_view.display and app.users_view.size.width > 0
            assert (app.users_view.outer_size.width if shown else None) == users, width
            assert app.log_view.outer_size.width == width - (users or 0), width


# -- 4. the mention highlight ---------------------------------------------------------
async def test_a_mention_highlights_the_senders_name_and_my_name(srv: ChatServer) -> None:
    """As weechat does: the line's prefix (the sender's name) and the mentioned nick stand out, not
    only a tint of the row; the README's "your name highlighted" is what is drawn."""
    async with two_users(srv, size=(110, 30)) as (me, pm, other, po):
        await type_line(pm, "/name Alice")
        await type_line(po, "/name Bob")
        await until(pm, lambda: "renamed to Bob." in log_text(me), what="Bob named")
        await until(po, lambda: "renamed to Alice." in log_text(other), what="Alice named")
        await type_line(po, "hello alice, a question")
        await type_line(po, "no mention here")
        await until(pm, lambda: "no mention here" in log_text(me), what="the messages")
        await pm.pause(0.3)
        log = me.log_view
        name_style = log.get_component_rich_style("message-log--highlight-name")
        mention_style = log.get_component_rich_style("message-log--mention")

        def segments(text: str) -> list[tuple[str, Style]]:
            row = next(r for r in rows(me) if text in r.text)
            return [(seg.text, seg.style or Style()) for seg in row]

        mentioned = segments("a question")
        name = next(style for text, style in mentioned if text == "Bob")
        assert name.bgcolor == name_style.bgcolor and name.bgcolor is not None
        nick = next(style for text, style in mentioned if text == "alice")
        assert nick.underline and nick.color == mention_style.color
        plain = segments("no mention here")
        assert all(style.bgcolor != name_style.bgcolor for text, style in plain if text == "Bob")


# -- links -----------------------------------------------------------------------------
async def test_a_web_address_is_a_link_even_when_the_wrap_cuts_it(srv: ChatServer) -> None:
    """A message's https:// address is drawn in the link style and linked (Textual writes OSC 8
    for it), every piece of it to the whole address when it is wrapped over two rows; the
    sentence's full stop is not part of it."""
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    address = "https://example.com/" + "a" * 70 + "/end"
    async with app.run_test(size=(80, 30)) as pilot:
        await online(pilot, app)
        await type_line(pilot, f"see {address}. ok")
        await until(pilot, lambda: " ok" in log_text(app), what="the message shown")
        await pilot.pause(0.2)
        link_style = app.log_view.get_component_rich_style("message-log--link")
        linked = [(seg.text, seg.style) for row in rows(app) for seg in row if seg.style and seg.style.link]
        assert len(linked) >= 2  # cut by the wrap
        assert {style.link for _, style in linked} == {address}
        assert "".join(text for text, _ in linked) == address
        assert all(style.underline and style.color == link_style.color for _, style in linked)


# -- 5. hostile names at their cell width ---------------------------------------------
def terminal_width(text: str) -> int:
    """How wide a plain terminal draws ``text``: wide characters 2, combining marks 0, anything
    else 1 (a format or control character too, as a terminal that draws a box for it does)."""
    width = 0
    for ch in text:
        if unicodedata.category(ch) in ("Mn", "Me"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return width


async def test_hostile_names_keep_every_border_in_its_column(srv: ChatServer) -> None:
    """Names with a bidi override (U+202E), zero-width, invisible and wide characters, in the log and
    the user list: every row of the screen is exactly as wide as the terminal and the user list's
    borders are in one column, as the terminal draws them."""
    srv.publish("hostile", permissive_module(), filename="hostile.py")
    url = f"127.0.0.1:{srv.port}"
    names = ["\u202eevil.exe\u202c", "Mallory\u202e", "a\u200db\u200bc", "\u3164", "日本語の名前", "😀wide",
             "Z" + "\u0301" * 9]
    app = ChatApp(server=url, database="hostile")
    async with app.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: app.status_bar.state == "online", what="online")
        clients = []
        for name in names:
            client = await Client.connect(url, "hostile")
            clients.append(client)
            await client.call("set_name", name)
            await client.call("send_message", f"hi from {name}")
        await until(pilot, lambda: app.users_view.option_count == len(names) + 1, what="everyone listed")
        await until(pilot, lambda: log_text(app).count("hi from") == len(names), what="every message")
        await pilot.pause(0.3)
        screen = rows(app)
        assert [i for i, row in enumerate(screen) if terminal_width(row.text) != 100] == []
        region = app.users_view.region
        for y in range(region.y, region.bottom):
            cells = "".join(ch + " " * (terminal_width(ch) - 1) for ch in screen[y].text if terminal_width(ch))
            assert cells[region.x] in "╭│╰" and cells[region.right - 1] in "╮│╯", (y, screen[y].text)
        for client in clients:
            await client.close()
