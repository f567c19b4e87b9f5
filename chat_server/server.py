"""The websockets adapter: moves frames between sockets and each database's Host.

One endpoint per database, ``/v1/database/<name>/subscribe``, speaking the
``qc.msgpack.v1`` subprotocol; ``/health`` answers plain HTTP (503 naming each
database that cannot write to disk). Reducers run on the event loop (a
transaction takes microseconds); the commit log's thread reports durability,
and a failure of the log, through ``call_soon_threadsafe``. Each client has a
bounded send queue: a client that stops reading is disconnected with a reason
and never slows anyone else.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import http
import ipaddress
import logging
import math
import re
import shutil
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.http11 import Request, Response

from db_core import ConnectionId, Database, DbError, Identity, StorageError
from db_core.commitlog.fsio import PRIVATE_DIR, private_opener
from db_core.host import Host, Limits, Out, Session
from db_core.dirlock import lock_directory, unlock_directory
from db_core.ratelimit import KeyedBuckets, Rate, TokenBucket
from db_core.protocol import (SUBPROTOCOL, ClientMessage, DeleteDatabase, Done, ErrorMessage, IdentityToken, ProtocolError, Publish,
                              decode_client, encode)

from .auth import InvalidToken, TokenAuthority
from .client import DB_NAME_RULE, InvalidName, check_database_name, valid_database_name
from .frames import DEFAULT_CONTROL_FRAMES, FastConnection
from .gc_policy import GcPolicy
from .modules import QUICKSTART_CHAT
from .tokens import write_private

log = logging.getLogger("chat_server")
OPEN = State.OPEN
# "subscribe": a client (lifecycle hooks run); "cli": the command line (no hooks, calls carry no connection).
PATH_RE = re.compile(r"^/v1/database/([^/]+)/(subscribe|cli)$")
DEFAULT_DATABASE = "quickstart-chat"


class ListenError(Exception):
    """The server cannot listen on its address (taken, not this machine's, not allowed); one line."""


@dataclasses.dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 3000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_frame_bytes: int = 1 << 20
    # A client whose unsent frames would pass this is too slow: disconnected. At least the reply
    # budget (``limits.budget.reply_bytes``), so that the largest reply fits an idle connection.
    send_buffer_bytes: int = 16 << 20
    limits: Limits = dataclasses.field(default_factory=Limits)
    # Identities besides the server's owner that may create databases (and update or delete their own).
    publishers: frozenset[Identity] = frozenset()
    # Per client address (IPv6: per /64), refused with HTTP 429 before the upgrade. Generous enough
    # for the benchmarks, which open a thousand connections from 127.0.0.1.
    connections_per_address: int = 2000           # open at once
    connects_per_address: Rate = Rate(100, 2000)  # new connections per second
    new_identities_per_address: Rate = Rate(1, 2000)  # anonymous connections (each mints an identity)
    control_frames: Rate = DEFAULT_CONTROL_FRAMES  # pings and pongs per connection; past it, closed (1008)


# A client's share of one turn of the event loop: the messages past it wait for the next turn
# (and its socket is not read meanwhile), so a client that pipelines hundreds of requests delays
# the others' by a few of its own, not by all of them.
MESSAGES_PER_TURN = 8
IDLE_CHECK_SECONDS = 0.05


class _Client:
    """One websocket: its session, the database serving it, and why it is being closed (if it is)."""

    __slots__ = ("ws", "session", "hosted", "wake", "closing", "close_code", "turn", "deferred")

    def __init__(self, ws: ServerConnection, session: Session, hosted: "Hosted") -> None:
        self.ws = ws
        self.session = session
        self.hosted = hosted
        self.wake = asyncio.Event()
        self.closing: str | None = None
        self.close_code = 1001
        self.turn = 0  # messages handled in this turn of the loop
        self.deferred: collections.deque[bytes | str] | None = None  # past this turn's share

    def close_soon(self, reason: str, code: int = 1001) -> None:
        """Have the writer task close the websocket with ``code`` and ``reason``."""
        if self.closing is None:
            self.closing, self.close_code = reason, code
            self.wake.set()


class Hosted:
    """One database as served: the Database, its Host, its clients."""

    def __init__(self, name: str, db: Database, limits: Limits, identity_buckets: KeyedBuckets) -> None:
        self.name = name
        self.db = db
        self.host = Host(db, name, limits, identity_buckets=identity_buckets)
        self.clients: dict[Session, _Client] = {}
        self.durable_pending = False  # an _on_durable call is scheduled on the loop
        self.working = False  # a ChatServer._work call is scheduled on the loop
        self.holding = False  # the log is held until the loop's next turn (see ChatServer._on_message)


class ChatServer:
    """Hosts every database in ``data_dir/databases`` over websockets."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.databases: dict[str, Hosted] = {}
        # Taken before anything is read or created: two servers started at once on a fresh
        # directory would otherwise each mint their own key and owner token.
        _make_private(config.data_dir)
        self._lock_fd: int | None = lock_directory(config.data_dir, "server.lock")
        self.auth = TokenAuthority.load_or_create(config.data_dir / "auth.key")
        self.owner, self.owner_token = self._owner_identity()
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gc = GcPolicy()
        self.port = config.port
        self._identity_requests = KeyedBuckets(config.limits.identity_requests)
        self._connects = KeyedBuckets(config.connects_per_address)
        self._new_identities = KeyedBuckets(config.new_identities_per_address)
        self._open_per_address: dict[str, int] = {}
        self._turn: list[_Client] = []  # clients with messages in this turn of the loop (see _on_message)
        self._busy = False  # a message, connect or disconnect since the last idle check
        self._idle_timer: asyncio.TimerHandle | None = None
        self.failures: list[str] = []  # set by ``stop``: one line per database that could not write to disk

    # -- lifecycle ---------------------------------------------------------------------
    def _owner_identity(self) -> tuple[Identity, str]:
        """The identity of the OS user running the server; its token is kept readable by that user only."""
        path = self.config.data_dir / "owner.token"
        try:
            token = path.read_text().strip()
            return self.auth.verify(token), token
        except (FileNotFoundError, InvalidToken):
            identity, token = self.auth.mint()
            write_private(path, token + "\n")
            return identity, token

    def _open_databases(self) -> None:
        root = self.config.data_dir / "databases"
        root.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        if _module_file(root / DEFAULT_DATABASE) is None:
            self.publish(DEFAULT_DATABASE, QUICKSTART_CHAT.read_text(), filename=QUICKSTART_CHAT.name)
        for path in sorted(root.iterdir()):
            if path.name not in self.databases and _module_file(path) is not None:
                self._open(path.name)

    def _open(self, name: str, *, clear: bool = False, owner: Identity | None = None,
              keep: frozenset = frozenset()) -> Hosted:
        path = self.config.data_dir / "databases" / name
        module_file = _module_file(path)
        assert module_file is not None
        db = Database.open(path / "data", module_file, owner=owner, clear=clear, keep_connections=keep)
        if db.owner is None:
            db.owner = self.owner
        hosted = Hosted(name, db, self.config.limits, self._identity_requests)
        hosted.host.on_admin = lambda session, msg: self._admin_soon(hosted, session, msg)
        loop = self._loop

        def durable(offset: int) -> None:
            # On the log's thread. One wake-up of the loop at a time: batches that become durable
            # while it is pending go out with it (fuller frames, fewer writes to every client).
            if loop is not None and not hosted.durable_pending:
                hosted.durable_pending = True
                loop.call_soon_threadsafe(self._on_durable, hosted)

        def failed(error: StorageError) -> None:
            # On the log's thread; the loop answers what waits and reverts the database, which it owns.
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(self._on_storage_failure, hosted)
                except RuntimeError:  # the loop is closed: the server has stopped
                    pass

        db.add_durable_listener(durable)
        db.add_failure_listener(failed)
        self.databases[name] = hosted
        log.info("hosting database %s (%d tables, %d reducers)", name, len(db.module_def.tables),
                 len(db.module_def.reducers))
        return hosted

    def publish(self, name: str, source: str, *, filename: str = "module.py", clear: bool = False,
                publisher: Identity | None = None) -> list[str]:
        """Create or update database ``name`` from module source; returns what migrated.

        The module is kept under its own file name, which is what log lines cite.
        """
        try:
            check_database_name(name)
        except InvalidName as exc:
            raise DbError(str(exc)) from None
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\.py$", filename):
            filename = "module.py"
        path = self.config.data_dir / "databases" / name
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        old = self.databases.pop(name, None)
        if old is not None:
            # Everything the old version committed goes out before its clients move on.
            old.db.wait_durable(old.db.last_offset)
            self._dispatch(old, old.host.on_durable(old.db.last_offset))
        moving = list(old.clients.values()) if old is not None else []
        carried = [(c, old.host.live_subscriptions(c.session), old.host.pending_requests(c.session))
                   for c in moving] if old is not None else []
        keep = frozenset(c.session.connection_id for c in moving if c.session.hooks)
        for client in moving:
            old.host.detach(client.session)  # type: ignore[union-attr]
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
                    restored = self._open(name, keep=keep)
                    self._carry_over(restored, carried)
            else:
                shutil.rmtree(path, ignore_errors=True)
            raise
        # Keep the live clients: their sessions move to the new host with their subscriptions.
        self._carry_over(hosted, carried)
        return hosted.db.migrations

    def _carry_over(self, hosted: Hosted,
                    carried: list[tuple[_Client, list[tuple[int, list[str]]], list[ClientMessage]]]) -> None:
        for client, subscriptions, requests in carried:
            client.hosted = hosted
            hosted.clients[client.session] = client
            self._dispatch(hosted, hosted.host.adopt(client.session, subscriptions, requests))

    def delete(self, name: str) -> None:
        """Delete database ``name``: its clients are disconnected and its files removed."""
        hosted = self.databases.pop(name, None)
        if hosted is None:
            raise DbError(f"no such database: {name}")
        for client in list(hosted.clients.values()):
            hosted.host.detach(client.session)
            client.close_soon(f"database `{name}` was deleted")
        hosted.host.close()
        hosted.db.close()
        shutil.rmtree(self.config.data_dir / "databases" / name, ignore_errors=True)

    # -- admin requests (publish, delete) ---------------------------------------------------------
    def _admin_soon(self, hosted: Hosted, session: Session, msg: Publish | DeleteDatabase) -> None:
        # Publishing closes and reopens the database: not from inside the host's own call.
        asyncio.get_running_loop().call_soon(self._admin, hosted, session, msg)

    def admin_refusal(self, identity: Identity, name: str, msg: Publish | DeleteDatabase) -> str | None:
        """Why ``identity`` may not run ``msg`` on database ``name`` (None: it may).

        A module runs with the server's rights, so only the server's owner and the configured
        publishers may create a database, and only the server's owner or the database's own
        (publisher) owner may update or delete one. Checked before any uploaded byte is used.
        """
        if identity == self.owner:
            return None
        hosted = self.databases.get(name)
        if isinstance(msg, DeleteDatabase):
            what = "delete"
        elif hosted is None:
            what = "create"
        else:
            what = "publish over"
        if identity in self.config.publishers and (hosted is None or hosted.db.owner == identity):
            return None
        why = (": only the server's owner may publish modules, which run with the server's rights"
               " (see `chat-server start --publisher`)") if hosted is None else ""
        return f"Identity 0x{identity.hex()} is not authorized to {what} database `{name}`{why}"

    def _admin(self, hosted: Hosted | None, session: Session, msg: Publish | DeleteDatabase, name: str = "",
               reply: Callable[[bytes], None] | None = None) -> None:
        name = hosted.name if hosted is not None else name
        send = reply or (lambda frame: self._send_direct(session, frame))
        refusal = self.admin_refusal(session.identity, name, msg)
        if refusal is not None:
            send(encode(ErrorMessage(msg.id, refusal)))
            return
        try:
            if isinstance(msg, DeleteDatabase):
                send(encode(Done(msg.id, [f"deleted database `{name}`"])))
                self.delete(name)
                return
            created = hosted is None
            migrations = self.publish(name, msg.module, filename=msg.filename, clear=msg.clear, publisher=session.identity)
        except DbError as exc:
            send(encode(ErrorMessage(msg.id, str(exc))))
            return
        detail = [f"created database `{name}`" if created else f"updated database `{name}`"]
        if msg.clear and not created:
            detail.append("cleared its data")
        send(encode(Done(msg.id, detail + migrations)))

    def _send_direct(self, session: Session, frame: bytes) -> None:
        for hosted in self.databases.values():
            client = hosted.clients.get(session)
            if client is not None:
                self._dispatch(hosted, [(session, frame)])
                return

    async def start(self) -> None:
        """Open every database and listen; on failure nothing stays open or locked."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._open_databases()
        # The rows live as long as the server: keep them out of the collector's full scans (with a
        # million rows a full collection would stall every client for a second).
        self._gc.start()
        self._idle_timer = self._loop.call_later(IDLE_CHECK_SECONDS, self._check_idle)
        ssl_ctx = None
        if self.config.tls_cert is not None:
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        try:
            self._server = await serve(
                self._handle, self.config.host, self.config.port,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                process_request=self._process_request,
                compression=None,  # per-message deflate costs 25-35% on small chat frames
                create_connection=FastConnection,
                max_size=self.config.max_frame_bytes,
                ssl=ssl_ctx,
            )
        except OSError as exc:
            raise ListenError(f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}") from exc
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, disconnect everyone (running the hooks), flush the logs. Never raises for a
        database that cannot write to disk: ``failures`` then names it."""
        if self._server is not None:
            self._server.close(close_connections=False)
        for hosted in self.databases.values():
            for client in list(hosted.clients.values()):
                client.close_soon("server shutting down")
        if self._server is not None:
            for hosted in self.databases.values():
                for client in list(hosted.clients.values()):
                    await client.ws.close(1001, "server shutting down")
            for ws in list(self._server.connections):  # those no database holds (a CLI waiting to publish)
                await ws.close(1001, "server shutting down")
            await self._server.wait_closed()
        for hosted in self.databases.values():
            hosted.host.close()
            try:
                hosted.db.close()
            except StorageError as exc:  # the log failed while flushing: write_failure names it
                log.error("database %s: %s", hosted.name, exc)
        self.failures = self.storage_failures()
        self.databases.clear()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._gc.stop()
        if self._lock_fd is not None:
            unlock_directory(self._lock_fd)
            self._lock_fd = None

    def storage_failures(self) -> list[str]:
        """One line per hosted database that can no longer write to disk; [] while every one can."""
        return [f"database {name} {hosted.db.write_failure}" for name, hosted in self.databases.items()
                if hosted.db.write_failure is not None]

    def _on_storage_failure(self, hosted: Hosted) -> None:
        if self.databases.get(hosted.name) is hosted:
            log.error("database %s %s: it only reads until the server is restarted", hosted.name,
                      hosted.db.write_failure)
            self._dispatch(hosted, hosted.host.on_storage_failure())

    # -- HTTP ----------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        response = self._http_answer(connection, request)
        if response is not None:
            # Written and closed at once: websockets would otherwise wait up to its close timeout
            # (10 s) for the client to hang up first, and a client that never does (connect churn
            # at thousands a second) would keep that many connections alive.
            connection.close_timeout = 0
        return response

    def _http_answer(self, connection: ServerConnection, request: Request) -> Response | None:
        """The answer to a request that is not let through to the websocket: /health, a refusal."""
        url = urlsplit(request.path)
        path = url.path
        if path == "/health":
            failures = self.storage_failures()
            if failures:
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "".join(f"{f}\n" for f in failures))
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        refusal = self._address_refusal(connection, request, url.query)
        if refusal is not None:
            return refusal
        m = PATH_RE.match(path)
        if m is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"no such endpoint: {path}\n")
        if not valid_database_name(m.group(1)):
            return connection.respond(http.HTTPStatus.BAD_REQUEST, f"invalid database name: {DB_NAME_RULE}\n")
        if m.group(1) not in self.databases and m.group(2) != "cli":
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"no such database: {m.group(1)}\n")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return connection.respond(http.HTTPStatus.UPGRADE_REQUIRED, "this endpoint speaks websocket\n")
        return None

    def _address_refusal(self, connection: ServerConnection, request: Request, query: str) -> Response | None:
        """HTTP 429 with Retry-After if the client's address is over one of its limits."""
        address = address_key(connection.remote_address)
        now = time.monotonic()
        wait = self._connects.take(address, now)
        text = f"too many connections from {address}; retry in {wait:.1f} s\n"
        if not wait and self._open_per_address.get(address, 0) >= self.config.connections_per_address:
            wait, text = 1.0, (f"too many open connections from {address} (limit"
                               f" {self.config.connections_per_address}); close some first\n")
        if not wait and not _presents_token(request.headers, query):
            wait = self._new_identities.take(address, now)
            text = (f"too many new identities from {address}; connect with your saved token,"
                    f" or retry in {max(1, math.ceil(wait))} s\n")
        if not wait:
            return None
        response = connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, text)
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response

    # -- websocket -------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        self._busy = True  # connects and disconnects are work a long pause would delay too
        address = address_key(ws.remote_address)
        self._open_per_address[address] = self._open_per_address.get(address, 0) + 1
        try:
            await self._serve_connection(ws)
        finally:
            self._busy = True
            left = self._open_per_address.pop(address) - 1
            if left:
                self._open_per_address[address] = left

    async def _serve_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        if isinstance(ws, FastConnection):
            ws.control_frames = TokenBucket(self.config.control_frames, time.monotonic())
            ws.send_limit = self.config.send_buffer_bytes
        url = urlsplit(ws.request.path)
        m = PATH_RE.match(url.path)
        assert m is not None
        name, hooks = m.group(1), m.group(2) == "subscribe"
        try:
            token = _token_from(ws.request.headers, url.query)
            if token:
                identity = self.auth.verify(token)
            else:
                identity, token = self.auth.mint()
        except InvalidToken as exc:
            await ws.close(1008, f"invalid token: {exc}")
            return
        hosted = self.databases.get(name)
        if hosted is None:
            await self._handle_absent(ws, name, identity, token)
            return
        if ws.protocol.extensions:  # never negotiated (compression=None); _ws_header could not frame for one
            await ws.close(1011, "unexpected websocket extension")
            return
        session, reason, out = hosted.host.connect(identity, token, hooks=hooks)
        if session is None:
            await ws.close(1008, (reason or "connection rejected")[:120])
            return
        client = _Client(ws, session, hosted)
        hosted.clients[session] = client
        self._dispatch(hosted, out)
        writer = asyncio.create_task(self._writer(client))
        try:
            if isinstance(ws, FastConnection):
                ws.deliver_directly(lambda message: self._on_message(client, message))
                await ws.wait_closed()
            else:
                async for frame in ws:
                    self._on_message(client, frame)
        except ConnectionClosed:
            pass
        finally:
            current = client.hosted
            if current.clients.get(session) is client:
                del current.clients[session]
                if self.databases.get(current.name) is current:
                    self._dispatch(current, current.host.disconnect(session))
                    self._gc.disconnected()
            await asyncio.sleep(0)  # let the writer send what is queued (e.g. a close reason)
            writer.cancel()
            if isinstance(ws, FastConnection):
                ws.stop_delivering()  # its callback holds the client, which holds it: a cycle for the collector

    def _on_message(self, client: _Client, message: bytes | str) -> None:
        """One message from a client, straight from its connection's ``data_received``."""
        if client.deferred is not None:
            client.deferred.append(message)
            return
        if not client.turn:
            self._in_turn(client)
            self._busy = True
        client.turn += 1
        if client.turn > MESSAGES_PER_TURN:
            client.deferred = collections.deque([message])
            client.ws.transport.pause_reading()
            return
        self._handle_message(client, message)

    def _in_turn(self, client: _Client) -> None:
        """Count the client's messages in this turn of the loop (one callback a turn ends them all)."""
        if not self._turn:
            asyncio.get_running_loop().call_soon(self._next_turn)
        self._turn.append(client)

    def _check_idle(self) -> None:
        # No message for a whole check interval: nobody would wait out a long pause now.
        assert self._loop is not None
        if not self._busy:
            self._gc.idle()
        self._busy = False
        self._idle_timer = self._loop.call_later(IDLE_CHECK_SECONDS, self._check_idle)

    def _next_turn(self) -> None:
        """A new turn of the loop: every count starts again; deferred messages go first, a share each,
        then those clients' sockets are read again."""
        clients, self._turn = self._turn, []
        for client in clients:
            client.turn = 0
            deferred = client.deferred
            if deferred is None:
                continue
            self._in_turn(client)
            while deferred and client.turn < MESSAGES_PER_TURN and not client.closing:
                client.turn += 1
                self._handle_message(client, deferred.popleft())
            if not deferred or client.closing:
                client.deferred = None
                client.ws.transport.resume_reading()

    def _handle_message(self, client: _Client, message: bytes | str) -> None:
        current = client.hosted
        session = client.session
        if current.clients.get(session) is not client:
            return  # the database went away under this client, which is being closed
        if not current.holding:
            # The other requests that arrived with this one (this turn of the loop) join its fsync:
            # one batch, one frame to each client, instead of a batch for the first and one for the rest.
            current.holding = True
            current.db.hold_commits()
            asyncio.get_running_loop().call_soon(self._release_commits, current)
        try:
            out = current.host.receive(session, message)  # type: ignore[arg-type]  # str: refused there
            out += current.host.release()
        except Exception:
            log.exception("handling a message from %s failed", session)
            client.close_soon("internal error", 1011)
            return
        self._dispatch(current, out)
        if session.close_reason is not None:
            client.close_soon(session.close_reason, 1008)

    @staticmethod
    def _release_commits(hosted: Hosted) -> None:
        hosted.holding = False
        hosted.db.release_commits()

    async def _handle_absent(self, ws: ServerConnection, name: str, identity: Identity, token: str) -> None:
        """A CLI connection to a database that does not exist yet: only publish is possible."""
        if isinstance(ws, FastConnection):
            ws.deliver_to_recv()
        session = Session(ConnectionId.random(), identity, hooks=False, token=token)
        await ws.send(encode(IdentityToken(bytes(identity), token, bytes(session.connection_id), name, {"tables": [], "reducers": []})))
        outbox: list[bytes] = []
        try:
            async for frame in ws:
                try:
                    msg = decode_client(frame)  # type: ignore[arg-type]
                except ProtocolError as exc:
                    await ws.send(encode(ErrorMessage(None, str(exc))))
                    continue
                existing = self.databases.get(name)
                if existing is not None:
                    # Created since this connection opened: it has an owner now, and this connection
                    # speaks for nobody's session on it. Reconnecting is the only way in.
                    outbox.append(encode(ErrorMessage(
                        getattr(msg, "id", None), f"database `{name}` exists now; reconnect to use it")))
                elif isinstance(msg, Publish):
                    self._admin(None, session, msg, name=name, reply=outbox.append)
                else:
                    outbox.append(encode(ErrorMessage(msg.id, f"no such database: {name}")))
                while outbox:
                    await ws.send(outbox.pop(0))
        except ConnectionClosed:
            pass

    async def _writer(self, client: _Client) -> None:
        """Closes the socket when asked to (frames themselves are written synchronously)."""
        try:
            await client.wake.wait()
            if client.closing:
                await client.ws.close(client.close_code, client.closing)
        except ConnectionClosed:
            return

    def _dispatch(self, hosted: Hosted, out: Iterable[Out]) -> None:
        """Write frames straight into each client's transport, as ``websockets.broadcast`` does.

        Each distinct payload is framed once (``_ws_header``: the host hands the same bytes object to
        every client with the same subscriptions) and each client gets all of its frames of this
        batch in one transport write, so one syscall. No task wake-up per frame: that was most of
        the server's CPU under load. A client whose transport holds more than ``send_buffer_bytes``
        unsent is not reading: it is disconnected with a reason and never holds anyone else up.
        """
        if hosted.host.busy and not hosted.working:
            hosted.working = True
            asyncio.get_running_loop().call_soon(self._work, hosted)
        clients = hosted.clients
        framed: dict[int, bytes] = {}  # id(payload) -> its websocket frame; ``out`` keeps the payloads alive
        pieces: dict[_Client, list[bytes | bytearray]] = {}
        for session, payload in out:
            client = clients.get(session)
            if client is None or client.closing:
                continue
            mine = pieces.get(client)
            if mine is None:
                mine = pieces[client] = []
            if len(payload) > _BIG_PAYLOAD:
                # A large answer (one client's): its header and the payload as they are, not copied into one.
                mine += (_ws_header(len(payload)), payload)
                continue
            frame = framed.get(id(payload))
            if frame is None:
                frame = framed[id(payload)] = _ws_header(len(payload)) + payload
            mine.append(frame)
        limit = self.config.send_buffer_bytes
        for client, frames in pieces.items():
            ws = client.ws
            protocol = ws.protocol
            if protocol.state is not OPEN:
                continue
            transport = ws.transport
            size = sum(map(len, frames))
            unsent = transport.get_write_buffer_size()
            if unsent + size > limit:  # counted before the write that would pass the bound
                client.close_soon(f"send queue overflow: the client is too slow reading ({unsent} bytes unsent,"
                                  f" {size} more to send; the limit is {limit})", 1008)
                log.warning("disconnecting %s: %s", client.session, client.closing)
                continue
            try:
                if protocol.writes:
                    ws.send_data()  # websockets' own frames (e.g. a pong) that are queued go first
                if size > _BIG_PAYLOAD:
                    for frame in frames:
                        transport.write(frame)
                else:
                    transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
            except Exception as exc:  # a connection failing mid-write is closing anyway
                log.debug("write to %s failed: %s", client.session, exc)

    def _work(self, hosted: Hosted) -> None:
        # One slice of the queries under way per turn of the loop: between two, the loop reads
        # every socket and runs every reducer that arrived, so a long query delays no one else.
        hosted.working = False
        if self.databases.get(hosted.name) is hosted:
            self._dispatch(hosted, hosted.host.work())

    def _on_durable(self, hosted: Hosted) -> None:
        # Cleared before reading the offset: the log publishes its offset before calling ``durable``,
        # so a batch that lands after this read finds the flag clear and schedules another call.
        hosted.durable_pending = False
        if self.databases.get(hosted.name) is hosted:
            self._dispatch(hosted, hosted.host.on_durable(hosted.db.durable_offset))


