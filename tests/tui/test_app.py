"""chat-tui against a real in-process server: Pilot drives the real app, as a user would."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


from chat_server.client import Client
from chat_server.server import ChatServer, ServerConfig
from chat_tui.app import ChatApp
from chat_tui.screens import HelpScreen, PasteScreen, QuitScreen
from chat_tui.widgets.composer import Composer

from ..server_harness import in_process_server, seed_messages
from .pilots import SIZE, log_text, online, two_users, type_line, until, users_text

async def test_two_users_talk_rename_and_quit(srv: ChatServer) -> None:
    async with two_users(srv) as (alice, pa, bob, pb):
        anon = alice.state.me.to_abbreviated_hex()
        await type_line(pa, "/name Alice")
        await until(pb, lambda: f"{anon} renamed to Alice." in log_text(bob), what="rename line")
        await type_line(pa, "Hello Bob!")
        await until(pb, lambda: "Hello Bob!" in log_text(bob), what="message at Bob")
        line = next(row for row in bob.log_view.lines_text() if "Hello Bob!" in row)
        assert "Alice" in line and line.index("Alice") < line.index("Hello Bob!")
        await until(pb, lambda: any("● Alice" in u for u in users_text(bob)), what="Alice online")
        assert sum("●" in u for u in users_text(bob)) == 2
        assert any("(you)" in u for u in users_text(bob))
        assert "Online 2/2" in str(bob.users_view.border_title)
        # Alice's own screen: her message, not pending, under her name.
        await until(pa, lambda: "│ Hello Bob!" in log_text(alice))   # sent: no longer marked … (pending)
        await type_line(pa, "/quit")
        start = time.monotonic()
        await until(pb, lambda: "Alice disconnected." in log_text(bob), what="Alice offline")
        assert time.monotonic() - start < 1.0
        await until(pb, lambda: any("○ Alice" in u for u in users_text(bob)))
        assert "Online 1/2" in str(bob.users_view.border_title)


async def test_input_rules(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        composer = app.composer
        await type_line(pilot, "/quitt now")
        await until(pilot, lambda: "Unknown command /quitt: not sent" in log_text(app))
        assert composer.value == "/quitt now"      # kept for editing, not sent
        composer.value = "x" * 4001
        await pilot.press("enter")
        await until(pilot, lambda: "Message too long: 4,001 characters" in log_text(app))
        composer.value = ""
        await type_line(pilot, "/name")
        await until(pilot, lambda: 'Failed to set name to "": Names must not be empty' in log_text(app))
        # Nothing above reached the database as a message.
        checker = await Client.connect(url, "quickstart-chat")
        assert (await checker.sql("SELECT COUNT(*) AS n FROM message")).rows == [[0]]
        await checker.close()

        await type_line(pilot, "//quit is how you leave")
        await until(pilot, lambda: "/quit is how you leave" in log_text(app))
        # History: Up recalls, Down returns to the draft.
        await pilot.press(*"draft")
        await pilot.press("up")
        assert composer.value == "//quit is how you leave"
        await pilot.press("up")
        assert composer.value == "/name"
        await pilot.press("down", "down")
        assert composer.value == "draft"
        composer.value = ""
        # Tab completes commands, cycling; and names.
        await pilot.press("/", "h", "tab")
        assert composer.value == "/help "
        composer.value = ""
        await type_line(pilot, "/help")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        # A multi-line paste asks first, then goes as one message.
        app.composer.post_message(Composer.MultilinePaste("line one\nline two"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen))
        await pilot.press("enter")
        await until(pilot, lambda: "line two" in log_text(app))
        checker = await Client.connect(url, "quickstart-chat")
        rows = (await checker.sql("SELECT text FROM message")).rows
        assert ["line one\nline two"] in rows
        await checker.close()


async def test_paste_event_and_name_completion(srv: ChatServer) -> None:
    from textual import events

    async with two_users(srv) as (app, pilot, other, po):
        await type_line(po, "/name Zoltan")
        await until(pilot, lambda: "Zoltan" in app.composer.names)
        composer = app.composer
        await pilot.press("z", "o", "tab")
        assert composer.value == "Zoltan: "
        composer.value = ""
        composer.post_message(events.Paste("a\nb\nc"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PasteScreen))
        assert composer.value == ""          # cancelled: nothing sent, nothing inserted
        composer.post_message(events.Paste("single line\n"))
        await pilot.pause(0.1)
        assert composer.value == "single line"


async def test_reconnects_after_restart_and_sends_what_was_queued(tmp_path: Path) -> None:
    srv = ChatServer(ServerConfig(data_dir=tmp_path, port=0))
    await srv.start()
    port = srv.port
    url = f"127.0.0.1:{port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        await type_line(pilot, "before the outage")
        await until(pilot, lambda: "│ before the outage" in log_text(app))   # sent: no longer marked … (pending)
        await srv.stop()
        await until(pilot, lambda: app.status_bar.state in ("offline", "connecting"), what="offline")
        await until(pilot, lambda: "Disconnected" in log_text(app), what="disconnected line")
        await type_line(pilot, "typed while offline")
        await until(pilot, lambda: app.status_bar.queued == 1, what="queued count")
        assert "typed while offline" in log_text(app)           # shown, marked pending
        # Quitting now would lose it: the app asks, and "n" stays.
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), what="quit confirmation")
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, QuitScreen))
        assert app.is_running
        srv = ChatServer(ServerConfig(data_dir=tmp_path, port=port))
        await srv.start()
        try:
            await until(pilot, lambda: app.status_bar.state == "online", timeout=20, what="reconnect")
            await until(pilot, lambda: app.status_bar.queued == 0)
            checker = await Client.connect(url, "quickstart-chat")
            texts = [r[0] for r in (await checker.sql("SELECT text FROM message")).rows]
            for _ in range(100):
                if "typed while offline" in texts:
                    break
                await asyncio.sleep(0.05)
                texts = [r[0] for r in (await checker.sql("SELECT text FROM message")).rows]
            assert sorted(texts) == ["before the outage", "typed while offline"]
            await checker.close()
            log = log_text(app)
            assert log.count("before the outage") == 1 and log.count("typed while offline") == 1
            assert "Reconnected." in log
        finally:
            await app.connection.close()
            await srv.stop()


async def test_long_history_opens_recent_and_pages_back(tmp_path: Path) -> None:
    """Only recent messages arrive on connect; scrolling to the top fetches older pages,
    in order, without duplicates, until the first message."""
    total = 3000

    async with in_process_server(tmp_path):
        pass
    seed_messages(tmp_path, total, "m{i:05d}")  # offline: 3,000 sends at once are past one client's rate limit

    async with in_process_server(tmp_path) as srv:
        url = f"127.0.0.1:{srv.port}"
        app = ChatApp(server=url)
        async with app.run_test(size=SIZE) as pilot:
            await online(pilot, app)
            log = app.log_view
            await until(pilot, lambda: f"m{total - 1:05d}" in log_text(app),
                        what=f"newest message ({app.status_bar.text}, {log.entry_count} entries)")
            first = log.entry_count
            assert 500 <= first < total, first
            for _ in range(40):
                if log.entry_count > total:   # every message, and the welcome line
                    break
                log.scroll_home(animate=False, immediate=True)
                await pilot.pause(0.1)
            assert log.entry_count == total + 1
            texts = [row.split("│", 1)[1].strip() for row in log.lines_text() if "│" in row and " m" in row]
            assert texts == [f"m{i:05d}" for i in range(total)]


async def test_profile_keeps_identity_and_history_across_runs(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Restarting chat-tui with the same profile is the same user, with the same input history."""
    from chat_tui.profiles import claim_profile

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    async def session(url: str, lines: list[str]) -> tuple[bytes, list[str]]:
        profile = claim_profile()
        app = ChatApp(server=url, profile=profile)
        async with app.run_test(size=SIZE) as pilot:
            await online(pilot, app)
            recalled = []
            for _ in range(2):
                await pilot.press("up")
                recalled.append(app.composer.value)
            app.composer.value = ""
            for line in lines:
                await type_line(pilot, line)
            await until(pilot, lambda: all(line in log_text(app) for line in lines if not line.startswith("/")))
            identity = bytes(app.state.me)
            await app.action_quit_chat()
        profile.release()
        return identity, recalled

    async with in_process_server(tmp_path / "server") as srv:
        url = f"127.0.0.1:{srv.port}"
        first, recalled = await session(url, ["/name Alice", "first run"])
        assert recalled == ["", ""]
        second, recalled = await session(url, ["second run"])
        assert second == first
        assert recalled == ["first run", "/name Alice"]
        # The saved token is private to the user.
        token_file = next((tmp_path / "config").rglob("tokens.json"))
        assert token_file.stat().st_mode & 0o777 == 0o600


