"""Every exception the project raises, in one tree (the classes here are db_core's base ones).

    Exception
    ├── DbError                       db_core.errors: base of every db_core error
    │   ├── SchemaError               a module's declarations are invalid (at load)
    │   ├── ModuleLoadError           a module file cannot be imported
    │   ├── MigrationError            stored schema and module differ incompatibly
    │   ├── DatabaseLocked            another process holds the data directory
    │   ├── StorageError              the data directory cannot be read or written
    │   │   └── CorruptLogError       damage that is not a torn tail (refuse to guess)
    │   ├── CallError                 a call that never ran (nothing was changed)
    │   │   ├── NoSuchReducer
    │   │   ├── InvalidArguments      (db_core.calls.reducer_args)
    │   │   └── NotCallable           lifecycle reducers cannot be called directly
    │   ├── ConnectionRejected        client_connected refused the connection
    │   ├── ReducerError              raised by module code: a clean, reported failure
    │   ├── UniqueConstraintViolation
    │   ├── NoSuchRow                 update() of a primary key that is not there
    │   ├── SqlError                  db_core.sql.ast: a query that cannot be run (with its position)
    │   │   └── NotAuthorized         db_core.sql.check: DML by someone other than the owner
    │   ├── BudgetExceeded            db_core.evaluation: a query went past its budget
    │   └── ProtocolError             db_core.protocol: a frame that is not a valid message
    ├── HolderUnknown                 db_core.dirlock: a held lock whose holder has not written its pid
    ├── FrameError                    db_core.commitlog.framing: a torn or corrupt log frame
    │                                 (internal: the log turns it into a repair or CorruptLogError)
    ├── _Raised                       db_core.calls: carries what a reducer raised through the
    │                                 datastore's rollback (internal: never escapes a call)
    ├── ClientError                   chat_server.client: a refused request or a failed connection
    │   ├── ConnectFailed             chat_server.client: the server could not be reached
    │   ├── InvalidAddress            chat_server.client (also a ValueError): an unusable address
    │   ├── InvalidName               chat_server.client (also a ValueError): a bad database name
    │   └── Refused                   chat_server.reconnect: refused in a way retrying cannot fix
    ├── InvalidToken                  chat_server.auth: a token this server did not mint
    ├── CliError                      chat_server.commands: a one-line CLI failure (exit status 1)
    ├── ListenError                   chat_server.server: the server cannot listen on its address
    ├── LaunchError                   chat_tui.launcher: the local server could not be started
    ├── ProfileBusy                   chat_tui.profiles: the profile is in use by another chat-tui
    └── ValueError
        └── InputRefused              chat_tui.commands: a line that cannot be sent

    UserWarning
    └── RecoveryWarning               db_core.recovery: start-up cut off a torn tail or skipped a snapshot

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
