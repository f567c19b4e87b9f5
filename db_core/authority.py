"""Who may do what to a hosted database: the one owner check.

A module runs with the server's rights, so only the server's owner and the configured publishers
may create a database, and only the server's owner or the database's own (publisher) owner may
update or delete one; a database's logs (every message its reducers logged) are its owner's.
"""

from __future__ import annotations

import enum

from .types import Identity


class Action(enum.Enum):
    """What an identity asks to do to a database (the value names it in a refusal)."""

    READ_LOGS = "read the logs of"
    CREATE = "create"
    PUBLISH_OVER = "publish over"
    DELETE = "delete"


def refusal(identity: Identity, action: Action, database: str, owner: Identity | None, *,
            exists: bool = True, server_owner: Identity | None = None,
            publishers: frozenset[Identity] = frozenset()) -> str | None:
    """Why ``identity`` may not do ``action`` to ``database`` (None: it may).

    ``owner`` is the database's, ``exists`` whether there is one yet; publish and delete are
    checked before any uploaded byte is used.
    """
    if action is Action.READ_LOGS:
        if identity == owner:
            return None
    elif identity == server_owner or identity in publishers and (not exists or owner == identity):
        return None
    why = (": only the server's owner may publish modules, which run with the server's rights"
           " (see `chat-server start --publisher`)") if not exists else ""
    return f"Identity 0x{identity.hex()} is not authorized to {action.value} database `{database}`{why}"
