"""Start a local ``chat-server`` in the background when none answers, so ``chat-tui`` just works.

Only the default local address is ever auto-started (see ``is_local_default``);
an explicit ``--server`` never starts anything. The server is detached (its own
session / process group) so it outlives chat-tui and keeps serving the other
terminals; its output goes to ``<data dir>/server.log``. It is for launch only: chat-tui
asks for it until its first connection, and after that only reconnects, so a server
stopped on purpose (``chat-server stop``, a ``kill``) stays stopped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


from chat_server.client import DEFAULT_SERVER
from chat_server.tokens import default_data_dir, server_key

LOG_NAME = "server.log"
POLL_INTERVAL = 0.1
# Written by chat-server when another process holds the data directory: most likely another
# chat-tui started a server at the same moment, whose server will answer once it has opened.
_DATA_DIR_BUSY = "is in use by another process"

# Servers started by this process. Keeping the Popen objects alive means no "subprocess is still
# running" ResourceWarning when ensure_local_server returns, and lets the caller find the pid.
started: list[subprocess.Popen[bytes]] = []


class LaunchError(Exception):
    """The local server could not be started; the message is one readable line plus where the log is."""


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server_key(server).rpartition(":")
    return host.strip("[]"), int(port)


def is_local_default(server: str) -> bool:
    """Whether ``server`` (any accepted URL form) names the default local address, 127.0.0.1:3000."""
    try:
        return server_key(server) == server_key(DEFAULT_SERVER)
    except ValueError:
        return False


# What a chat server's /health answers: 200 ``ok``, or 503 naming the databases that cannot write to
# disk. Either way a server is running there (and holds its data directory): never start another.
_HEALTH_STATUSES = (b"200", b"503")


async def server_alive(server: str, timeout: float = 1.0) -> bool:
    """True if ``GET http://host:port/health`` answers as a chat server does (200, or 503 when a
    database cannot write to disk) within ``timeout`` seconds; False otherwise (refused, timed out,
    not HTTP, another status, bad address). Plain HTTP only: the auto-started server has no TLS."""
    try:
        host, port = _host_port(server)
    except ValueError:
        return False
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            writer.write(f"GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            status = await reader.readline()
            code = status.split(b" ", 2)[1:2]
            return status.startswith(b"HTTP/1.") and bool(code) and code[0] in _HEALTH_STATUSES
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ConnectionError):
                pass


def _server_command() -> list[str]:
    # The script installed next to this interpreter is the same installation as this chat-tui;
    # fall back to the module when it is missing (e.g. run from a source tree).
    script = Path(sys.executable).with_name("chat-server.exe" if sys.platform == "win32" else "chat-server")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "chat_server.cli"]


def _last_line(log: Path, offset: int) -> str:
    """The last non-empty line written to ``log`` since ``offset`` ('' if none)."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ") if lines else ""


async def ensure_local_server(
    server: str = DEFAULT_SERVER,
    *,
    data_dir: Path | None = None,
    timeout: float = 20.0,
    on_status: Callable[[str], None] | None = None,
) -> bool:
    """Make sure a chat server answers at ``server``, starting one in the background if needed.

    Returns False if one already answered (nothing started), True once a server started here
    answers. If another chat-tui starts one at the same moment, only one server survives (the
    other fails on the data-directory lock) and both calls succeed; the loser returns False
    if its server had already exited when it saw the winner answer, else True.
    Raises LaunchError (one readable line plus the log's path) if the server exits or does not
    answer within ``timeout`` seconds. ``on_status`` receives short progress texts.
    """
    def status(text: str) -> None:
        if on_status is not None:
            on_status(text)

    if await server_alive(server):
        return False
    host, port = _host_port(server)
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    data = (data_dir if data_dir is not None else default_data_dir()).expanduser().absolute()
    log = data / LOG_NAME
    try:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        # 0600 whatever the umask, as everything else in the data directory.
        logf = open(log, "ab", opener=lambda path, flags: os.open(path, flags, 0o600))
    except OSError as exc:
        raise LaunchError(f"cannot start a local server: cannot use {data} for its data and log: "
                          f"{exc.strerror or exc}") from None
    status(f"Starting a local server on {listen}…")
    cmd = _server_command() + ["start", "--listen", listen, "--data-dir", str(data)]
    with logf:
        logf.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} chat-tui started: {' '.join(cmd)}\n".encode())
        logf.flush()
        offset = logf.tell()  # the reason for a failure is what this run wrote after here
        # Detached: on POSIX its own session (no SIGINT/SIGHUP from chat-tui's terminal), on
        # Windows its own process group without a console. Each flag is a no-op elsewhere.
        creationflags = 0
        if sys.platform == "win32":
            creationflags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=data,  # a long-lived server should not pin the user's working directory
                close_fds=True, creationflags=creationflags, start_new_session=sys.platform != "win32",
            )
        except OSError as exc:
            raise LaunchError(f"cannot start a local server: {exc.strerror or exc} (log: {log})") from None
    started.append(proc)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await server_alive(server, timeout=min(1.0, max(0.1, deadline - loop.time()))):
            if proc.poll() is not None:
                return False  # another chat-tui's server won the start-up race; ours has exited
            status("Local server started.")
            return True
        code = proc.poll()
        if code is not None:
            reason = _last_line(log, offset)
            # A loser of a start-up race fails on the data-directory lock while the winner is still
            # opening its databases: keep waiting for the winner. Any other exit is final.
            if _DATA_DIR_BUSY not in reason or loop.time() >= deadline:
                if await server_alive(server):
                    return False  # someone else's server answered: nothing of ours is running
                reason = reason or f"chat-server exited with code {code}"
                raise LaunchError(f"the local server did not start: {reason} (log: {log})")
        if loop.time() >= deadline:
            raise LaunchError(
                f"the local server did not answer on {listen} within {timeout:g} s "
                f"(last log line: {_last_line(log, offset) or 'none'}; log: {log})"
            )
        await asyncio.sleep(POLL_INTERVAL)


__all__ = ["LaunchError", "ensure_local_server", "is_local_default", "server_alive", "started"]
