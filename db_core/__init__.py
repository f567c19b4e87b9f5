"""db_core: an embedded, durable, transactional database that hosts Python modules.

What a module author imports::

    from db_core import (table, reducer, init, client_connected, client_disconnected,
                         ReducerContext, Identity, ConnectionId, Timestamp,
                         PrimaryKey, Unique, AutoInc, Index, ReducerError, log)

What an embedder uses::

    from db_core import Database, Identity
    with Database.open("data/", "my_module.py") as db: ...
"""

from .database import CallResult, CallStatus, Database, RecoveryWarning
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