async def test_refused_identity_and_unknown_database_are_explained_not_retried(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from chat_tui.profiles import claim_profile

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    async with in_process_server(tmp_path / "server") as srv:
        url = f"127.0.0.1:{srv.port}"
        profile = claim_profile()
        profile.save_token(url, "qc1.00.forged")
        app = ChatApp(server=url, profile=profile)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.status_bar.state == "failed", what="failed status")
            assert "refused the saved identity" in app.status_bar.text
            assert "--profile NAME" in log_text(app)
        profile.release()
        app = ChatApp(server=url, database="no-such-db")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.status_bar.state == "failed", what="failed status")
            assert "no database named 'no-such-db'" in app.status_bar.text


async def test_ctrl_c_and_ctrl_q_quit() -> None:
    for key in ("ctrl+c", "ctrl+q"):
        app = ChatApp(connect=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press(*"typing")
            await pilot.press(key)
            # app=app: the lambda binds this round's app, not the loop variable
            await until(pilot, lambda app=app: not app.is_running, what=f"{key} quits")


async def test_ctrl_c_copies_a_selection_instead_of_quitting() -> None:
    app = ChatApp(connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"hello there")
        app.composer.select_all()
        copied: list[str] = []
        app.copy_to_clipboard = copied.append  # type: ignore[method-assign]  # instead of the terminal's clipboard
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert copied == ["hello there"] and app.is_running


async def test_a_long_session_stays_bounded_and_pages_back(srv: ChatServer, monkeypatch) -> None:  # noqa: ANN001
    """Past LOG_MAX entries the oldest are dropped (from the log and the SDK's cache) while the
    reader follows the end; scrolling up pages them back in from the server."""
    import chat_tui.chat as chat_module

    monkeypatch.setattr(chat_module, "LOG_MAX", 60)
    monkeypatch.setattr(chat_module, "LOG_KEEP", 40)
    total = 150

    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        sender = await Client.connect(url, "quickstart-chat")
        for i in range(total):
            await sender.call("send_message", f"m{i:04d}")
        await sender.close()
        log = app.log_view
        await until(pilot, lambda: f"m{total - 1:04d}" in log_text(app), what="newest message")
        assert log.entry_count <= 60
        assert app.connection.link.client.cache.count("message") <= 60
        for _ in range(40):
            if "m0000" in log_text(app):
                break
            log.scroll_home(animate=False, immediate=True)
            await pilot.pause(0.1)
        texts = [row.split("│", 1)[1].strip() for row in log.lines_text() if "│ m" in row]
        assert texts == [f"m{i:04d}" for i in range(total)]


async def test_screenshot_on_a_fresh_home_is_saved_and_says_where(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """ctrl+p -> Screenshot with no ~/Downloads: saved under the data directory (created, private),
    and the notification names the file; with a ~/Downloads, there, as Textual would."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for var in ("XDG_DOWNLOAD_DIR", "XDG_PICTURES_DIR"):
        monkeypatch.delenv(var, raising=False)
    shots = home / ".local" / "share" / "quickstart-chat" / "screenshots"

    def toasts(app: ChatApp) -> str:
        from textual.widgets._toast import Toast
        return "\n".join(str(t.render()) for t in app.screen.query(Toast))

    app = ChatApp(connect=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        from textual.command import CommandList, CommandPalette

        def offered() -> bool:  # the palette searches in a worker: Enter only once it offers Screenshot
            if not isinstance(app.screen, CommandPalette):
                return False
            found = app.screen.query_one(CommandList)
            return (found.option_count > 0 and found.highlighted is not None
                    and "Screenshot" in str(found.get_option_at_index(found.highlighted).prompt))

        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="the command palette")
        await pilot.press(*"Screenshot")
        await until(pilot, offered, what="Screenshot offered")
        await pilot.press("enter")
        await until(pilot, lambda: len(list(shots.glob("*.svg"))) == 1, what="a screenshot file")
        (saved,) = shots.glob("*.svg")
        assert saved.read_text().startswith("<svg") and shots.stat().st_mode & 0o777 == 0o700
        await until(pilot, lambda: f"Saved screenshot to '{saved}'" in toasts(app), what="where it was saved")
        assert "Failed" not in toasts(app)

        (home / "Downloads").mkdir()
        app.action_screenshot()   # Textual's own action takes the same way
        await until(pilot, lambda: len(list((home / "Downloads").glob("*.svg"))) == 1, what="saved to ~/Downloads")
        assert len(list(shots.glob("*.svg"))) == 1
        # Textual says so from its saving thread: wait for it, or the app may end before its message lands.
        await until(pilot, lambda: f"Saved screenshot to '{home / 'Downloads'}" in toasts(app), what="said so")
