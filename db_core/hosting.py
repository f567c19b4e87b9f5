"""Sans-I/O hosting of a server's databases: open, publish, delete, owner checks.

One ``Hosting`` holds every database in ``root`` (a directory per database: its module file and
its ``data``) with a ``Host`` each, and knows which database serves each session. Publishing over
a database keeps its live clients: their sessions move to the new module's host with their
subscriptions. The network adapter moves frames and follows each call's contract::

    hosting = Hosting(root, owner, check_name=..., wake=..., wake_failed=..., wake_admin=...)
    hosting.open_all(default)                        # once, on the database's (the loop's) thread
    session, refusal, out = hosting.connect(name, identity, token)
    out = hosting.receive(session, frame)            # then release_commits() once per loop turn
    out = hosting.on_durable(hosted)                 # after wake(hosted), on the loop's thread
    effects = hosting.run_admin()                    # after wake_admin(): publish and delete

Admin calls (``publish``, ``delete``, ``run_admin``) leave what to send and whom to close in
``effects()``: take it after each, even when the call raised.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from .authority import Action, refusal
from .commitlog.fsio import PRIVATE_DIR, private_opener
from .database import Database
from .errors import DbError, StorageError
from .host import Host
from .session import Limits, Out, Session
from .protocol import (
    ClientMessage,
    DeleteDatabase,
    Done,
    ErrorMessage,
    IdentityToken,
    ProtocolError,
    Publish,
    decode_client,
    encode,
)
from .ratelimit import KeyedBuckets
from .types import ConnectionId, Identity

logger = logging.getLogger("db_core")

_MODULE_FILENAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.py$")


@dataclasses.dataclass(eq=False)
class Hosted:
    """One database as served: its Database and its Host."""

    name: str
    db: Database
    host: Host
    durable_pending: bool = False  # ``wake`` was called and ``on_durable`` has not run since
    holding: bool = False  # its commits are held until ``release_commits``


@dataclasses.dataclass(slots=True)
class Effects:
    """What an admin call leaves the adapter to do: send ``out`` in order, then close each session
    of ``closed`` (code 1001) with its reason."""

    out: list[Out] = dataclasses.field(default_factory=list)
    closed: list[tuple[Session, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class Module:
    """A module to publish: its source and the file name log lines cite."""

    source: str
    filename: str = "module.py"


class Hosting:
    """Every database of one server, and the sessions each one serves."""

    def __init__(self, root: Path, owner: Identity, *, check_name: Callable[[str], object],
                 limits: Limits | None = None, publishers: Callable[[], frozenset[Identity]] = frozenset,
                 identity_buckets: KeyedBuckets | None = None,
                 wake: Callable[[Hosted], bool] = lambda hosted: False,
                 wake_failed: Callable[[Hosted], None] = lambda hosted: None,
                 wake_admin: Callable[[], None] = lambda: None) -> None:
        """``owner`` is the server's; ``check_name`` raises ValueError for a name no database may have;
        ``publishers()`` are the identities besides the owner that may create databases (asked at
        each request: the server's configuration may change).

        ``wake(hosted)`` is called from the log's thread when the database's log is durable further:
        have the database's thread call ``on_durable(hosted)`` (once per call), and return whether
        it will (False: no loop runs yet, the next durable report wakes it instead). ``wake_failed(hosted)``,
        from the log's thread too, when the log failed for good: have it call ``on_storage_failure``.
        ``wake_admin()`` when a client asked to publish or delete: call ``run_admin`` soon, not from
        within the call that asked (the database it closes is still on the stack).
        """
        self.root = root
        self.owner = owner
        self.publishers = publishers
        self.limits = limits or Limits()
        self.identity_buckets = identity_buckets or KeyedBuckets(self.limits.identity_requests)
        self.databases: dict[str, Hosted] = {}
        self._check_name = check_name
        self._wake, self._wake_failed, self._wake_admin = wake, wake_failed, wake_admin
        self._where: dict[Session, Hosted] = {}  # the database serving each session
        self._held: list[Hosted] = []
        self._admin: list[tuple[str, Session, Publish | DeleteDatabase]] = []  # database, asker, request
        self._effects = Effects()

    # -- databases ---------------------------------------------------------------------
    def open_all(self, default: tuple[str, Module] | None = None) -> None:
        """Open every database under ``root``, publishing ``default`` (name, module) first if it
        has no module yet. Next: ``connect`` clients."""
        self.root.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        if default is not None and _module_file(self.root / default[0]) is None:
            name, module = default
            self.publish(name, module.source, filename=module.filename)
        for path in sorted(self.root.iterdir()):
            if path.name not in self.databases and _module_file(path) is not None:
                self._open(path.name)

    def _open(self, name: str, *, clear: bool = False, owner: Identity | None = None,
              keep: frozenset[ConnectionId] = frozenset()) -> Hosted:
        path = self.root / name
        module_file = _module_file(path)
        assert module_file is not None
        db = Database.open(path / "data", module_file, owner=owner, clear=clear, keep_connections=keep)
        if db.owner is None:
            db.owner = self.owner
        hosted = Hosted(name, db, Host(db, name, self.limits, identity_buckets=self.identity_buckets))
        hosted.host.on_admin = lambda session, msg: self._queue_admin(name, session, msg)

        def durable(offset: int) -> None:
            # On the log's thread. One wake-up at a time: batches that become durable while it is
            # pending go out with it (fuller frames, fewer writes to every client).
            if not hosted.durable_pending:
                hosted.durable_pending = True  # before the wake: on_durable may run before it returns
                if not self._wake(hosted):
                    hosted.durable_pending = False

        db.add_durable_listener(durable)
        db.add_failure_listener(lambda error: self._wake_failed(hosted))
        self.databases[name] = hosted
        logger.info("hosting database %s (%d tables, %d reducers)", name, len(db.module_def.tables),
                    len(db.module_def.reducers))
        return hosted

    def close(self) -> list[str]:
        """Close every database (the hooks of the sessions still open do not run: disconnect them
        first); returns ``storage_failures`` as they were. Next: nothing, the hosting is over."""
        for hosted in self.databases.values():
            hosted.host.close()
            try:
                hosted.db.close()
            except StorageError as exc:  # the log failed while flushing: write_failure names it
                logger.error("database %s: %s", hosted.name, exc)
        failures = self.storage_failures()
        self.databases.clear()
        self._where.clear()
        return failures

    def storage_failures(self) -> list[str]:
        """One line per database that can no longer write to disk; [] while every one can."""
        return [f"database {name} {hosted.db.write_failure}" for name, hosted in self.databases.items()
                if hosted.db.write_failure is not None]

    # -- sessions ----------------------------------------------------------------------
    def connect(self, name: str, identity: Identity, token: str, *,
                hooks: bool = True) -> tuple[Session | None, str | None, list[Out]]:
        """Open a session on database ``name`` (which exists), as ``Host.connect``: send the frames,
        or close the connection with the reason; then feed its frames to ``receive``."""
        hosted = self.databases[name]
        session, reason, out = hosted.host.connect(identity, token, hooks=hooks)
        if session is not None:
            self._where[session] = hosted
        return session, reason, out

    def receive(self, session: Session, frame: bytes) -> list[Out]:
        """One frame of ``session``: returns what may go out now (nothing if its database went away:
        the session is being closed). Send it, and close the connection (1008) if the session's
        ``close_reason`` is set. Its commits are held (they share one fsync with the others of this
        turn of the loop) until ``release_commits``: call that once per turn."""
        hosted = self._where.get(session)
        if hosted is None:
            return []
        if not hosted.holding:
            hosted.holding = True
            hosted.db.hold_commits()
            self._held.append(hosted)
        host = hosted.host
        out = host.receive(session, frame)
        out += host.release()
        return out

    def release_commits(self) -> None:
        """This turn's frames are handled: what they committed goes to disk together."""
        held, self._held = self._held, []
        for hosted in held:
            hosted.holding = False
            hosted.db.release_commits()

    def __contains__(self, session: Session) -> bool:
        """Whether a database serves ``session``."""
        return session in self._where

    def disconnect(self, session: Session) -> list[Out]:
        """The session's connection closed: its database runs the disconnect hook. Send what it returns."""
        hosted = self._where.pop(session, None)
        return hosted.host.disconnect(session) if hosted is not None else []

    @property
    def busy(self) -> bool:
        """Evaluations are under way: call ``work`` once per turn of the loop."""
        return any(hosted.host.busy for hosted in self.databases.values())

    def work(self) -> list[Out]:
        """One slice of every database's evaluations under way. Send what it returns; again while ``busy``."""
        out: list[Out] = []
        for hosted in self.databases.values():
            if hosted.host.busy:
                out += hosted.host.work()
        return out

    def on_durable(self, hosted: Hosted) -> list[Out]:
        """After ``wake(hosted)``: release what the log now holds, to every client. Send it."""
        # Cleared before reading the offset: the log publishes its offset before calling ``durable``,
        # so a batch that lands after this read finds the flag clear and wakes the loop again.
        hosted.durable_pending = False
        if self.databases.get(hosted.name) is not hosted:
            return []
        return hosted.host.on_durable(hosted.db.durable_offset)

    def on_storage_failure(self, hosted: Hosted) -> list[Out]:
        """After ``wake_failed(hosted)``: answer what waits with errors, revert to what is on disk
        (``Host.on_storage_failure``). Send what it returns."""
        if self.databases.get(hosted.name) is not hosted:
            return []
        logger.error("database %s %s: it only reads until the server is restarted", hosted.name,
                     hosted.db.write_failure)
        return hosted.host.on_storage_failure()

    # -- publish and delete ---------------------------------------------------------------
    def effects(self) -> Effects:
        """What the admin calls since the last time left to do: send, then close."""
        effects, self._effects = self._effects, Effects()
        return effects

    def _queue_admin(self, name: str, session: Session, msg: Publish | DeleteDatabase) -> None:
        self._admin.append((name, session, msg))
        self._wake_admin()

    def run_admin(self) -> Effects:
        """Run the publish and delete requests clients sent (after ``wake_admin``); returns ``effects()``."""
        requests, self._admin = self._admin, []
        for name, session, msg in requests:
            for frame in self._run(session, msg, name):
                self._effects.out.append((session, frame))
        return self.effects()

    def receive_absent(self, session: Session, name: str, frame: bytes) -> list[bytes]:
        """A frame of a CLI ``session`` on database ``name``, which did not exist when it connected:
        only publish is possible. Returns the replies to send it; then take ``effects()``."""
        try:
            msg = decode_client(frame)
        except ProtocolError as exc:
            return [encode(ErrorMessage(None, str(exc)))]
        if name in self.databases:
            # Created since this connection opened: it has an owner now, and this connection
            # speaks for nobody's session on it. Reconnecting is the only way in.
            return [encode(ErrorMessage(getattr(msg, "id", None),
                                        f"database `{name}` exists now; reconnect to use it"))]
        if isinstance(msg, Publish):
            return self._run(session, msg, name)
        return [encode(ErrorMessage(msg.id, f"no such database: {name}"))]

    @staticmethod
    def connect_absent(name: str, identity: Identity, token: str) -> tuple[Session, bytes]:
        """A CLI session on database ``name``, which does not exist: no host serves it. Next: send it
        the identity message returned (no schema), then feed its frames to ``receive_absent``."""
        session = Session(ConnectionId.random(), identity, hooks=False, token=token)
        return session, encode(IdentityToken(bytes(identity), token, bytes(session.connection_id), name,
                                             {"tables": [], "reducers": []}))

    def _run(self, session: Session, msg: Publish | DeleteDatabase, name: str) -> list[bytes]:
        """Check and run one admin request; returns its replies (to ``session``)."""
        hosted = self.databases.get(name)
        if isinstance(msg, DeleteDatabase):
            action = Action.DELETE
        else:
            action = Action.CREATE if hosted is None else Action.PUBLISH_OVER
        refused = refusal(session.identity, action, name, hosted.db.owner if hosted is not None else None,
                          exists=hosted is not None, server_owner=self.owner, publishers=self.publishers())
        if refused is not None:
            return [encode(ErrorMessage(msg.id, refused))]
        try:
            if isinstance(msg, DeleteDatabase):
                # Answered before the database goes: the asker may be one of its clients.
                self._effects.out.append((session, encode(Done(msg.id, [f"deleted database `{name}`"]))))
                self.delete(name)
                return []
            migrations = self.publish(name, msg.module, filename=msg.filename, clear=msg.clear,
                                      publisher=session.identity)
        except DbError as exc:
            return [encode(ErrorMessage(msg.id, str(exc)))]
        detail = [f"created database `{name}`" if hosted is None else f"updated database `{name}`"]
        if msg.clear and hosted is not None:
            detail.append("cleared its data")
        return [encode(Done(msg.id, detail + migrations))]

    def publish(self, name: str, source: str, *, filename: str = "module.py", clear: bool = False,
                publisher: Identity | None = None) -> list[str]:
        """Create or update database ``name`` from module source; returns what migrated. Next: take
        ``effects()`` (what went out of the old version, the moved clients' new schema and rows).

        The module is kept under its own file name, which is what log lines cite. The caller checked
        the publisher's right (``authority.refusal``); a new database is the publisher's.
        """
        try:
            self._check_name(name)
        except ValueError as exc:
            raise DbError(str(exc)) from None
        if not _MODULE_FILENAME.match(filename):
            filename = "module.py"
        path = self.root / name
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        old = self.databases.pop(name, None)
        carried: list[tuple[Session, list[tuple[int, list[str]]], list[ClientMessage]]] = []
        if old is not None:
            # Everything the old version committed goes out before its clients move on.
            old.db.wait_durable(old.db.last_offset)
            self._effects.out += old.host.on_durable(old.db.last_offset)
            moving = [s for s, h in self._where.items() if h is old]
            carried = [(s, old.host.live_subscriptions(s), old.host.pending_requests(s)) for s in moving]
            for session in moving:
                old.host.detach(session)
        keep = frozenset(s.connection_id for s, _, _ in carried if s.hooks)
        previous_path = _module_file(path)
        previous = previous_path.read_text() if previous_path is not None else None
        tmp = path / (filename + ".new")
        _write_module(tmp, source)
        if old is not None:
            old.host.close()
            old.db.close()
        if previous_path is not None:
            previous_path.unlink()
        module_path = path / filename
        tmp.replace(module_path)
        owner = publisher if old is None and previous is None else None
        try:
            hosted = self._open(name, clear=clear, owner=owner or self.owner if previous is None else None, keep=keep)
        except BaseException:
            module_path.unlink(missing_ok=True)
            if previous is not None and previous_path is not None:
                _write_module(previous_path, previous)
                if old is not None:
                    self._carry_over(self._open(name, keep=keep), carried)
            else:
                shutil.rmtree(path, ignore_errors=True)
            raise
        self._carry_over(hosted, carried)
        return hosted.db.migrations

    def _carry_over(self, hosted: Hosted,
                    carried: list[tuple[Session, list[tuple[int, list[str]]], list[ClientMessage]]]) -> None:
        """Keep the live clients: their sessions move to ``hosted`` with their subscriptions."""
        for session, subscriptions, requests in carried:
            self._where[session] = hosted
            self._effects.out += hosted.host.adopt(session, subscriptions, requests)

    def delete(self, name: str) -> None:
        """Delete database ``name``: its clients are to be closed (``effects()``), its files removed."""
        hosted = self.databases.pop(name, None)
        if hosted is None:
            raise DbError(f"no such database: {name}")
        for session in [s for s, h in self._where.items() if h is hosted]:
            del self._where[session]
            hosted.host.detach(session)
            self._effects.closed.append((session, f"database `{name}` was deleted"))
        hosted.host.close()
        hosted.db.close()
        shutil.rmtree(self.root / name, ignore_errors=True)


def _write_module(path: Path, source: str) -> None:
    path.unlink(missing_ok=True)  # one left by a crash keeps its old mode through open(): start afresh
    with open(path, "w", encoding="utf-8", opener=private_opener) as fh:
        fh.write(source)


def _module_file(path: Path) -> Path | None:
    """The module a database directory hosts (its one ``.py`` file)."""
    files = sorted(path.glob("*.py")) if path.is_dir() else []
    return files[0] if files else None
