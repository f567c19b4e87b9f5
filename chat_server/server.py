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
import collections
import dataclasses
import http
import logging
import re
import shutil
import ssl
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from db_core import Database, DbError, Identity
from db_core.host import Host, Limits, Out, Session
from db_core.protocol import SUBPROTOCOL

from .auth import InvalidToken, TokenAuthority
from .modules import QUICKSTART_CHAT

log = logging.getLogger("chat_server")
DB_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PATH_RE = re.compile(r"^/v1/database/([^/]+)/subscribe$")
DEFAULT_DATABASE = "quickstart-chat"


@dataclasses.dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 3000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_frame_bytes: int = 1 << 20
    send_queue_frames: int = 1024
    limits: Limits = dataclasses.field(default_factory=Limits)


class _Client:
    """One websocket: its session and its bounded outgoing queue."""

    __slots__ = ("ws", "session", "queue", "wake", "closing")

    def __init__(self, ws: ServerConnection, session: Session) -> None:
        self.ws = ws
        self.session = session
        self.queue: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.closing: str | None = None


class Hosted:
    """One database as served: the Database, its Host, its clients."""

    def __init__(self, name: str, db: Database, limits: Limits) -> None:
        self.name = name
        self.db = db
        self.host = Host(db, name, limits)
        self.clients: dict[Session, _Client] = {}


class ChatServer:
    """Hosts every database in ``data_dir/databases`` over websockets."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.databases: dict[str, Hosted] = {}
        self.auth = TokenAuthority.load_or_create(config.data_dir / "auth.key")
        self.owner, self.owner_token = self._owner_identity()
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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
            path.write_text(token + "\n")
            path.chmod(0o600)
            return identity, token

    def _open_databases(self) -> None:
        root = self.config.data_dir / "databases"
        root.mkdir(parents=True, exist_ok=True)
        if _module_file(root / DEFAULT_DATABASE) is None:
            self.publish(DEFAULT_DATABASE, QUICKSTART_CHAT.read_text(), filename=QUICKSTART_CHAT.name)
        for path in sorted(root.iterdir()):
            if path.name not in self.databases and _module_file(path) is not None:
                self._open(path.name)

    def _open(self, name: str, *, clear: bool = False) -> Hosted:
        path = self.config.data_dir / "databases" / name
        module_file = _module_file(path)
        assert module_file is not None
        db = Database.open(path / "data", module_file, owner=self.owner, clear=clear)
        hosted = Hosted(name, db, self.config.limits)
        loop = self._loop

        def durable(offset: int) -> None:
            if loop is not None:
                loop.call_soon_threadsafe(self._on_durable, hosted, offset)

        db.add_durable_listener(durable)
        self.databases[name] = hosted
        log.info("hosting database %s (%d tables, %d reducers)", name, len(db.module_def.tables),
                 len(db.module_def.reducers))
        return hosted

    def publish(self, name: str, source: str, *, filename: str = "module.py", clear: bool = False) -> list[str]:
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
        try:
            hosted = self._open(name, clear=clear)
        except BaseException:
            module_path.unlink(missing_ok=True)
            if previous is not None and previous_path is not None:
                previous_path.write_text(previous)
                if old is not None:
                    self._open(name)
            else:
                shutil.rmtree(path, ignore_errors=True)
            raise
        if old is not None:
            # Keep the live clients: hand their sessions to the new host.
            for client in old.clients.values():
                self._reattach(hosted, client)
        return hosted.db.migrations

    def _reattach(self, hosted: Hosted, client: _Client) -> None:
        client.closing = "the database was updated; reconnect"
        client.wake.set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._open_databases()
        ssl_ctx = None
        if self.config.tls_cert is not None:
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        self._server = await serve(
            self._handle, self.config.host, self.config.port,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            process_request=self._process_request,
            compression=None,  # per-message deflate costs 25-35% on small chat frames
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
                client.closing = "server shutting down"
                client.wake.set()
        if self._server is not None:
            for hosted in self.databases.values():
                for client in list(hosted.clients.values()):
                    await client.ws.close(1001, "server shutting down")
            await self._server.wait_closed()
        for hosted in self.databases.values():
            hosted.host.close()
            hosted.db.close()
        self.databases.clear()

    # -- HTTP ----------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/health":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        m = PATH_RE.match(path)
        if m is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"no such endpoint: {path}\n")
        if m.group(1) not in self.databases:
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
        hosted = self.databases.get(m.group(1))
        if hosted is None:
            await ws.close(1008, f"no such database: {m.group(1)}")
            return
        token = _token_from(ws.request.headers, url.query)
        try:
            if token:
                identity = self.auth.verify(token)
            else:
                identity, token = self.auth.mint()
        except InvalidToken as exc:
            await ws.close(1008, f"invalid token: {exc}")
            return
        session, reason, out = hosted.host.connect(identity, token)
        if session is None:
            await ws.close(1008, (reason or "connection rejected")[:120])
            return
        client = _Client(ws, session)
        hosted.clients[session] = client
        self._dispatch(hosted, out)
        writer = asyncio.create_task(self._writer(hosted, client))
        try:
            async for frame in ws:
                if isinstance(frame, str):
                    frame = frame.encode()
                self._dispatch(hosted, hosted.host.receive(session, frame))
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            hosted.clients.pop(session, None)
            if hosted is self.databases.get(hosted.name):
                self._dispatch(hosted, hosted.host.disconnect(session))

    async def _writer(self, hosted: Hosted, client: _Client) -> None:
        ws = client.ws
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                if client.closing:
                    await ws.close(1008 if "slow" in client.closing else 1001, client.closing)
                    return
                while client.queue:
                    await ws.send(client.queue.popleft())
        except ConnectionClosed:
            return

    def _dispatch(self, hosted: Hosted, out: Iterable[Out]) -> None:
        limit = self.config.send_queue_frames
        for session, frame in out:
            client = hosted.clients.get(session)
            if client is None or client.closing:
                continue
            if len(client.queue) >= limit:
                client.queue.clear()
                client.closing = f"send queue overflow: the client is too slow reading ({limit} frames queued)"
                log.warning("disconnecting %s: %s", session, client.closing)
            else:
                client.queue.append(frame)
            client.wake.set()

    def _on_durable(self, hosted: Hosted, offset: int) -> None:
        if self.databases.get(hosted.name) is hosted:
            self._dispatch(hosted, hosted.host.on_durable(offset))


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
