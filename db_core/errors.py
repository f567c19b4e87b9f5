"""Every exception db_core raises, in one tree.

    DbError
    ├── SchemaError              a module's declarations are invalid (at load)
    ├── ModuleLoadError          a module file cannot be imported
    ├── MigrationError           stored schema and module differ incompatibly
    ├── DatabaseLocked           another process holds the data directory
    ├── StorageError             the data directory cannot be read or written
    │   └── CorruptLogError      damage that is not a torn tail (refuse to guess)
    ├── CallError                a call that never ran (nothing was changed)
    │   ├── NoSuchReducer
    │   ├── InvalidArguments
    │   └── NotCallable          lifecycle reducers cannot be called directly
    ├── ConnectionRejected       client_connected refused the connection
    ├── ReducerError             raised by module code: a clean, reported failure
    ├── UniqueConstraintViolation
    └── NoSuchRow                update() of a primary key that is not there

Wrong-typed row values raise the built-in ``TypeError`` (naming table and
column), as Python users expect.
"""

from __future__ import annotations


class DbError(Exception):
    """Base of every db_core error."""


class SchemaError(DbError):
    """A module declares something invalid; raised when the module is loaded."""


class ModuleLoadError(DbError):
    """A module file could not be imported."""


class MigrationError(DbError):
    """The stored schema and the module's schema differ in a way that needs a clear."""


class DatabaseLocked(DbError):
    """Another process has the data directory open."""


class StorageError(DbError):
    """The data directory cannot be read or written."""


class CorruptLogError(StorageError):
    """The commit log is damaged somewhere other than its tail."""


class CallError(DbError):
    """A reducer call that was refused before it ran; nothing changed."""


class NoSuchReducer(CallError):
    """No reducer of that name; the message suggests the closest one."""


class InvalidArguments(CallError):
    """The arguments do not match the reducer's signature."""


class NotCallable(CallError):
    """Lifecycle reducers run only on their event."""


class ConnectionRejected(DbError):
    """``client_connected`` failed; the message is the module's reason."""


class ReducerError(DbError):
    """Raise from a reducer to fail it cleanly: rolled back, text sent to the caller."""


class UniqueConstraintViolation(DbError):
    """An insert or update would duplicate a unique column's value."""

    def __init__(self, table: str, column: str, value: object) -> None:
        self.table = table
        self.column = column
        self.value = value
        self.constraint = f"{table}_{column}_key"
        super().__init__(
            f"duplicate unique value {value!r} in column `{column}` of table `{table}`"
            f" (constraint `{self.constraint}`)"
        )


class NoSuchRow(DbError):
    """``update`` found no row with the given primary key."""
