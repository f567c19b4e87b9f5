"""The websockets adapter: moves frames between sockets and each database's Host.

One endpoint per database, ``/v1/database/<name>/subscribe``, speaking the
``qc.msgpack.v1`` subprotocol; ``/health`` answers plain HTTP. Reducers run on
the event loop (a transaction takes microseconds); the commit log's thread
reports durability through ``call_soon_threadsafe``. Each client has a
bounded send queue: a client that stops reading is disconnected with a reason
and never slows anyone else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
import re
import shutil
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.http11 import Request, Response

from db_core import ConnectionId, Database, DbError, Identity
from db_core.host import Host, Limits, Out, Session
from db_core.dirlock import lock_directory, unlock_directory
from db_core.protocol import (SUBPROTOCOL, DeleteDatabase, Done, ErrorMessage, IdentityToken, ProtocolError, Publish,
                              decode_client, encode)

from .auth import InvalidToken, TokenAuthority
from .frames import FastConnection
from .gc_policy import GcPolicy
from .modules import QUICKSTART_CHAT
from .tokens import write_private

log = logging.getLogger("chat_server")
OPEN = State.OPEN
DB_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# "subscribe": a client (lifecycle hooks run); "cli": the command line (no hooks, calls carry no connection).
PATH_RE = re.compile(r"^/v1/database/([^/]+)/(subscribe|cli)$")
DEFAULT_DATABASE = "quickstart-chat"


@dataclasses.dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 3000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_frame_bytes: int = 1 << 20
    send_buffer_bytes: int = 8 << 20   # a client with more unsent than this is too slow: disconnected
    limits: Limits = dataclasses.field(default_factory=Limits)


class _Client:
    """One websocket: its session, the database serving it, and why it is being closed (if it is)."""

    __slots__ = ("ws", "session", "hosted", "wake", "closing", "close_code")

    def __init__(self, ws: ServerConnection, session: Session, hosted: "Hosted") -> None:
        self.ws = ws
        self.session = session
        self.hosted = hosted
        self.wake = asyncio.Event()
        self.closing: str | None = None
        self.close_code = 1001

    def close_soon(self, reason: str, code: int = 1001) -> None:
        """Have the writer task close the websocket with ``code`` and ``reason``."""
        if self.closing is None:
            self.closing, self.close_code = reason, code
            self.wake.set()


class Hosted:
    """One database as served: the Database, its Host, its clients."""

    def __init__(self, name: str, db: Database, limits: Limits) -> None:
        self.name = name
        self.db = db
        self.host = Host(db, name, limits)
        self.clients: dict[Session, _Client] = {}
        self.durable_pending = False  # an _on_durable call is scheduled on the loop
        self.holding = False  # the log is held until the loop's next turn (see ChatServer._on_message)


class ChatServer:
    """Hosts every database in ``data_dir/databases`` over websockets."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.databases: dict[str, Hosted] = {}
        # Taken before anything is read or created: two servers started at once on a fresh
        # directory would otherwise each mint their own key and owner token.
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = lock_directory(config.data_dir, "server.lock")
        self.auth = TokenAuthority.load_or_create(config.data_dir / "auth.key")
        self.owner, self.owner_token = self._owner_identity()
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gc = GcPolicy()
        self.port = config.port

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
        root.mkdir(parents=True, exist_ok=True)
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
        hosted = Hosted(name, db, self.config.limits)
        hosted.host.on_admin = lambda session, msg: self._admin_soon(hosted, session, msg)
        loop = self._loop

        def durable(offset: int) -> None:
            # On the log's thread. One wake-up of the loop at a time: batches that become durable
            # while it is pending go out with it (fuller frames, fewer writes to every client).
            if loop is not None and not hosted.durable_pending:
                hosted.durable_pending = True
                loop.call_soon_threadsafe(self._on_durable, hosted)

        db.add_durable_listener(durable)
        self.databases[name] = hosted
        log.info("hosting database %s (%d tables, %d reducers)", name, len(db.module_def.tables),
                 len(db.module_def.reducers))
        return hosted

    def publish(self, name: str, source: str, *, filename: str = "module.py", clear: bool = False,
                publisher: Identity | None = None) -> list[str]:
        """Create or update database ``name`` from module source; returns what migrated.

        The module is kept under its own file name, which is what log lines cite.
        """
        if not DB_NAME_RE.match(name):
            raise DbError(f"invalid database name {name!r}: use lowercase letters, digits and single dashes")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\.py$", filename):
            filename = "module.py"
        path = self.config.data_dir / "databases" / name
        path.mkdir(parents=True, exist_ok=True)
        old = self.databases.pop(name, None)
        if old is not None:
            # Everything the old version committed goes out before its clients move on.
            old.db.wait_durable(old.db.last_offset)
            self._dispatch(old, old.host.on_durable(old.db.last_offset))
        moving = list(old.clients.values()) if old is not None else []
        carried = [(c, old.host.live_subscriptions(c.session)) for c in moving] if old is not None else []
        keep = frozenset(c.session.connection_id for c in moving if c.session.hooks)
        for client in moving:
            old.host.detach(client.session)  # type: ignore[union-attr]
        previous_path = _module_file(path)
        previous = previous_path.read_text() if previous_path is not None else None
        tmp = path / (filename + ".new")
        tmp.write_text(source)
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
                previous_path.write_text(previous)
                if old is not None:
                    restored = self._open(name, keep=keep)
                    self._carry_over(restored, carried)
            else:
                shutil.rmtree(path, ignore_errors=True)
            raise
        # Keep the live clients: their sessions move to the new host with their subscriptions.
        self._carry_over(hosted, carried)
        return hosted.db.migrations

    def _carry_over(self, hosted: Hosted, carried: list[tuple[_Client, list[tuple[int, list[str]]]]]) -> None:
        for client, subscriptions in carried:
            client.hosted = hosted
            hosted.clients[client.session] = client
            self._dispatch(hosted, hosted.host.adopt(client.session, subscriptions))

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

    def _admin(self, hosted: Hosted | None, session: Session, msg: Publish | DeleteDatabase, name: str = "",
               reply: Callable[[bytes], None] | None = None) -> None:
        name = hosted.name if hosted is not None else name
        send = reply or (lambda frame: self._send_direct(session, frame))
        owner = hosted.db.owner if hosted is not None else None
        if owner is not None and session.identity != owner:
            what = "publish over" if isinstance(msg, Publish) else "delete"
            send(encode(ErrorMessage(msg.id, f"Identity 0x{session.identity.hex()} is not authorized to {what} database `{name}`")))
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
        ssl_ctx = None
        if self.config.tls_cert is not None:
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        self._server = await serve(
            self._handle, self.config.host, self.config.port,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            process_request=self._process_request,
            compression=None,  # per-message deflate costs 25-35% on small chat frames
            create_connection=FastConnection,
            max_size=self.config.max_frame_bytes,
            ssl=ssl_ctx,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, disconnect everyone (running the hooks), flush the logs."""
        if self._server is not None:
            self._server.close(close_connections=False)
        for hosted in self.databases.values():
            for client in list(hosted.clients.values()):
                client.close_soon("server shutting down")
        if self._server is not None:
            for hosted in self.databases.values():
                for client in list(hosted.clients.values()):
                    await client.ws.close(1001, "server shutting down")
            await self._server.wait_closed()
        for hosted in self.databases.values():
            hosted.host.close()
            hosted.db.close()
        self.databases.clear()
        self._gc.stop()
        if self._lock_fd is not None:
            unlock_directory(self._lock_fd)
            self._lock_fd = None

    # -- HTTP ----------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/health":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        m = PATH_RE.match(path)
        if m is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"no such endpoint: {path}\n")
        if m.group(1) not in self.databases and m.group(2) != "cli":
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"no such database: {m.group(1)}\n")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return connection.respond(http.HTTPStatus.UPGRADE_REQUIRED, "this endpoint speaks websocket\n")
        return None

    # -- websocket -------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        url = urlsplit(ws.request.path)
        m = PATH_RE.match(url.path)
        assert m is not None
        name, hooks = m.group(1), m.group(2) == "subscribe"
        token = _token_from(ws.request.headers, url.query)
        try:
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
        if ws.protocol.extensions:  # never negotiated (compression=None); _ws_frame could not encode for one
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

    def _on_message(self, client: _Client, message: bytes | str) -> None:
        """One message from a client, straight from its connection's ``data_received``."""
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

        Each distinct payload is framed once (``_ws_frame``: the host hands the same bytes object to
        every client with the same subscriptions) and each client gets all of its frames of this
        batch in one transport write, so one syscall. No task wake-up per frame: that was most of
        the server's CPU under load. A client whose transport holds more than ``send_buffer_bytes``
        unsent is not reading: it is disconnected with a reason and never holds anyone else up.
        """
        clients = hosted.clients
        framed: dict[int, bytes] = {}  # id(payload) -> its websocket frame; ``out`` keeps the payloads alive
        pieces: dict[_Client, list[bytes]] = {}
        for session, payload in out:
            client = clients.get(session)
            if client is None or client.closing:
                continue
            frame = framed.get(id(payload))
            if frame is None:
                frame = framed[id(payload)] = _ws_frame(payload)
            mine = pieces.get(client)
            if mine is None:
                pieces[client] = [frame]
            else:
                mine.append(frame)
        limit = self.config.send_buffer_bytes
        for client, frames in pieces.items():
            ws = client.ws
            protocol = ws.protocol
            if protocol.state is not OPEN:
                continue
            transport = ws.transport
            unsent = transport.get_write_buffer_size()
            if unsent > limit:
                client.close_soon(f"send queue overflow: the client is too slow reading ({unsent} bytes unsent)", 1008)
                log.warning("disconnecting %s: %s", client.session, client.closing)
                continue
            try:
                if protocol.writes:
                    ws.send_data()  # websockets' own frames (e.g. a pong) that are queued go first
                transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
            except Exception as exc:  # a connection failing mid-write is closing anyway
                log.debug("write to %s failed: %s", client.session, exc)

    def _on_durable(self, hosted: Hosted) -> None:
        # Cleared before reading the offset: the log publishes its offset before calling ``durable``,
        # so a batch that lands after this read finds the flag clear and schedules another call.
        hosted.durable_pending = False
        if self.databases.get(hosted.name) is hosted:
            self._dispatch(hosted, hosted.host.on_durable(hosted.db.durable_offset))


def _ws_frame(payload: bytes) -> bytes:
    """One unfragmented binary websocket frame as a server sends it (RFC 6455 5.2: unmasked).

    Equal to what websockets' ``send_binary`` serializes when no extension is negotiated, which
    ``_handle`` checks for every client (the server asks for no compression).
    """
    n = len(payload)
    if n < 126:
        return bytes((0x82, n)) + payload
    if n < 65536:
        return b"\x82\x7e" + n.to_bytes(2, "big") + payload
    return b"\x82\x7f" + n.to_bytes(8, "big") + payload


def _module_file(path: Path) -> Path | None:
    """The module a database directory hosts (its one ``.py`` file)."""
    files = sorted(path.glob("*.py")) if path.is_dir() else []
    return files[0] if files else None


def _token_from(headers: Headers, query: str) -> str | None:
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    values = parse_qs(query).get("token")
    return values[0] if values else None
