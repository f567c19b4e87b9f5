"""System tables: kept by the database itself, stored like any other table."""

from __future__ import annotations

from typing import Annotated

from .schema import PrimaryKey, build_table
from .types import ConnectionId, Identity


class _StClient:
    """One row per open client connection; what start-up disconnects after a crash."""

    __annotations__ = {
        "connection_id": Annotated[ConnectionId, PrimaryKey],
        "identity": Identity,
    }


StClient = build_table(_StClient, "st_client", public=False, system=True)
SYSTEM_TABLES = (StClient.__table__,)  # type: ignore[attr-defined]  # set by @table