# Payloads above this are written as they are, after their own header: joining them into one
# bytes object (to save a syscall) would copy megabytes on the loop.
_BIG_PAYLOAD = 256 * 1024


def _ws_header(n: int) -> bytes:
    """The header of one unfragmented binary websocket frame of ``n`` bytes as a server sends it
    (RFC 6455 5.2: unmasked).

    With its payload, equal to what websockets' ``send_binary`` serializes when no extension is
    negotiated, which ``_handle`` checks for every client (the server asks for no compression).
    """
    if n < 126:
        return bytes((0x82, n))
    if n < 65536:
        return b"\x82\x7e" + n.to_bytes(2, "big")
    return b"\x82\x7f" + n.to_bytes(8, "big")


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


def _make_private(data_dir: Path) -> None:
    """Create the data directory 0700, or tighten an older one that others may read (module.log holds
    every message; the tokens' key is there too)."""
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    mode = data_dir.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            data_dir.chmod(PRIVATE_DIR)
            log.warning("data directory %s was open to others (mode %03o); it is now 0700", data_dir, mode)
        except OSError as exc:
            log.warning("data directory %s is open to others (mode %03o) and cannot be tightened: %s",
                        data_dir, mode, exc.strerror or exc)


def _write_module(path: Path, source: str) -> None:
    path.unlink(missing_ok=True)  # one left by a crash keeps its old mode through open(): start afresh
    with open(path, "w", encoding="utf-8", opener=private_opener) as fh:
        fh.write(source)


def _module_file(path: Path) -> Path | None:
    """The module a database directory hosts (its one ``.py`` file)."""
    files = sorted(path.glob("*.py")) if path.is_dir() else []
    return files[0] if files else None


def _presents_token(headers: Headers, query: str) -> bool:
    """Whether the request carries a token (valid or not: the handler judges it) rather than
    asking for a new identity."""
    try:
        return _token_from(headers, query) is not None
    except InvalidToken:
        return True


def _token_from(headers: Headers, query: str) -> str | None:
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
