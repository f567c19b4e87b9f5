"""Where quickstart-chat keeps an OS user's files, and the CLI's identity tokens.

``config_dir()`` holds the tokens, per server, mode 0600: ``owner-tokens.json``,
written by ``chat-server start`` for the address it listens on, so the same OS
user's CLI acts as the owner of that server's databases; ``cli-tokens.json``, the
CLI's own identity on other servers, minted by each server on first contact.
``default_data_dir()`` is where ``chat-server start`` keeps databases unless told.
Both are read at call time (tests point XDG_* elsewhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import platformdirs

from .address import join_host_port, parse_server

APP = "quickstart-chat"


def config_dir() -> Path:
    """This user's configuration directory (tokens; chat-tui's profiles)."""
    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def default_data_dir() -> Path:
    """The server's default data directory (chat-tui's launcher starts a server on it too)."""
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def server_key(server: str) -> str:
    """``host:port`` of a server address (any form ``--server`` takes), for keying tokens: the port
    is the one connected to, so a token only ever goes back to the server that minted it.
    InvalidAddress (a ValueError) if ``server`` is not an address."""
    address = parse_server(server)
    host = "127.0.0.1" if address.host in ("localhost", "0.0.0.0", "::") else address.host
    return join_host_port(host, address.port)


def _load(name: str) -> dict[str, str]:
    try:
        data = json.loads((config_dir() / name).read_text())
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created 0600, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _store(name: str, key: str, token: str) -> None:
    data = _load(name)
    data[key] = token
    write_private(config_dir() / name, json.dumps(data, indent=1, sort_keys=True))


def remember_owner(server: str, token: str) -> None:
    """Save the owner token of the server listening on ``server`` (``chat-server start`` does)."""
    _store("owner-tokens.json", server_key(server), token)


def remember_cli(server: str, token: str) -> None:
    """Save the token ``server`` minted for this user's CLI."""
    _store("cli-tokens.json", server_key(server), token)


def token_for(server: str) -> str | None:
    """The owner token if this user runs that server, else the CLI's saved token (or None)."""
    key = server_key(server)
    return _load("owner-tokens.json").get(key) or _load("cli-tokens.json").get(key)
