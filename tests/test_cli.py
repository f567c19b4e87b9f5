"""The installed ``chat-server`` command against a real server, checking the reference's output formats."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chat_server.cli import build_parser

from .server_harness import BIN, ServerProcess

NOTES = '''
from typing import Annotated
from db_core import table, reducer, ReducerContext, PrimaryKey, AutoInc, log

@table(name="note", public=True)
class Note:
    id: Annotated[int, PrimaryKey, AutoInc]
    text: str

@reducer
def add(ctx: ReducerContext, text: str) -> None:
    ctx.db.note.insert(Note(0, text))
    log.info(f"added {text}")
'''

HEX64 = r"0x[0-9a-f]{64}"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    return {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]):
    # The server records its owner token in XDG_CONFIG_HOME, where this user's CLI finds it.
    proc = ServerProcess(tmp_path_factory.mktemp("srv"), env).start()
    yield proc
    proc.stop()


def cli(server: ServerProcess, env: dict[str, str], *args: str,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = BIN / "chat-server"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "chat_server.cli"]
    return subprocess.run(cmd + list(args) + ["--server", server.url], capture_output=True, text=True, env=env,
                          input=stdin, timeout=30)


def other_user(env: dict[str, str], tmp: Path) -> dict[str, str]:
    return {**env, "XDG_CONFIG_HOME": str(tmp / "other-config")}


def test_call_prints_nothing_and_errors_go_to_stderr(server: ServerProcess, env: dict[str, str]) -> None:
    r = cli(server, env, "call", "quickstart-chat", "send_message", "Hello, World!")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = cli(server, env, "call", "quickstart-chat", "set_name", "Bob")
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr == "error: Cannot set name for unknown user\n"  # the CLI has no connection: no user row
    r = cli(server, env, "call", "quickstart-chat", "send_message", "")
    assert r.returncode != 0 and r.stderr == "error: Messages must not be empty\n"
    r = cli(server, env, "call", "quickstart-chat", "send_mesage", "x")
    assert r.stderr == ("error: no such reducer `send_mesage` in database `quickstart-chat`. "
                        "A reducer with a similar name exists: `send_message`\n")
    r = cli(server, env, "call", "quickstart-chat", "zzz")
    assert r.stderr == ("error: no such reducer `zzz` in database `quickstart-chat`. "
                        "Its reducers are: `send_message`, `set_name`\n")
    r = cli(server, env, "call", "quickstart-chat", "send_message", "a", "b")
    assert "takes 1 argument (text: str), got 2" in r.stderr and "Traceback" not in r.stderr


def test_sql_table_json_and_errors(server: ServerProcess, env: dict[str, str]) -> None:
    cli(server, env, "call", "quickstart-chat", "send_message", "table check")
    r = cli(server, env, "sql", "quickstart-chat", "SELECT * FROM message WHERE text = 'table check'")
    lines = r.stdout.splitlines()
    assert lines[0] == (" sender                                                             "
                        "| sent                             | text")
    assert lines[1] == ("--------------------------------------------------------------------+"
                        "----------------------------------+---------------")
    assert re.fullmatch(rf" {HEX64} \| {STAMP} \| \"table check\"", lines[2])
    r = cli(server, env, "sql", "quickstart-chat", "SELECT * FROM message WHERE text = 'nothing'")
    assert r.stdout.splitlines() == [
        " sender | sent | text", "--------+------+------"]
    r = cli(server, env, "sql", "quickstart-chat", "SELECT text FROM message WHERE text = 'table check'", "--json")
    assert json.loads(r.stdout) == [{"text": "table check"}]
    r = cli(server, env, "sql", "quickstart-chat", "SELECT nmae FROM user")
    assert r.returncode != 0
    assert r.stderr == "error: unknown column `nmae` in table `user` (at line 1, column 8)\n"


def test_logs_owner_only(server: ServerProcess, env: dict[str, str], tmp_path: Path) -> None:
    cli(server, env, "call", "quickstart-chat", "send_message", "log me")
    r = cli(server, env, "logs", "quickstart-chat")
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  INFO: Creating table `user`", lines[0])
    assert "Database initialized" in r.stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  INFO: quickstart_chat\.py:\d+: log me", lines[-1])
    r = cli(server, env, "logs", "quickstart-chat", "-n", "1")
    assert r.stdout.splitlines() == lines[-1:]
    r = cli(server, env, "logs", "quickstart-chat", "--level", "error")
    assert r.stdout == ""
    r = cli(server, other_user(env, tmp_path), "logs", "quickstart-chat")
    assert r.returncode != 0 and "is not authorized to read the logs of database `quickstart-chat`" in r.stderr


LEVELS_MOD = NOTES + '''

@reducer
def complain(ctx: ReducerContext, text: str) -> None:
    log.warn(f"warned {text}")
    log.error(f"failed {text}")
'''


def test_logs_level_as_the_lines_print_it(server: ServerProcess, env: dict[str, str], tmp_path: Path) -> None:
    mod = tmp_path / "levels_mod.py"
    mod.write_text(LEVELS_MOD)
    assert cli(server, env, "publish", "levels", "--module", str(mod)).returncode == 0
    assert cli(server, env, "call", "levels", "add", "quietly").returncode == 0
    assert cli(server, env, "call", "levels", "complain", "loudly").returncode == 0
    for level in ("WARN", "warn", "Warning"):
        r = cli(server, env, "logs", "levels", "--level", level)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert [line.split(": ", 1)[0].split()[-1] for line in lines] == ["WARN", "ERROR"], (level, lines)
        assert "warned loudly" in lines[0] and "failed loudly" in lines[1]
    r = cli(server, env, "logs", "levels", "--level", "ERROR")
    assert r.returncode == 0 and [line.split()[1] for line in r.stdout.splitlines()] == ["ERROR:"]
    r = cli(server, env, "logs", "levels", "--level", "loud")
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == ("chat-server logs: error: argument --level: unknown level 'loud': "
                                         "use one of TRACE, DEBUG, INFO, WARN, ERROR")
    assert cli(server, env, "delete", "levels", "--yes").returncode == 0


def test_subscribe_prints_json_lines(server: ServerProcess, env: dict[str, str]) -> None:
    exe = BIN / "chat-server"
    proc = subprocess.Popen([str(exe), "subscribe", "quickstart-chat", "SELECT * FROM message WHERE text = 'sub 1'",
                             "-n", "1", "-t", "20", "--print-initial-update", "--server", server.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    assert first == {"message": {"deletes": [], "inserts": []}}
    cli(server, env, "call", "quickstart-chat", "send_message", "sub 1")
    out, err = proc.communicate(timeout=20)
    (line,) = out.splitlines()
    update = json.loads(line)
    assert list(update) == ["message"]
    assert update["message"]["deletes"] == []
    (row,) = update["message"]["inserts"]
    assert row["text"] == "sub 1" and re.fullmatch(HEX64, row["sender"]) and re.fullmatch(STAMP, row["sent"])
    assert proc.returncode == 0, err


def test_describe(server: ServerProcess, env: dict[str, str]) -> None:
    r = cli(server, env, "describe", "quickstart-chat")
    assert ("  user (public)\n    identity: Identity  [primary key]\n    name: str | None\n    online: bool\n"
            in r.stdout)
    assert "  send_message(text: str)\n" in r.stdout
    r = cli(server, env, "describe", "quickstart-chat", "--json")
    data = json.loads(r.stdout)
    assert [t["name"] for t in data["tables"]] == ["user", "message"]


def test_publish_update_keeps_live_subscription_then_delete(server: ServerProcess, env: dict[str, str],
                                                            tmp_path: Path) -> None:
    mod = tmp_path / "notes_mod.py"
    mod.write_text(NOTES)
    r = cli(server, env, "publish", "notes", "--module", str(mod))
    assert (r.returncode, r.stdout) == (0, "created database `notes`\n"), r.stderr
    assert cli(server, env, "call", "notes", "add", "first").returncode == 0
    exe = BIN / "chat-server"
    sub = subprocess.Popen([str(exe), "subscribe", "notes", "SELECT * FROM note", "-n", "1", "-t", "20",
                            "--server", server.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)  # subscribed
    mod.write_text(NOTES.replace("    text: str\n", "    text: str\n    pinned: bool = False\n"))
    r = cli(server, env, "publish", "notes", "--module", str(mod))
    assert r.stdout == "updated database `notes`\nnew column `pinned` in table `note`\n", r.stderr
    assert cli(server, env, "call", "notes", "add", "second").returncode == 0
    out, err = sub.communicate(timeout=20)
    assert json.loads(out) == {"note": {"deletes": [], "inserts": [{"id": 2, "text": "second", "pinned": False}]}}, err
    r = cli(server, env, "sql", "notes", "SELECT * FROM note")
    assert r.stdout.splitlines()[2:] == [' 1  | "first"  | false', ' 2  | "second" | false']
    # incompatible: refused, data kept
    mod.write_text(NOTES.replace("text: str", "text: int"))
    r = cli(server, env, "publish", "notes", "--module", str(mod))
    assert r.returncode != 0 and "column `text` of table `note` changed type from str to int" in r.stderr
    assert len(cli(server, env, "sql", "notes", "SELECT * FROM note").stdout.splitlines()) == 4
    # a non-owner may not publish over it or delete it
    stranger = other_user(env, tmp_path)
    r = cli(server, stranger, "delete", "notes", "--yes")
    assert r.returncode != 0 and "is not authorized to delete database `notes`" in r.stderr
    # delete asks; without a terminal and without --yes it refuses
    r = cli(server, env, "delete", "notes", stdin="")
    assert r.returncode != 0 and "pass --yes" in r.stderr
    r = cli(server, env, "delete", "notes", "--yes")
    assert (r.returncode, r.stdout) == (0, "deleted database `notes`\n")
    r = cli(server, env, "sql", "notes", "SELECT * FROM note")
    assert r.returncode != 0 and r.stderr == "error: no such database: notes\n"


def test_every_command_has_help_with_an_example(env: dict[str, str]) -> None:
    exe = BIN / "chat-server"
    for verb in ("start", "stop", "call", "sql", "logs", "subscribe", "describe", "publish", "delete"):
        r = subprocess.run([str(exe), verb, "--help"], capture_output=True, text=True, env=env)
        assert r.returncode == 0 and "example: chat-server " + verb in r.stdout, verb


def test_every_command_is_documented_with_help_and_an_example() -> None:
    """In-process, over whatever commands the parser has: a new command without its example fails here."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert set(sub.choices) == {"start", "stop", "call", "sql", "logs", "subscribe", "describe", "publish", "delete"}
    listing = parser.format_help()
    for name, command in sub.choices.items():
        assert helps[name] and helps[name] in listing, name
        assert command.description, name
        text = command.format_help()
        assert f"\nexample: chat-server {name} " in text, name
        assert command.epilog is not None and command.epilog.startswith(f"example: chat-server {name} "), name


