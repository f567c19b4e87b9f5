"""Every exception the client SDK raises, in one tree.

    ClientError                  a request the server refused, or a connection that could not be made
    ├── ConnectFailed            the server could not be reached or refused the connection
    │                            (``status``: the HTTP status; ``close_code``/``close_reason``: the close)
    ├── Refused                  chat_server.reconnect: a refusal retrying cannot fix (``why``)
    ├── InvalidAddress           a server or listen address that cannot be used (also a ValueError)
    └── InvalidName              a database name that breaks the rule (also a ValueError)

The server's own are ``chat_server.auth.InvalidToken`` (a token it did not mint) and
``chat_server.server.ListenError``; db_core's are drawn in ``db_core.errors``.
"""

from __future__ import annotations

import enum
import http

from db_core.protocol import INVALID_TOKEN

POLICY_VIOLATION = 1008  # the websocket close code of a refused token or connect hook


class ClientError(Exception):
    """A request the server refused, or a connection that could not be made; the text says why."""


class ConnectFailed(ClientError):
    """The server could not be reached or refused the connection.

    ``status`` is the HTTP status of a refusal before the upgrade (404: no such database,
    429: over a limit), ``close_code`` and ``close_reason`` the close of one after it
    (docs/protocol.md 11.4); all None when no server answered."""

    def __init__(self, message: str, *, status: int | None = None, close_code: int | None = None,
                 close_reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.close_code = close_code
        self.close_reason = close_reason

    @property
    def no_database(self) -> bool:
        """The server has no such database (or endpoint): HTTP 404."""
        return self.status == http.HTTPStatus.NOT_FOUND

    @property
    def token_refused(self) -> bool:
        """The server refused the token presented (not one it minted)."""
        return (self.close_code == POLICY_VIOLATION and self.close_reason is not None
                and self.close_reason.startswith(INVALID_TOKEN))


class Refusal(enum.StrEnum):
    """Why retrying cannot help: the kinds of ``Refused``."""

    NO_DATABASE = "no_database"
    INVALID_TOKEN = "invalid_token"


class Refused(ClientError):
    """The server refused us in a way retrying cannot fix; ``why`` says which, the text says it in words."""

    def __init__(self, message: str, why: Refusal) -> None:
        super().__init__(message)
        self.why = why


class InvalidAddress(ClientError, ValueError):
    """A server or listen address that cannot be used; the text says what is wrong with it."""


class InvalidName(ClientError, ValueError):
    """A database name that breaks the rule (``DB_NAME_RE``, at most ``DB_NAME_MAX`` characters)."""
