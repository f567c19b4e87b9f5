"""Bad input on the command line (``chat-server``, ``chat-tui``) and at the upgrade: one clear line,
a non-zero exit status, never a traceback; and the token rules of docs/protocol.md section 2.3.

Each CLI case is the installed command run as a subprocess, as a user would run it."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from chat_server.client import parse_server
from chat_server.server import ChatServer
from chat_server.tokens import server_key
from db_core.protocol import SUBPROTOCOL, IdentityToken, decode_server

from ..server_harness import BIN, ServerProcess

DB = "quickstart-chat"
VERBS: dict[str, list[str]] = {  # each client verb with the arguments it needs after the database
    "call": ["send_message", "hi"],
    "sql": ["SELECT * FROM user"],
    "subscribe": ["SELECT * FROM user", "-t", "5"],
    "logs": [],
    "describe": [],
    "publish": ["--module", "MODULE"],
    "delete": ["--yes"],
}
BAD_SERVERS = ["127.0.0.1:notaport", "127.0.0.1:99999", ":3000", "ws://", "http://x:1:2", "garbage with spaces",
               "", "ftp://127.0.0.1:3000", "::1"]
BAD_NAMES = ["a" * 300, "a" * 65, "Upper", "../x", "", "a--b", "a-", "a\n", "caf\u00e9"]
USAGE_LINE = re.compile(r"^(usage: | )")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    return {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("srv"), env).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def module_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mod") / "empty_module.py"
    path.write_text("# a module with nothing in it\n")
    return path


def command(name: str, args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def verb_args(verb: str, database: str, server: str, module: Path) -> list[str]:
    extra = [str(module) if a == "MODULE" else a for a in VERBS[verb]]
    return [verb, database, *extra, "--server", server]


def assert_one_error_line(proc: subprocess.CompletedProcess[str], expected: str | None = None) -> str:
    """A runtime failure: exactly one ``error: ...`` line on stderr, exit status 1."""
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert proc.returncode == 1, proc
    if expected is not None:
        assert lines[0] == expected
    return lines[0]


def assert_usage_error(proc: subprocess.CompletedProcess[str], prog: str, needle: str) -> str:
    """A malformed option or argument: argparse's usage, then one ``PROG: error: ...`` line; status 2."""
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "\x1b[" not in proc.stderr + proc.stdout  # no terminal UI was drawn
    *usage, last = proc.stderr.splitlines()
    assert usage and all(USAGE_LINE.match(line) for line in usage), proc.stderr
    assert last.startswith(f"{prog}: error: argument "), proc.stderr
    assert needle in last, last
    assert proc.returncode == 2, proc
    return last


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port that records whether anyone connected to it."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def nobody_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


# -- chat-server's client verbs ------------------------------------------------------------------

@pytest.mark.parametrize("verb", [v for v in VERBS if v != "publish"])
def test_unknown_database_is_one_line_for_every_verb(verb: str, server: ServerProcess, env: dict[str, str],
                                                     module_file: Path) -> None:
    proc = command("chat-server", verb_args(verb, "nosuch", server.url, module_file), env)
    assert_one_error_line(proc, "error: no such database: nosuch")