def test_unreachable_server_is_one_line(env: dict[str, str]) -> None:
    exe = BIN / "chat-server"
    r = subprocess.run([str(exe), "sql", "quickstart-chat", "SELECT * FROM user", "--server", "127.0.0.1:1"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: cannot reach")


def stop_cmd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "chat-server"), "stop", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_stop_stops_a_started_server_and_says_so(env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server = ServerProcess(data, env).start()
    assert server.proc is not None
    try:
        r = stop_cmd(env, "--data-dir", str(data))
        assert (r.returncode, r.stdout, r.stderr) == (0, f"stopped the server on {data} (pid {server.proc.pid})\n", "")
        assert server.proc.poll() == 0  # it had exited, cleanly, when stop said so
        out = server.proc.communicate(timeout=5)[0]
        assert "stopping: disconnecting clients and flushing the log" in out
        r = stop_cmd(env, "--data-dir", str(data))
        assert (r.returncode, r.stdout, r.stderr) == (1, "", f"error: no server is running on {data}\n")
    finally:
        if server.proc.poll() is None:
            server.kill()


def test_stop_without_a_server_says_so(env: dict[str, str], tmp_path: Path) -> None:
    r = stop_cmd(env, "--data-dir", str(tmp_path / "never"))
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"error: no server is running on {tmp_path / 'never'}\n")
    # Killed: its lock file still names its pid, but nobody holds the lock.
    data = tmp_path / "killed"
    server = ServerProcess(data, env).start()
    server.kill()
    assert (data / "server.lock").read_text() == str(server.proc.pid if server.proc else None)
    r = stop_cmd(env, "--data-dir", str(data))
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"error: no server is running on {data}\n")
    # The default is the platform's data directory, as for start.
    r = stop_cmd(env)
    default = Path(env["XDG_DATA_HOME"]) / "quickstart-chat"
    assert (r.returncode, r.stderr) == (1, f"error: no server is running on {default}\n")


def test_stop_of_a_server_that_does_not_exit_says_so(env: dict[str, str], tmp_path: Path) -> None:
    # A holder of the server's lock that ignores SIGTERM (a server stuck in its shutdown).
    code = ("import signal, sys, time; from pathlib import Path; from db_core.dirlock import lock_directory; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); lock_directory(Path(sys.argv[1]), 'server.lock'); "
            "print('locked', flush=True); time.sleep(60)")
    stuck = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert stuck.stdout is not None and stuck.stdout.readline() == "locked\n"
        t0 = time.monotonic()
        r = stop_cmd(env, "--data-dir", str(tmp_path), "--timeout", "1")
        assert (r.returncode, r.stdout) == (1, "")
        assert r.stderr == f"error: the server on {tmp_path} (pid {stuck.pid}) did not stop within 1 s\n"
        assert 1 <= time.monotonic() - t0 < 10
        assert stuck.poll() is None
    finally:
        stuck.kill()
        stuck.wait()
