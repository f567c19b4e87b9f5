"""Who may open a websocket, before the upgrade: per client address, limits answered with HTTP 429.

Also the token a request presents (``token_from``): the handler verifies it, the limits only ask
whether there is one (a request without one mints a new identity).
"""

from __future__ import annotations

import http
import ipaddress
import math
import time
from typing import Any
from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from db_core.ratelimit import KeyedBuckets, Rate

from .auth import InvalidToken


class Admission:
    """The connections open and opened per address (IPv6: per /64), and the new identities minted."""

    def __init__(self, connections_per_address: int, connects_per_address: Rate,
                 new_identities_per_address: Rate) -> None:
        self.connections_per_address = connections_per_address
        self._connects = KeyedBuckets(connects_per_address)
        self._new_identities = KeyedBuckets(new_identities_per_address)
        self._open_per_address: dict[str, int] = {}

    def opened(self, remote: Any) -> str:
        """A websocket from ``remote`` is open; returns its address key, for ``closed``."""
        address = address_key(remote)
        self._open_per_address[address] = self._open_per_address.get(address, 0) + 1
        return address

    def closed(self, address: str) -> None:
        """A websocket ``opened`` from ``address`` is closed."""
        left = self._open_per_address.pop(address) - 1
        if left:
            self._open_per_address[address] = left

    def refusal(self, connection: ServerConnection, request: Request, query: str) -> Response | None:
        """HTTP 429 with Retry-After if the client's address is over one of its limits."""
        address = address_key(connection.remote_address)
        now = time.monotonic()
        wait = self._connects.take(address, now)
        text = f"too many connections from {address}; retry in {wait:.1f} s\n"
        if not wait and self._open_per_address.get(address, 0) >= self.connections_per_address:
            wait, text = 1.0, (f"too many open connections from {address} (limit"
                               f" {self.connections_per_address}); close some first\n")
        if not wait and not presents_token(request.headers, query):
            wait = self._new_identities.take(address, now)
            text = (f"too many new identities from {address}; connect with your saved token,"
                    f" or retry in {max(1, math.ceil(wait))} s\n")
        if not wait:
            return None
        response = connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, text)
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response


def address_key(remote: Any) -> str:
    """Whose limits a connection counts against: its IPv4 address, or the /64 of its IPv6 address
    (one host often holds a whole /64)."""
    host = remote[0] if isinstance(remote, tuple) and remote else str(remote)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return str(host)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def presents_token(headers: Headers, query: str) -> bool:
    """Whether the request carries a token (valid or not: the handler judges it) rather than
    asking for a new identity."""
    try:
        return token_from(headers, query) is not None
    except InvalidToken:
        return True


def token_from(headers: Headers, query: str) -> str | None:
    """The token a client presents (section 2.3 of docs/protocol.md): the value of a non-empty
    ``Authorization: Bearer``, else a non-empty ``?token=``, else None (anonymous).
    InvalidToken if one of the two places holds several: which one was meant cannot be told."""
    bearers = []
    for value in headers.get_all("Authorization"):
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            bearers.append(credentials.strip())
    queried = parse_qs(query).get("token", [])  # parse_qs leaves out empty values
    for found in (bearers, queried):
        if len(found) > 1:
            raise InvalidToken(f"{len(found)} tokens in one request; send one")
        if found:
            return found[0]
    return None