def test_publish_on_an_unknown_database_creates_it_and_a_missing_file_is_one_line(
        server: ServerProcess, env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.py"
    proc = command("chat-server", ["publish", "fresh", "--module", str(missing), "--server", server.url], env)
    assert_one_error_line(proc, f"error: cannot read {missing}: No such file or directory")
    module = tmp_path / "fresh_module.py"
    module.write_text("# empty\n")
    proc = command("chat-server", ["publish", "fresh", "--module", str(module), "--server", server.url], env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "created database `fresh`\n", "")
    proc = command("chat-server", ["delete", "fresh", "--yes", "--server", server.url], env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "deleted database `fresh`\n", "")


@pytest.mark.parametrize("bad", BAD_SERVERS)
def test_bad_server_address_is_refused_by_argparse(bad: str, env: dict[str, str], module_file: Path) -> None:
    proc = command("chat-server", verb_args("call", DB, bad, module_file), env)
    assert_usage_error(proc, "chat-server call", f"argument --server: invalid server address {bad!r}: ")


def test_an_unknown_scheme_is_refused_naming_the_allowed_ones(env: dict[str, str], module_file: Path) -> None:
    proc = command("chat-server", verb_args("sql", DB, "ftp://x", module_file), env)
    last = assert_usage_error(proc, "chat-server sql", "argument --server: invalid server address 'ftp://x': ")
    assert last.endswith("unknown scheme 'ftp': use ws://, wss://, http://, https:// or a bare host:port")
    assert "cannot reach" not in proc.stderr


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_refuses_a_bad_server_and_a_bad_name_before_connecting(
        verb: str, env: dict[str, str], module_file: Path, listener: socket.socket) -> None:
    proc = command("chat-server", verb_args(verb, DB, "127.0.0.1:notaport", module_file), env)
    assert_usage_error(proc, f"chat-server {verb}", "the port 'notaport' is not a number")
    live = f"127.0.0.1:{listener.getsockname()[1]}"
    proc = command("chat-server", verb_args(verb, "a" * 300, live, module_file), env)
    assert_usage_error(proc, f"chat-server {verb}", "argument database: invalid database name of 300 characters: "
                       "use 1-64 lowercase letters, digits and single dashes")
    assert nobody_connected(listener)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_database_names_are_refused_before_connecting(name: str, env: dict[str, str], module_file: Path,
                                                              listener: socket.socket) -> None:
    live = f"127.0.0.1:{listener.getsockname()[1]}"
    proc = command("chat-server", verb_args("describe", name, live, module_file), env)
    shown = repr(name) if len(name) <= 64 else f"of {len(name)} characters"
    assert_usage_error(proc, "chat-server describe", f"invalid database name {shown}: ")
    assert nobody_connected(listener)


@pytest.mark.parametrize(("args", "needle"), [
    (["logs", DB, "-n", "-5"], "argument -n/--num-lines: must be 0 or more, not -5"),
    (["logs", DB, "-n", "99999999999999999999999"], "argument -n/--num-lines: 99999999999999999999999 is too large"),
    (["subscribe", DB, "SELECT * FROM user", "-n", "x"], "argument -n/--num-updates: expected a whole number, got 'x'"),
    (["subscribe", DB, "SELECT * FROM user", "-t", "nan"], "argument -t/--timeout: must be a finite number of seconds"),
    (["subscribe", DB, "SELECT * FROM user", "-t", "-1"], "argument -t/--timeout: must be a finite number of seconds"),
    (["call", DB, "send_message", "99999999999999999999999"],
     "argument ARG: '99999999999999999999999': an integer in it does not fit in 64 bits"),
    (["call", DB, "send_message", '{"a": [1, -9223372036854775809]}'], "an integer in it does not fit in 64 bits"),
])
def test_bad_numbers_are_refused_before_connecting(args: list[str], needle: str, env: dict[str, str],
                                                   listener: socket.socket) -> None:
    # Before: -n -5 reached the server, -t nan waited forever, a huge integer was a traceback from msgpack.
    proc = command("chat-server", [*args, "--server", f"127.0.0.1:{listener.getsockname()[1]}"], env)
    assert_usage_error(proc, f"chat-server {args[0]}", needle)
    assert nobody_connected(listener)


def test_the_longest_valid_name_passes_the_client_and_the_server(server: ServerProcess, env: dict[str, str]) -> None:
    name = "a" * 64
    proc = command("chat-server", ["describe", name, "--server", server.url], env)
    assert_one_error_line(proc, f"error: no such database: {name}")


def test_unreachable_server_is_one_line(env: dict[str, str], listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    proc = command("chat-server", ["sql", DB, "SELECT * FROM user", "--server", f"127.0.0.1:{port}"], env)
    line = assert_one_error_line(proc)
    assert line.startswith(f"error: cannot reach ws://127.0.0.1:{port}/v1/database/{DB}/cli: ")


# -- the address forms that must work --------------------------------------------------------------

def test_address_forms() -> None:
    assert parse_server("localhost").port == 3000  # not 80: the same port server_key keys the token by
    assert parse_server("ws://chat.example.org").port == 80
    assert parse_server("wss://chat.example.org").port == 443
    assert parse_server("https://chat.example.org/prefix/").url(DB, "cli") == \
        "wss://chat.example.org:443/prefix/v1/database/quickstart-chat/cli"
    assert parse_server(" [::1]:3000 ").url(DB, "cli") == "ws://[::1]:3000/v1/database/quickstart-chat/cli"
    # A token is saved under the port it is used with, so it never goes to another server.
    assert server_key("wss://chat.example.org") == "chat.example.org:443"
    assert server_key("ws://localhost") == "127.0.0.1:80"
    assert server_key("[::1]:3000") == "[::1]:3000"


@contextlib.contextmanager
def started_server(listen: str, data: Path, env: dict[str, str], ready: re.Pattern[str],
                   timeout: float = 20) -> Iterator[re.Match[str]]:
    """``chat-server start --listen LISTEN`` until the block ends; yields the match of ``ready`` in its
    output, failing (never hanging) if no line matches within ``timeout`` seconds."""
    proc = subprocess.Popen([str(BIN / "chat-server"), "start", "--listen", listen, "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        seen = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                seen.append(lines.get(timeout=left))
            except queue.Empty:
                break
            if m := ready.search(seen[-1]):
                break
        else:
            m = None
        assert m is not None, "no line matched; the output was:\n" + "".join(seen)
        yield m
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        reader.join(timeout=20)  # it ends at the output's end, then the pipe can be closed
        proc.stdout.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_listen_and_server_work_and_the_owner_is_recognised(tmp_path: Path, env: dict[str, str]) -> None:
    with started_server("[::1]:0", tmp_path / "data", env, re.compile(r"listening on ws://\[::1\]:(\d+) ")) as m:
        # logs is for the owner only: the owner token was saved under the bracketed address.
        for args in (["sql", DB, "SELECT * FROM user"], ["logs", DB, "-n", "1"]):
            done = command("chat-server", [*args, "--server", f"[::1]:{m.group(1)}"], env)
            assert (done.returncode, done.stderr) == (0, ""), done


# -- chat-server start --listen ------------------------------------------------------------------

@pytest.mark.parametrize(("listen", "needle"), [
    (":99999", "port must be 0-65535, not 99999"),
    ("127.0.0.1:99999", "port must be 0-65535, not 99999"),
    ("host:", "no port after ':'"),
    (":abc", "the port 'abc' is not a number"),
    (":3000", "no host before the port"),
    ("127.0.0.1", "no port"),
    ("a b:3000", "'a b' is not a host name or IP address"),
    ("a\n:3000", "'a\\n' is not a host name or IP address"),
    ("127.0.0.1:3000\n:1", "more than one ':'"),
    ("[::1:3000", "'[' without its ']'"),
])
def test_start_refuses_a_malformed_listen_address(listen: str, needle: str, tmp_path: Path,
                                                  env: dict[str, str]) -> None:
    proc = command("chat-server", ["start", "--listen", listen, "--data-dir", str(tmp_path)], env)
    assert_usage_error(proc, "chat-server start", f"argument --listen: invalid address {listen!r}: {needle}")
    assert not (tmp_path / "databases").exists()


def test_start_on_a_host_that_does_not_resolve_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    proc = command("chat-server", ["start", "--listen", "no-such-host.invalid:0", "--data-dir", str(tmp_path)], env)
    line = assert_one_error_line(proc)
    assert line.startswith("error: cannot listen on no-such-host.invalid:0: ")
    assert not (tmp_path / "databases").exists()  # refused before opening anything


def test_start_on_a_port_in_use_says_cannot_listen(tmp_path: Path, env: dict[str, str],
                                                   listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    proc = command("chat-server", ["start", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path)], env)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]  # the rest is INFO logging
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: "), proc.stderr
    assert "address already in use" in errors[0]
    assert proc.returncode == 1


# -- chat-tui ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (["--server", "127.0.0.1:notaport"], "argument --server: invalid server address '127.0.0.1:notaport': "),
    (["--server", ""], "argument --server: invalid server address '': empty"),
    (["--server", "127.0.0.1:99999"], "port must be 1-65535, not 99999"),
    (["--server", "ftp://x"], "invalid server address 'ftp://x': unknown scheme 'ftp': "
                              "use ws://, wss://, http://, https:// or a bare host:port"),
    (["--server", "ws://127.0.0.1:3000/chat?token=x"], "a server address has no user, query or fragment"),
    (["--server", "127.0.0.1:1", "--database", "Bad Name"], "argument --database: invalid database name 'Bad Name'"),
    (["--server", "127.0.0.1:1", "--profile", "../x"], "argument --profile: invalid profile name '../x'"),
])
def test_chat_tui_refuses_bad_arguments_before_starting_the_ui(args: list[str], needle: str,
                                                              env: dict[str, str]) -> None:
    proc = command("chat-tui", args, env)
    assert_usage_error(proc, "chat-tui", needle)
    assert proc.stdout == ""


@pytest.mark.parametrize(("bad", "why"), [
    ("example.com:3000", "'example.com:3000' is not a plain address on this machine, e.g. 127.0.0.1:3000"),
    ("wss://127.0.0.1:3000", "'wss://127.0.0.1:3000' is not a plain address on this machine"),
    ("ftp://x", "invalid server address 'ftp://x': unknown scheme 'ftp'"),
])
def test_chat_tui_refuses_a_local_server_address_it_cannot_start(bad: str, why: str, env: dict[str, str]) -> None:
    proc = command("chat-tui", [], {**env, "QC_LOCAL_SERVER": bad})
    assert "Traceback" not in proc.stderr and "\x1b[" not in proc.stderr + proc.stdout
    first, *usage, last = proc.stderr.splitlines()   # the usage may wrap
    assert first.startswith("usage: chat-tui ") and all(USAGE_LINE.match(line) for line in usage), proc.stderr
    assert last.startswith(f"chat-tui: error: QC_LOCAL_SERVER: {why}"), last
    assert proc.returncode == 2


def test_chat_tui_with_an_unusable_config_directory_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = command("chat-tui", ["--server", "127.0.0.1:1"], {**env, "XDG_CONFIG_HOME": str(blocker / "config")})
    line = assert_one_error_line(proc)
    assert line.startswith("error: cannot use the profile: Not a directory: ")
    assert proc.stdout == ""


# -- the server side: names at the upgrade, tokens (docs/protocol.md 2.2, 2.3) ----------------------

@pytest.mark.parametrize(("name", "endpoint"), [("a" * 300, "cli"), ("a" * 65, "cli"), ("Upper", "subscribe"),
                                                ("Upper", "cli"), ("x%2F..", "cli")])
async def test_server_refuses_an_invalid_name_at_the_upgrade(name: str, endpoint: str, tmp_path: Path,
                                                             srv: ChatServer) -> None:
    url = f"ws://127.0.0.1:{srv.port}/v1/database/{name}/{endpoint}"
    try:
        ws = await connect(url, subprotocols=[SUBPROTOCOL], compression=None)
    except InvalidStatus as exc:
        response = exc.response
    else:
        await ws.close()
        pytest.fail("the upgrade was accepted")
    assert response.status_code == 400
    assert response.body == (b"invalid database name: use 1-64 lowercase letters, digits and single dashes, "
                             b"e.g. quickstart-chat\n")
    assert [p.name for p in (tmp_path / "databases").iterdir()] == [DB]


async def _hello(port: int, headers: list[tuple[str, str]], query: str = "") -> IdentityToken:
    url = f"ws://127.0.0.1:{port}/v1/database/{DB}/subscribe{query}"
    async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=headers,
                       compression=None) as ws:
        hello = decode_server(await ws.recv())
    assert isinstance(hello, IdentityToken)
    return hello


