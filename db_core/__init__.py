"""db_core: an embedded, durable, transactional database that hosts Python modules.

What a module author imports::

    from db_core import (table, reducer, init, client_connected, client_disconnected,
                         ReducerContext, Identity, ConnectionId, Timestamp,
                         PrimaryKey, Unique, AutoInc, Index, ReducerError, log)

What an embedder uses::

    from db_core import Database, Identity
    with Database.open("data/", "my_module.py") as db: ...
"""

from typing import TYPE_CHECKING, Any

from .errors import (CallError, ConnectionRejected, CorruptLogError, DatabaseLocked, DbError, InvalidArguments,
                     MigrationError, ModuleLoadError, NoSuchReducer, NoSuchRow, NotCallable, ReducerError,
                     SchemaError, StorageError, UniqueConstraintViolation)
from .module import ReducerContext, client_connected, client_disconnected, init, log, reducer, table
from .schema import AutoInc, Index, PrimaryKey, Unique
from .tx import TableUpdate, TxData
from .types import ConnectionId, Identity, Timestamp

__all__ = [
    "AutoInc", "CallError", "CallResult", "CallStatus", "ConnectionId", "ConnectionRejected", "CorruptLogError",
    "Database",
    "DatabaseLocked", "DbError", "Identity", "Index", "InvalidArguments", "MigrationError", "ModuleLoadError",
    "NoSuchReducer", "NoSuchRow", "NotCallable", "PrimaryKey", "RecoveryWarning", "ReducerContext", "ReducerError",
    "SchemaError", "StorageError", "TableUpdate", "Timestamp", "TxData", "Unique", "UniqueConstraintViolation",
    "client_connected", "client_disconnected", "init", "log", "reducer", "table",
]

if TYPE_CHECKING:
    from .database import CallResult, CallStatus, Database, RecoveryWarning

# The embedder's names load the datastore, durability and SQL on first use: a client that only
# needs the types and the cache (chat-tui, through the SDK) starts without them.
_LAZY = frozenset({"CallResult", "CallStatus", "Database", "RecoveryWarning"})


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'db_core' has no attribute {name!r}")
    from . import database

    value = getattr(database, name)
    globals()[name] = value
    return value
