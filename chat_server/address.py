"""Server addresses and database names, as the CLI, chat-tui and the server read them.

``parse_server`` reads what ``--server`` takes (``ws(s)://``, ``http(s)://`` or a bare
``host[:port]``), ``split_host_port`` a ``--listen`` address, ``check_database_name``
the one rule for names; each raises a ValueError (InvalidAddress, InvalidName) whose
text is one line, fit for an argparse error (``argument_type``).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import re
from collections.abc import Callable
from typing import Literal

from .errors import InvalidAddress, InvalidName

Endpoint = Literal["subscribe", "cli"]
"""``subscribe`` for a client (lifecycle hooks run), ``cli`` for the command line (docs/protocol.md 2.1)."""

DEFAULT_SERVER = "127.0.0.1:3000"
DEFAULT_PORT = 3000  # of a bare host without a scheme; with ws:// or wss:// the scheme's own (80, 443)
DB_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DB_NAME_MAX = 64  # characters: a directory name on every file system, and a readable URL
DB_NAME_RULE = f"use 1-{DB_NAME_MAX} lowercase letters, digits and single dashes, e.g. quickstart-chat"
_SCHEMES = {"ws": False, "http": False, "wss": True, "https": True}  # scheme -> secure
# Both used with fullmatch: "$" would let a trailing newline through.
_HOST_RE = re.compile(r"[\w-]+(\.[\w-]+)*\.?")  # a DNS name (an IDN too) or an IPv4 address
_PORT_RE = re.compile(r"[0-9]+")


def valid_database_name(name: str) -> bool:
    """Whether ``name`` may name a database: the server's rule, which clients repeat before connecting."""
    return len(name) <= DB_NAME_MAX and DB_NAME_RE.fullmatch(name) is not None  # fullmatch: "$" allows a "\n"


def check_database_name(name: str) -> str:
    """Return ``name`` if it may name a database, else raise InvalidName saying the rule."""
    if not valid_database_name(name):
        shown = repr(name) if len(name) <= DB_NAME_MAX else f"of {len(name)} characters"
        raise InvalidName(f"invalid database name {shown}: {DB_NAME_RULE}")
    return name


def join_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets (``[::1]:3000``): what ``split_host_port`` reads."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(text: str, *, default_port: int | None = None, lowest_port: int = 1) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` as (host, port), the host without brackets.

    Without ``default_port`` the port is required, and then an IPv6 address may also be written
    without brackets (``::1:3000``: the last colon is the port's). InvalidAddress says what is wrong."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise InvalidAddress("'[' without its ']'")
        if rest and not rest.startswith(":"):
            raise InvalidAddress(f"unexpected {rest!r} after ']'")
        port_text = rest[1:] if rest else None
    else:
        host, colon, after = text.rpartition(":")
        host, port_text = (host, after) if colon else (text, None)
    port = _port(port_text, default_port, lowest_port)
    if text.startswith("["):
        if not _is_ipv6(host):
            raise InvalidAddress(f"{host!r} in brackets is not an IPv6 address")
    elif ":" in host:
        if not (default_port is None and _is_ipv6(host)):
            if _is_ipv6(host) or _is_ipv6(text):
                raise InvalidAddress("an IPv6 address goes in brackets, e.g. [::1]:3000")
            raise InvalidAddress("more than one ':'; expected host:port, e.g. 127.0.0.1:3000")
    elif not host:
        raise InvalidAddress("no host before the port, e.g. 127.0.0.1:3000")
    elif not (len(host) <= 253 and _HOST_RE.fullmatch(host) and _idna_ok(host)):
        raise InvalidAddress(f"{host!r} is not a host name or IP address")
    return host, port


def _idna_ok(host: str) -> bool:
    # What the resolver will do with the name: a label over 63 characters fails there, not here.
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _port(text: str | None, default: int | None, lowest: int) -> int:
    if text is None:
        if default is None:
            raise InvalidAddress("no port, e.g. 127.0.0.1:3000")
        return default
    if not _PORT_RE.fullmatch(text):
        raise InvalidAddress(f"the port {text!r} is not a number" if text else "no port after ':'")
    port = int(text)
    if not lowest <= port <= 65535:
        raise InvalidAddress(f"port must be {lowest}-65535, not {port}")
    return port


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class ServerAddress:
    """A server as ``--server`` names it: ``ws(s)://``, ``http(s)://`` or bare ``host[:port]``."""

    secure: bool
    host: str  # an IPv6 address without brackets
    port: int
    prefix: str = ""  # a path the server is mounted under (behind a proxy), without a trailing "/"

    @property
    def netloc(self) -> str:
        """``host:port``, an IPv6 host in brackets."""
        return join_host_port(self.host, self.port)

    def url(self, database: str, endpoint: Endpoint) -> str:
        """The websocket URL of ``database``'s ``endpoint`` on this server."""
        return f"{'wss' if self.secure else 'ws'}://{self.netloc}{self.prefix}/v1/database/{database}/{endpoint}"


def parse_server(server: str) -> ServerAddress:
    """Read a server address; InvalidAddress (one line, quoting it) says what is wrong.

    A bare ``host`` means port 3000; ``ws://host`` and ``wss://host`` mean 80 and 443, as URLs do."""
    try:
        return _parse_server(server.strip())
    except InvalidAddress as exc:
        raise InvalidAddress(f"invalid server address {server!r}: {exc}") from None


def _parse_server(text: str) -> ServerAddress:
    if not text:
        raise InvalidAddress("empty; expected host:port, e.g. 127.0.0.1:3000")
    if any(c.isspace() for c in text):
        raise InvalidAddress("it contains whitespace")
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() not in _SCHEMES:
            raise InvalidAddress(f"unknown scheme {scheme!r}: use ws://, wss://, http://, https:// or a bare host:port")
        secure = _SCHEMES[scheme.lower()]
        default_port = 443 if secure else 80
    else:
        rest, secure, default_port = text, False, DEFAULT_PORT
    netloc, slash, path = rest.partition("/")
    if not netloc:
        raise InvalidAddress("no host, e.g. ws://127.0.0.1:3000")
    if "@" in netloc or "?" in rest or "#" in rest:
        raise InvalidAddress("a server address has no user, query or fragment")
    host, port = split_host_port(netloc, default_port=default_port)
    return ServerAddress(secure, host, port, ("/" + path).rstrip("/") if slash else "")


def ws_url(server: str, database: str, endpoint: Endpoint = "subscribe") -> str:
    """The websocket URL of ``database`` on ``server`` (http(s)://, ws(s)://, or bare host:port).

    Raises InvalidAddress or InvalidName (ClientErrors, and ValueErrors) for what cannot be connected to."""
    return parse_server(server).url(check_database_name(database), endpoint)


def argument_type(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse ``type=`` that runs ``check`` and reports its ValueError as the option's error."""
    def parse(text: str) -> str:
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return parse
