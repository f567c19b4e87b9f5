"""Searching the messages (ctrl+f, /search) against a real in-process server: Pilot drives the real
app, as a user would, and the tests read what the screen shows (the marked cells, the bar)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot

from chat_server.client import Client
from chat_server.server import ChatServer
from chat_tui.app import ChatApp
from chat_tui.screens import PasteScreen
from db_core.evaluation import Budget
from db_core.session import Limits

from .pilots import SIZE, log_text, online, type_line, until, with_history


def marks(app: ChatApp) -> list[tuple[str, bool]]:
    """The texts marked as matches on the log's screen, top to bottom, each with whether it is
    marked as the current match."""
    log = app.log_view
    match = log.get_component_rich_style("message-log--match").bgcolor
    current = log.get_component_rich_style("message-log--match-current").bgcolor
    out: list[tuple[str, bool]] = []
    for y in range(log.size.height):
        for seg in log.render_line(y):
            colour = seg.style.bgcolor if seg.style else None
            if colour is not None and colour in (match, current):
                out.append((seg.text, colour == current))
    return out


def current_on_screen(app: ChatApp) -> list[str]:
    return [text for text, current in marks(app) if current]


def screen_rows(app: ChatApp) -> list[str]:
    """The whole screen as text, one string per row."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


async def say(url: str, *texts: str) -> None:
    """Send ``texts`` as messages of another user, in order."""
    other = await Client.connect(url, "quickstart-chat")
    await other.call("set_name", "Zed")
    for text in texts:
        await other.call("send_message", text)
    await other.close()


async def open_with(pilot: Pilot[None], app: ChatApp, keys: str) -> None:
    await pilot.press("ctrl+f", *keys)
    await until(pilot, lambda: app.search_bar.field.value == keys, what="the search text")
    await pilot.pause()


