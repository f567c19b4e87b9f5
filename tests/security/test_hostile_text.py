"""Nothing a user writes reaches another user's terminal raw: the hostile corpus through chat-tui
(driven by Pilot, its screen read as the bytes a terminal would get) and through the chat-server
CLI (real subprocesses against a real server), plus the module log's one-line records.

The bundled module now refuses most of the corpus, so the attacks go through a module that lets
everything through (the bundled one with its checks cut out): the clients must be safe against
any server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from textual import events
from textual.pilot import Pilot

from chat_server.client import Client
from chat_server.modules import QUICKSTART_CHAT
from chat_server.server import ChatServer
from chat_tui.app import ChatApp
from chat_tui.screens import PasteScreen
from db_core.logs import CONTINUATION, LogRecord, ModuleLog, parse_line
from db_core.visible import visible

from ..server_harness import BIN, ServerProcess, run
from .hostile import CORPUS, MARKUP, forbidden

SIZE = (130, 60)
ERROR_TEXT = "\x1b]0;pwned\x07\u202erefused\x9b2J"   # what the hostile module answers "error please" with
FORGED = "x\n2025-01-01T00:00:00.000000Z  INFO: forged"


def permissive_module() -> str:
    """The bundled module without its checks, plus what a hostile module might do besides."""
    source = QUICKSTART_CHAT.read_text()
    for check, instead in (("    name = validate_name(name)\n", ""),
                           ("    text = validate_message(text)\n",
                            f"    if text == 'error please':\n        raise ReducerError({ERROR_TEXT!r})\n")):
        assert check in source
        source = source.replace(check, instead)
    return source + f'''

@reducer
def refuse(ctx: ReducerContext, text: str) -> None:
    raise ReducerError({ERROR_TEXT!r})


@reducer
def crash(ctx: ReducerContext, text: str) -> None:
    raise ValueError(text)


@reducer
def name_someone(ctx: ReducerContext, who: Identity, name: str) -> None:
    user = ctx.db.user.identity.find(who)
    ctx.db.user.identity.update(replace(user, name=name))
'''


def test_the_permissive_module_lets_the_corpus_through(tmp_path: Path) -> None:
    """The premise of the tests below: the bundled module refuses these, the test module does not."""
    from db_core import Database, Identity
    path = tmp_path / "hostile.py"
    path.write_text(permissive_module())
    for module, accepts in ((QUICKSTART_CHAT, False), (path, True)):
        with Database.open(None, module) as db:
            me = Identity.random()
            conn = db.connect(me)
            assert db.call("set_name", "\x1b]0;pwned\x07", sender=me, connection_id=conn).ok is accepts
            assert db.call("send_message", "\x9b2J", sender=me, connection_id=conn).ok is accepts


# -- what a terminal would be sent ---------------------------------------------------
# Textual's own output: colours and styles (SGR) and cursor moves. Anything else starting with ESC
# (a title, the clipboard, a hyperlink) would have come from someone's text.
_OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;:]*[mH]")


def terminal_output(app: ChatApp) -> str:
    """The whole screen as the bytes chat-tui would write to the terminal now."""
    return app.screen._compositor.render_full_update().render_segments(app.console)


def screen_rows(app: ChatApp) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def raw_on_screen(app: ChatApp) -> list[str]:
    """Code points a terminal would act on or hide, in what chat-tui would write (rows end in newlines)."""
    return forbidden(_OWN_SEQUENCES.sub("", terminal_output(app)), allow="\n")


async def until(pilot: Pilot, pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def user_list_rows(app: ChatApp) -> list[str]:
    region = app.users_view.content_region
    rows = screen_rows(app)[region.y: region.bottom]
    return [row[region.x: region.right].rstrip() for row in rows]


# -- the TUI ------------------------------------------------------------------------
async def test_the_hostile_corpus_through_the_tui(srv: ChatServer) -> None:
    """Strangers with the corpus as names and messages, renaming, leaving, naming you, answering with
    hostile errors: nothing chat-tui draws contains a control, bidi, zero-width or invisible character
    or interpreted markup, each name is shown visibly, and the user list keeps one row per user."""
    srv.publish("hostile", permissive_module(), filename="hostile.py")
    url = f"127.0.0.1:{srv.port}"
    app = ChatApp(server=url, database="hostile")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.status_bar.state == "online" and app.state.me is not None, "online")
        strangers = []
        for _, text in CORPUS:
            client = await Client.connect(url, "hostile")
            strangers.append(client)
            for reducer, arg in (("set_name", text), ("send_message", text)):
                result = await client.call(reducer, arg)
                assert result.status == "committed", (reducer, result)
        await strangers[0].call("name_someone", app.state.me, "\x1b]0;you got pwned\x07\u202e")
        for client in strangers[::2]:
            await client.close()   # "... disconnected." lines
        total = len(CORPUS) + 1
        await until(pilot, lambda: len(app.state.users) == total
                    and sum(u.online for u in app.state.users.values()) == total - len(strangers[::2])
                    and len(app.state.seen) >= len(CORPUS), "everyone")
        # A server-sent error for our own message, shown where we look.
        await pilot.press(*"error please", "enter")
        await until(pilot, lambda: "refused" in "\n".join(app.log_view.lines_text()), "the error line")
        await until(pilot, lambda: app.users_view.option_count == total, "the user list")
        await pilot.pause(0.3)   # the batched log and user-list refreshes

        assert raw_on_screen(app) == []
        shown = "\n".join(screen_rows(app))
        assert "␛]0;you got pwned␇<U+202E>" in shown   # the header: who you are
        log = "\n".join(app.log_view.lines_text())
        assert forbidden(log, allow="\n") == []
        assert f'Failed to send message "error please": {visible(ERROR_TEXT)}' in log
        assert "renamed to ␛]0;pwned␇." in log and "renamed to <U+202E>evil.exe<U+202C>." in log
        assert "renamed to Alice␊Bob connected.." in log
        for markup in MARKUP:   # literally, brackets and all: never parsed
            assert any(markup in str(option.prompt) for option in app.users_view.options), markup
            assert markup in log
        # One row per user, each starting with its presence mark, names drawn visibly.
        rows = [row for row in user_list_rows(app) if row]
        assert len(rows) == total and all(row[:1] in "●○" for row in rows), rows
        assert app.users_view.virtual_size.height == total
        prompts = [str(option.prompt) for option in app.users_view.options]
        for _, text in CORPUS:
            assert any(p[2:].startswith(visible(text)) for p in prompts), text
        # Tab completion offers a name as it is drawn.
        app.composer.value = "␛]0;pw"
        app.composer.cursor_position = len(app.composer.value)
        app.composer.action_complete()
        assert app.composer.value == "␛]0;pwned␇: "
        # A paste holding an escape sequence: the preview shows it, the terminal never gets it.
        app.composer.value = ""
        app.composer.post_message(events.Paste("look\x1b]52;c;cm0gLXJmIH4=\x07\nhere\u202e"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen), "the paste dialog")
        await pilot.pause()
        assert raw_on_screen(app) == []
        assert "look␛]52;c;cm0gLXJmIH4=␇" in "\n".join(screen_rows(app))
        await pilot.press("escape")
        # One line holding one asks too: the input itself would draw it raw.
        await until(pilot, lambda: not isinstance(app.screen, PasteScreen), "the dialog closed")
        app.composer.post_message(events.Paste("one\x1b[2J line\u202e"))
        await until(pilot, lambda: isinstance(app.screen, PasteScreen), "the one-line paste dialog")
        await pilot.pause()
        assert raw_on_screen(app) == []
        assert "one␛[2J line<U+202E>" in "\n".join(screen_rows(app))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PasteScreen), "the dialog closed")
        assert app.composer.value == ""
        for client in strangers[1::2]:
            await client.close()


REJECTING = '''
from db_core import ReducerContext, ReducerError, client_connected

@client_connected
def gate(ctx: ReducerContext) -> None:
    raise ReducerError("\\x1b]2;pwned\\x07\\u202eno entry\\x1b[2J")
'''


async def test_a_hostile_refusal_reason_in_the_status_line(srv: ChatServer) -> None:
    srv.publish("gate", REJECTING)
    app = ChatApp(server=f"127.0.0.1:{srv.port}", database="gate")
    async with app.run_test(size=(110, 24)) as pilot:
        await until(pilot, lambda: "no entry" in app.status_bar.text, "the refusal")
        await pilot.pause()
        assert raw_on_screen(app) == []
        # The status line keeps to short words; the reason is in the log (wrapped) and the tooltip.
        shown = "␛]2;pwned␇<U+202E>no entry␛[2J"
        log = " ".join(row.split("│ ", 1)[-1] for row in app.log_view.lines_text())
        assert shown in log and shown in str(app.status_bar.tooltip)
        await app.connection.close()


# -- the CLI ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    return {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]):
    proc = ServerProcess(tmp_path_factory.mktemp("srv"), env).start()
    yield proc
    proc.stop()


def cli(server: ServerProcess, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / "chat-server"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "chat_server.cli"]
    return subprocess.run(cmd + list(args) + ["--server", server.url], capture_output=True, text=True, env=env,
                          timeout=30)


def assert_clean(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert forbidden(r.stdout, allow="\n") == [], r.stdout
    assert forbidden(r.stderr, allow="\n") == [], r.stderr


@pytest.fixture(scope="module")
def hostile_db(server: ServerProcess, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    module = tmp_path_factory.mktemp("mod") / "hostile.py"
    module.write_text(permissive_module())
    r = cli(server, env, "publish", "hostile", "--module", str(module))
    assert r.returncode == 0, r.stderr

    async def strangers() -> None:
        for _, text in CORPUS:
            client = await Client.connect(server.url, "hostile")
            for reducer, arg in (("set_name", text), ("send_message", text), ("crash", text)):
                await client.call(reducer, arg)
            await client.close()
        client = await Client.connect(server.url, "quickstart-chat")   # the bundled module allows newlines
        assert (await client.call("send_message", FORGED)).status == "committed"
        await client.close()
    run(strangers())
    return "hostile"


def test_cli_logs_print_nothing_raw(server: ServerProcess, env: dict[str, str], hostile_db: str) -> None:
    r = cli(server, env, "logs", hostile_db)
    assert r.returncode == 0, r.stderr
    assert_clean(r)
    lines = r.stdout.splitlines()
    assert any("␛]52;c;cm0gLXJmIH4=␇" in line for line in lines)   # the clipboard attack, shown
    # Each line is a record's own (a header with the time) or a traceback's continuation.
    for line in lines:
        assert parse_line(line) is not None or line.startswith(CONTINUATION), line
    assert sum("panicked: ValueError" in line for line in lines) == len(CORPUS)


def test_a_newline_in_a_message_does_not_forge_a_log_line(server: ServerProcess, env: dict[str, str],
                                                          hostile_db: str) -> None:
    r = cli(server, env, "logs", "quickstart-chat")
    assert_clean(r)
    lines = r.stdout.splitlines()
    (line,) = [line for line in lines if "forged" in line]
    assert line.endswith("INFO: quickstart_chat.py:79: x␊2025-01-01T00:00:00.000000Z  INFO: forged")
    assert not any(line.startswith("2025-01-01") for line in lines)
    assert all(parse_line(line) is not None for line in lines)


def test_cli_sql_prints_nothing_raw_and_keeps_columns_aligned(server: ServerProcess, env: dict[str, str],
                                                              hostile_db: str) -> None:
    for query in ("SELECT * FROM user", "SELECT * FROM message"):
        r = cli(server, env, "sql", hostile_db, query)
        assert r.returncode == 0, r.stderr
        assert_clean(r)
        lines = r.stdout.splitlines()
        assert len(lines) == 2 + len(CORPUS)   # one line per row: no newline breaks one
        bars = {tuple(cell_len(line[:i]) for i, ch in enumerate(line) if ch == "|") for line in [lines[0], *lines[2:]]}
        assert len(bars) == 1, bars   # every separator in the same terminal column
        assert '"␛]0;pwned␇"' not in r.stdout   # JSON quoting still escapes C0 its own way ...
        assert '"\\u001b]0;pwned\\u0007"' in r.stdout
        assert '"<U+009B>2J<U+009B>H"' in r.stdout   # ... and visible() shows what JSON leaves raw
        r = cli(server, env, "sql", hostile_db, query, "--json")
        assert_clean(r)
        assert r.stdout.isascii()
    r = cli(server, env, "subscribe", hostile_db, "SELECT * FROM user", "--print-initial-update", "-n", "0")
    assert_clean(r)
    assert r.stdout.isascii() and "\\u202e" in r.stdout


def test_cli_errors_print_nothing_raw(server: ServerProcess, env: dict[str, str], hostile_db: str) -> None:
    r = cli(server, env, "call", hostile_db, "refuse", "x")
    assert r.returncode == 1
    assert_clean(r)
    assert r.stderr == f"error: {visible(ERROR_TEXT)}\n"
    r = cli(server, env, "sql", hostile_db, "SELECT * FROM \u202euser\x1b[2J")
    assert r.returncode == 1
    assert_clean(r)
    assert r.stderr.startswith("error: syntax error: unexpected character")
    r = cli(server, env, "describe", hostile_db)
    assert_clean(r)


# -- the module log, in process ------------------------------------------------------
T0 = 1_764_300_000_000_000


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(), st.sampled_from([t for _, t in CORPUS] + [FORGED])),
       level=st.sampled_from(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]))
def test_a_record_is_one_visible_line(text: str, level: str) -> None:
    (line,) = LogRecord(T0, level, "m.py", 7, text).format().split("\n")
    assert parse_line(line) is not None
    assert forbidden(line) == []


def test_a_panic_keeps_its_traceback_as_continuation_lines_that_forge_nothing(tmp_path: Path) -> None:
    from db_core import Database, Identity
    path = tmp_path / "hostile.py"
    path.write_text(permissive_module())
    with Database.open(tmp_path / "data", path) as db:
        db.call("crash", FORGED + "\x1b]0;t\x07", sender=Identity.random())
        lines = db.logs.lines()
    reopened = ModuleLog(tmp_path / "data" / "module.log")
    again = reopened.lines()
    reopened.close()
    for got in (lines, again):
        (head,) = [line for line in got if "panicked" in line]
        assert head.endswith("reducer `crash` panicked: ValueError: x␊2025-01-01T00:00:00.000000Z  INFO: forged␛]0;t␇")
        rest = got[got.index(head) + 1:]
        assert rest[0] == "  Traceback (most recent call last):"
        assert rest[-2:] == ["  ValueError: x", "  2025-01-01T00:00:00.000000Z  INFO: forged␛]0;t␇"]
        assert all(parse_line(line) is None and line.startswith(CONTINUATION) for line in rest)
        assert forbidden("\n".join(got), allow="\n") == []


def test_a_log_file_written_before_this_change_still_reads_back(tmp_path: Path) -> None:
    """Old files: unindented traceback lines, raw escapes. They read back record by record, shown visibly."""
    (tmp_path / "module.log").write_text(
        "2025-04-08T15:47:46.935402Z  INFO: m.py:3: hello\n"
        "2025-04-08T15:47:47.000000Z ERROR: m.py:9: reducer `r` panicked: KeyError: 'k'\n"
        "Traceback (most recent call last):\n"
        '  File "m.py", line 9, in r\n'
        "KeyError: 'k'\n"
        "2025-04-08T15:47:48.000000Z  WARN: m.py:4: raw \x1b]0;t\x07 escape\n", encoding="utf-8")
    log = ModuleLog(tmp_path / "module.log")
    assert log.lines(level="error") == [
        "2025-04-08T15:47:47.000000Z ERROR: m.py:9: reducer `r` panicked: KeyError: 'k'",
        "Traceback (most recent call last):", '  File "m.py", line 9, in r', "KeyError: 'k'"]
    assert log.lines(1) == ["2025-04-08T15:47:48.000000Z  WARN: m.py:4: raw ␛]0;t␇ escape"]
    assert len(log.lines()) == 6
    log.close()


def test_visible_is_cheap_enough_for_every_drawn_message() -> None:
    """Not a timing assertion: the clean text is handed back as is, without a copy."""
    for text in ("Hello, World!", "café au lait ☕", "日本語のテキスト"):
        assert visible(text) is text and visible(text, multiline=True) is text


def test_the_cli_neutralises_even_what_a_careless_server_sends(capsys: pytest.CaptureFixture[str]) -> None:
    """Another server need not make its log lines or errors visible: the CLI does it again."""
    from chat_server import commands

    commands._print_lines(["2025-04-08T15:47:46.935402Z  INFO: \x1b]52;c;cm0gLXJmIH4=\x07\u202e"])

    async def failing() -> int:
        raise commands.CliError("\x1b[2J\x9b2J\u200b")

    assert commands._run(failing()) == 1
    out, err = capsys.readouterr()
    assert out == "2025-04-08T15:47:46.935402Z  INFO: ␛]52;c;cm0gLXJmIH4=␇<U+202E>\n"
    assert err == "error: ␛[2J<U+009B>2J<U+200B>\n"