async def test_token_places_follow_the_protocol_doc(srv: ChatServer) -> None:
    port, token = srv.port, srv.owner_token
    owner = bytes(srv.owner)
    # An empty bearer value counts as absent: the query's token is used.
    assert (await _hello(port, [("Authorization", "Bearer ")], f"?token={token}")).identity == owner
    assert (await _hello(port, [("Authorization", "bearer    ")], f"?token={token}")).identity == owner
    # Another scheme is no bearer header either.
    assert (await _hello(port, [("Authorization", "Basic dXNlcjpwdw==")], f"?token={token}")).identity == owner
    # A bearer token wins over the query's.
    assert (await _hello(port, [("Authorization", f"Bearer {token}")], "?token=junk")).identity == owner
    with pytest.raises(ConnectionClosedError) as caught:
        await _hello(port, [("Authorization", "Bearer junk")], f"?token={token}")
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1008
    assert caught.value.rcvd.reason.startswith("invalid token: ")
    # Empty in both places: anonymous, a fresh identity and its token.
    fresh = await _hello(port, [("Authorization", "Bearer ")], "?token=")
    assert fresh.identity != owner and fresh.token != token


@pytest.mark.parametrize(("headers", "query"), [
    ([("Authorization", "Bearer {token}"), ("Authorization", "Bearer {token}")], ""),
    ([], "?token={token}&token={token}"),
])
async def test_two_tokens_in_one_place_are_refused_with_a_reason(headers: list[tuple[str, str]], query: str,
                                                                srv: ChatServer) -> None:
    token = srv.owner_token  # valid twice over: still refused, one of them is not "the" token
    sent = [(k, v.format(token=token)) for k, v in headers]
    with pytest.raises(ConnectionClosedError) as caught:
        await _hello(srv.port, sent, query.format(token=token))
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (
        1008, "invalid token: 2 tokens in one request; send one")
    assert (await _hello(srv.port, [])).identity != bytes(srv.owner)  # and the server still serves