async def test_ctrl_f_opens_the_bar_and_marks_every_match(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        await say(url, "deploy at noon", "lunch first", "the DEPLOY went fine", "deployments are fun")
        await until(pilot, lambda: "deployments are fun" in log_text(app))
        assert not app.search_bar.is_open and marks(app) == []
        await open_with(pilot, app, "deploy")
        assert app.search_bar.is_open and app.focused is app.search_bar.field
        # Every match marked (any case: the text has no capital), the newest current.
        assert marks(app) == [("deploy", False), ("DEPLOY", False), ("deploy", True)]
        assert app.search_bar.status == "1/3"
        # A capital makes it case-sensitive.
        await pilot.press("backspace", *"Y")
        await until(pilot, lambda: app.search_bar.status == "no match")
        await pilot.press(*["backspace"] * 6, *"DEPLOY")
        await until(pilot, lambda: marks(app) == [("DEPLOY", True)])
        # Sender names match too (four messages, and the rename and disconnect lines say Zed).
        await pilot.press(*["backspace"] * 6, *"zed")
        await until(pilot, lambda: app.search_bar.status == "1/6")
        # A message arriving meanwhile is counted; the current match keeps its place (now second).
        app.composer.focus()
        await type_line(pilot, "zed was here")
        await until(pilot, lambda: app.search_bar.status == "2/7", what="the new message counted")
        app.search_bar.field.focus()
        await pilot.press("escape")
        await until(pilot, lambda: not app.search_bar.is_open)
        assert marks(app) == [] and app.focused is app.composer


async def test_slash_search_opens_the_bar_with_its_text(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        await say(url, "where is the build log?", "in the usual place")
        await until(pilot, lambda: "usual place" in log_text(app))
        await type_line(pilot, "/search build log")
        await until(pilot, lambda: app.search_bar.is_open and marks(app) == [("build log", True)])
        assert app.search_bar.field.value == "build log" and app.search_bar.status == "1/1"
        assert "/search" not in log_text(app)        # a command, not a message
        await pilot.press("tab")                      # closed, staying put
        await until(pilot, lambda: not app.search_bar.is_open)
        # ctrl+f again: the last search's text, selected, so typing replaces it.
        await pilot.press("ctrl+f")
        await until(pilot, lambda: marks(app) == [("build log", True)])
        await pilot.press(*"usual")
        await until(pilot, lambda: marks(app) == [("usual", True)])
        assert app.search_bar.field.value == "usual"


async def test_enter_and_up_go_older_down_goes_newer_and_the_view_follows(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        # Three needles a few screens apart.
        await say(url, *(f"needle {i}" if i % 40 == 0 else f"filler {i}" for i in range(120)))
        await until(pilot, lambda: "filler 119" in log_text(app))
        log = app.log_view
        await open_with(pilot, app, "needle")
        assert app.search_bar.status == "1/3" and current_on_screen(app) == ["needle"]

        def shown(number: int) -> bool:
            on_screen = "\n".join(screen_rows(app))
            return f"needle {number}" in on_screen and current_on_screen(app) == ["needle"]

        assert shown(80)
        for key, status, number in [("enter", "2/3", 40), ("up", "3/3", 0), ("down", "2/3", 40),
                                    ("shift+enter", "1/3", 80), ("ctrl+f", "2/3", 40)]:
            top = log.scroll_offset.y
            await pilot.press(key)
            await until(pilot, lambda s=status: app.search_bar.status == s, what=f"{key}: {status}")
            assert shown(number), (key, number)
            assert log.scroll_offset.y != top           # the view moved to put it in sight
        await pilot.press("up", "up")
        await until(pilot, lambda: app.search_bar.status == "3/3 · no more matches")
        assert shown(0)
        await pilot.press("down", "down", "down")
        await until(pilot, lambda: app.search_bar.status == "1/3 · no newer match")


async def test_escape_returns_the_view_to_where_it_was(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        await say(url, "needle", *(f"filler {i}" for i in range(150)))
        await until(pilot, lambda: "filler 149" in log_text(app))
        log = app.log_view
        # Following the end: after a search far up, Escape follows the end again.
        await open_with(pilot, app, "needle")
        await until(pilot, lambda: log.scroll_offset.y < log.max_scroll_y - 50)
        await pilot.press("escape")
        await until(pilot, lambda: log.scroll_offset.y == log.max_scroll_y)
        await say(url, "arrives at the end")
        await until(pilot, lambda: "arrives at the end" in "\n".join(screen_rows(app)), what="following")
        # Scrolled up a little: Escape goes back there, not to the end; Tab stays at the match.
        await pilot.press("pageup")
        await pilot.pause()
        where = log.scroll_offset.y
        assert where < log.max_scroll_y
        await open_with(pilot, app, "needle")
        assert log.scroll_offset.y != where
        await pilot.press("escape")
        await until(pilot, lambda: log.scroll_offset.y == where)
        await open_with(pilot, app, "needle")
        at_match = log.scroll_offset.y
        await pilot.press("tab")
        await until(pilot, lambda: not app.search_bar.is_open)
        assert log.scroll_offset.y == at_match and marks(app) == []


async def test_a_match_only_in_older_history_is_fetched_and_shown(tmp_path: Path) -> None:
    """3,000 messages: the first screen loads the newest ~500; the needle is the 11th message."""
    total = 3000
    seeded = [f"m{i:05d} says hello" for i in range(total)]

    async with with_history(tmp_path, total, "m{i:05d} says hello") as (srv, app, pilot):
        loaded = app.log_view.entry_count
        assert loaded < total
        await open_with(pilot, app, "m00010 ")
        assert app.search_bar.status == "no match loaded · Enter searches older history"
        await pilot.press("enter")
        await until(pilot, lambda: app.search_bar.status == "1/1", what=f"found ({app.search_bar.status})")
        assert "m00010 says hello" in "\n".join(screen_rows(app))
        assert current_on_screen(app) == ["m00010 "]
        # Everything after it came in too (one stretch of history), and the view kept it in sight.
        texts = [row.split("│", 1)[1].strip() for row in app.log_view.lines_text() if "│ m" in row]
        assert texts[texts.index("m00010 says hello"):] == seeded[10:]
        # Further back: the page went to the first message; nothing more.
        await pilot.press("enter")
        await until(pilot, lambda: app.search_bar.status == "1/1 · no more matches")


async def test_no_match_anywhere_searches_to_the_first_message_and_says_so(tmp_path: Path) -> None:
    async with with_history(tmp_path, 2000, "old {i}") as (srv, app, pilot):
        before = app.log_view.entry_count
        await open_with(pilot, app, "nowhere")
        await pilot.press("enter")
        await until(pilot, lambda: app.search_bar.status == "no match · no more matches",
                    what=f"the end ({app.search_bar.status})")
        # Nothing was added to the log for a search that found nothing.
        assert app.log_view.entry_count == before and marks(app) == []
        await pilot.press("enter")
        await pilot.pause()
        assert app.search_bar.status == "no match · no more matches"


@pytest.mark.parametrize(("budget", "asked_again"), [
    (Budget(rows_returned=3000), "SELECT sent"),   # the times of all ~11,500 older messages at once: too many
    (Budget(reply_bytes=200_000), "SELECT *"),     # a page of 5,000 rows: too many bytes
])
async def test_what_is_too_big_for_the_budget_is_asked_for_in_smaller_parts(tmp_path: Path, budget: Budget,
                                                                             asked_again: str) -> None:
    """The server refuses what is past its budget: that is asked for again smaller, the search still
    reaches the oldest message, and no refusal is shown."""
    limits = Limits(budget=budget)
    async with with_history(tmp_path, 12_000, "row {i}", limits=limits) as (srv, app, pilot):
        refused: list[str] = []
        client = app.connection.link.client
        assert client is not None
        sql = client.sql

        async def spy(query: str) -> Any:
            result = await sql(query)
            if result.error:
                refused.append(query.split(" FROM")[0])
            return result

        client.sql = spy  # type: ignore[method-assign]
        await open_with(pilot, app, "row 1 ")   # no such row ("row 1" is followed by its end)
        await pilot.press("enter")
        await until(pilot, lambda: "no more matches" in app.search_bar.status, timeout=30,
                    what=f"the end ({app.search_bar.status})")
        assert refused and set(refused) == {asked_again}
        assert "older history:" not in app.search_bar.status   # no refusal reached the user
        await pilot.press(*["backspace"] * 6, *"row 0")
        await until(pilot, lambda: app.search_bar.status.endswith("Enter searches older history"))
        await pilot.press("enter")
        await until(pilot, lambda: current_on_screen(app) == ["row 0"], timeout=30,
                    what=f"the oldest row ({app.search_bar.status})")


async def test_an_edit_or_closing_cancels_the_search_of_older_history(tmp_path: Path) -> None:
    async with with_history(tmp_path, 5000, "old {i}") as (srv, app, pilot):
        before = app.log_view.entry_count
        assert before < 5000
        client = app.connection.link.client
        assert client is not None
        release = asyncio.Event()
        asked: list[str] = []
        sql = client.sql

        async def held(query: str) -> Any:   # the server answers only when the test says so
            asked.append(query)
            await release.wait()
            return await sql(query)

        client.sql = held  # type: ignore[method-assign]
        for stop in ("edit", "close"):
            await open_with(pilot, app, "old 5")
            await pilot.press("enter")
            await until(pilot, lambda: "searching older history…" in app.search_bar.status,
                        what=f"searching ({app.search_bar.status}, {app.log_view.entry_count})")
            search = app.connection._search
            assert search is not None and not search.done()
            if stop == "edit":
                await pilot.press("backspace")
                await until(pilot, lambda: "searching" not in app.search_bar.status)
            else:
                await pilot.press("escape")
                await until(pilot, lambda: not app.search_bar.is_open)
            await until(pilot, search.done, what=f"cancelled by the {stop}")
            assert search.cancelled()
            await pilot.press("escape")
        release.set()
        await pilot.pause(0.3)
        # Nothing of either search came into the log, and only one query each was asked.
        assert app.log_view.entry_count == before and len(asked) == 2


async def test_control_characters_in_the_search_text_are_shown_as_their_pictures(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        # An error line quotes what was refused, drawn visible: the search finds it as drawn.
        app.composer.post_message(events.Paste("/name evil\x1b]0;pwned\x07"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen))
        await pilot.press("escape")
        # A paste into the bar, and /search from a pasted line, both made visible.
        await pilot.press("ctrl+f")
        app.search_bar.field.post_message(events.Paste("\x1b]0;pwned\x07\x1b[2J"))
        await until(pilot, lambda: app.search_bar.field.value == "␛]0;pwned␇␛[2J")
        rows = screen_rows(app)
        assert any("Search: ␛]0;pwned␇␛[2J" in row for row in rows)
        assert not any("\x1b" in row or "\x07" in row for row in rows)
        await pilot.press("escape")
        app.composer.post_message(events.Paste("/search \x1b[31mred"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen))
        await pilot.press("enter")
        await until(pilot, lambda: app.search_bar.is_open and app.search_bar.field.value == "␛[31mred")
        assert any("Search: ␛[31mred" in row for row in screen_rows(app))
        assert not any("\x1b" in row for row in screen_rows(app))


async def test_a_match_below_the_unread_line_is_brought_into_view(srv: ChatServer) -> None:
    """Scrolled back by the search, new messages are unread: the unread line takes a row above
    them, and a match among them still comes into view, then Escape follows the end again."""
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        await say(url, "needle early", *(f"filler {i}" for i in range(100)))
        await until(pilot, lambda: "filler 99" in log_text(app))
        await open_with(pilot, app, "needle")
        assert "needle early" in "\n".join(screen_rows(app))
        await say(url, *(f"later {i}" for i in range(40)), "needle late", *(f"last {i}" for i in range(40)))
        await until(pilot, lambda: app.search_bar.status == "2/2", what="the late needle counted")
        assert any("unread" in row for row in app.log_view.lines_text())
        await pilot.press("down")
        await until(pilot, lambda: app.search_bar.status == "1/2")
        assert "needle late" in "\n".join(screen_rows(app)) and current_on_screen(app) == ["needle"]
        await pilot.press("escape")
        await until(pilot, lambda: "last 39" in "\n".join(screen_rows(app)), what="back at the end")
