"""The websockets adapter: moves frames between sockets and the hosting controller (``db_core.hosting``).

It owns only what needs I/O: the sockets, the event loop's turns (a client's share of one turn and
the commits held until the next are in ``turns``; long queries are sliced across turns) and the writes. One endpoint
per database, ``/v1/database/<name>/subscribe``, speaking the ``qc.msgpack.v1`` subprotocol;
``/health`` answers plain HTTP (503 naming each database that cannot write to disk). Reducers
run on the event loop (a transaction takes microseconds); the commit log's thread reports
durability, and a failure of the log, through ``call_soon_threadsafe``. Each client has a
bounded send queue: a client that stops reading is disconnected with a reason and never slows
anyone else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
import re
import ssl
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from db_core.commitlog.fsio import PRIVATE_DIR
from db_core.dirlock import lock_directory, unlock_directory
from db_core.durability import SWITCH_INTERVAL
from db_core.session import Limits, Out, Session
from db_core.hosting import Effects, Hosted, Hosting, Module
from db_core.protocol import SUBPROTOCOL
from db_core.ratelimit import KeyedBuckets, Rate, TokenBucket
from db_core.types import Identity

from .admission import Admission, token_from
from .auth import InvalidToken, TokenAuthority
from .address import DB_NAME_RULE, check_database_name, valid_database_name
from .frames import BIG_PAYLOAD, DEFAULT_CONTROL_FRAMES, FastConnection, ws_header
from .gc_policy import GcPolicy
from .modules import QUICKSTART_CHAT
from .tokens import write_private
from .turns import Peer, Turns

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


LOCK_NAME = "server.lock"  # in the data directory: one server per directory; holds its pid (chat-server stop)
IDLE_CHECK_SECONDS = 0.05  # how often the server looks for a pause in the traffic (``GcPolicy.idle``)


class ChatServer:
    """Hosts every database in ``data_dir/databases`` over websockets."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # Taken before anything is read or created: two servers started at once on a fresh
        # directory would otherwise each mint their own key and owner token.
        _make_private(config.data_dir)
        self._lock_fd: int | None = lock_directory(config.data_dir, LOCK_NAME)
        self.auth = TokenAuthority.load_or_create(config.data_dir / "auth.key")
        self.owner, self.owner_token = self._owner_identity()
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gc = GcPolicy()
        self._switch_interval: float | None = None  # the process's own, while the server runs
        self.port = config.port
        self.hosting = Hosting(config.data_dir / "databases", self.owner, check_name=check_database_name,
                               limits=config.limits, publishers=lambda: self.config.publishers,
                               identity_buckets=KeyedBuckets(config.limits.identity_requests),
                               wake=self._wake_durable, wake_failed=self._wake_failed, wake_admin=self._wake_admin)
        self.clients: dict[Session, Peer] = {}  # every websocket a database serves
        self._admission = Admission(config.connections_per_address, config.connects_per_address,
                                    config.new_identities_per_address)
        self._working = False  # a _work call is scheduled on the loop
        self._turns = Turns(self.hosting, self._dispatch)  # each client's share of the loop's turns
        self._idle_timer: asyncio.TimerHandle | None = None
        self.failures: list[str] = []  # set by ``stop``: one line per database that could not write to disk

    @property
    def databases(self) -> dict[str, Hosted]:
        """The databases served, by name."""
        return self.hosting.databases

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

    def publish(self, name: str, source: str, *, filename: str = "module.py", clear: bool = False,
                publisher: Identity | None = None) -> list[str]:
        """Create or update database ``name`` from module source (``Hosting.publish``); returns what
        migrated. Its live clients stay connected, on the new version."""
        try:
            return self.hosting.publish(name, source, filename=filename, clear=clear, publisher=publisher)
        finally:
            self._apply(self.hosting.effects())

    def delete(self, name: str) -> None:
        """Delete database ``name``: its clients are disconnected and its files removed."""
        try:
            self.hosting.delete(name)
        finally:
            self._apply(self.hosting.effects())

    def _apply(self, effects: Effects) -> None:
        self._dispatch(effects.out)
        for session, reason in effects.closed:
            client = self.clients.get(session)
            if client is not None:
                client.close_soon(reason)

    # -- news from the databases (wake-ups from the log's thread, or from a host) -----------------
    def _wake_durable(self, hosted: Hosted) -> bool:
        loop = self._loop
        if loop is None:
            return False
        loop.call_soon_threadsafe(self._on_durable, hosted)
        return True

    def _on_durable(self, hosted: Hosted) -> None:
        self._dispatch(self.hosting.on_durable(hosted))

    def _wake_failed(self, hosted: Hosted) -> None:
        # On the log's thread; the loop answers what waits and reverts the database, which it owns.
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._on_storage_failure, hosted)
            except RuntimeError:  # the loop is closed: the server has stopped
                pass

    def _on_storage_failure(self, hosted: Hosted) -> None:
        self._dispatch(self.hosting.on_storage_failure(hosted))

    def _wake_admin(self) -> None:
        # Publishing closes and reopens the database: not from inside the host's own call.
        asyncio.get_running_loop().call_soon(self._run_admin)

    def _run_admin(self) -> None:
        self._apply(self.hosting.run_admin())

    async def start(self) -> None:
        """Open every database and listen; on failure nothing stays open or locked."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # The commit log's thread must get the GIL back promptly after each fsync to hand out
        # results; at the default 5 ms a busy loop starves it (measured: 50k -> 62k calls/s).
        # Process-wide, so the server sets it for as long as it runs, not the library.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        try:
            self.hosting.open_all((DEFAULT_DATABASE, Module(QUICKSTART_CHAT.read_text(), QUICKSTART_CHAT.name)))
        finally:
            self._apply(self.hosting.effects())
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
                subprotocols=[Subprotocol(SUBPROTOCOL)],
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
        for client in list(self.clients.values()):
            client.close_soon("server shutting down")
        if self._server is not None:
            for client in list(self.clients.values()):
                await client.ws.close(1001, "server shutting down")
            for ws in list(self._server.connections):  # those no database holds (a CLI waiting to publish)
                await ws.close(1001, "server shutting down")
            await self._server.wait_closed()
        self.failures = self.hosting.close()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._gc.stop()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        if self._lock_fd is not None:
            unlock_directory(self._lock_fd)
            self._lock_fd = None

    def storage_failures(self) -> list[str]:
        """One line per hosted database that can no longer write to disk; [] while every one can."""
        return self.hosting.storage_failures()

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
        refusal = self._admission.refusal(connection, request, url.query)
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

    # -- websocket -------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        self._turns.busy = True  # connects and disconnects are work a long pause would delay too
        address = self._admission.opened(ws.remote_address)
        try:
            await self._serve_connection(ws)
        finally:
            self._turns.busy = True
            self._admission.closed(address)

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
            token = token_from(ws.request.headers, url.query)
            if token:
                identity = self.auth.verify(token)
            else:
                identity, token = self.auth.mint()
        except InvalidToken as exc:
            await ws.close(1008, f"invalid token: {exc}")
            return
        if name not in self.databases:
            await self._handle_absent(ws, name, identity, token)
            return
        if ws.protocol.extensions:  # never negotiated (compression=None); ws_header could not frame for one
            await ws.close(1011, "unexpected websocket extension")
            return
        session, reason, out = self.hosting.connect(name, identity, token, hooks=hooks)
        if session is None:
            await ws.close(1008, (reason or "connection rejected")[:120])
            return
        client = Peer(ws, session)
        self.clients[session] = client
        self._dispatch(out)
        closer = asyncio.create_task(client.closer())
        on_message = self._turns.on_message
        try:
            if isinstance(ws, FastConnection):
                ws.deliver_directly(lambda message: on_message(client, message))
                await ws.wait_closed()
            else:
                async for frame in ws:
                    on_message(client, frame)
        except ConnectionClosed:
            pass
        finally:
            if self.clients.get(session) is client:
                del self.clients[session]
                if session in self.hosting:
                    self._dispatch(self.hosting.disconnect(session))
                    self._gc.disconnected()
            await asyncio.sleep(0)  # let the closer send what is queued (e.g. a close reason)
            closer.cancel()
            if isinstance(ws, FastConnection):
                ws.stop_delivering()  # its callback holds the client, which holds it: a cycle for the collector

    def _check_idle(self) -> None:
        # No message for a whole check interval: nobody would wait out a long pause now.
        assert self._loop is not None
        if not self._turns.busy:
            self._gc.idle()
        self._turns.busy = False
        self._idle_timer = self._loop.call_later(IDLE_CHECK_SECONDS, self._check_idle)

    async def _handle_absent(self, ws: ServerConnection, name: str, identity: Identity, token: str) -> None:
        """A CLI connection to a database that does not exist yet: only publish is possible."""
        if isinstance(ws, FastConnection):
            ws.deliver_to_recv()
        session, hello = self.hosting.connect_absent(name, identity, token)
        await ws.send(hello)
        try:
            async for frame in ws:
                replies = self.hosting.receive_absent(session, name, frame)  # type: ignore[arg-type]  # str: refused
                self._apply(self.hosting.effects())
                for reply in replies:
                    await ws.send(reply)
        except ConnectionClosed:
            pass

    def _dispatch(self, out: Iterable[Out]) -> None:
        """Write frames straight into each client's transport, as ``websockets.broadcast`` does.

        Each distinct payload is framed once (``ws_header``: the host hands the same bytes object to
        every client with the same subscriptions) and each client gets all of its frames of this
        batch in one transport write, so one syscall. No task wake-up per frame: that was most of
        the server's CPU under load. A client whose transport holds more than ``send_buffer_bytes``
        unsent is not reading: it is disconnected with a reason and never holds anyone else up.
        """
        if not self._working and self.hosting.busy:
            self._working = True
            asyncio.get_running_loop().call_soon(self._work)
        clients = self.clients
        framed: dict[int, bytes] = {}  # id(payload) -> its websocket frame; ``out`` keeps the payloads alive
        pieces: dict[Peer, list[bytes | bytearray]] = {}
        for session, payload in out:
            client = clients.get(session)
            if client is None or client.closing:
                continue
            mine = pieces.get(client)
            if mine is None:
                mine = pieces[client] = []
            if len(payload) > BIG_PAYLOAD:
                # A large answer (one client's): its header and the payload as they are, not copied into one.
                mine += (ws_header(len(payload)), payload)
                continue
            frame = framed.get(id(payload))
            if frame is None:
                frame = framed[id(payload)] = ws_header(len(payload)) + payload
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
                if size > BIG_PAYLOAD:
                    for piece in frames:
                        transport.write(piece)
                else:
                    transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
            except Exception as exc:  # a connection failing mid-write is closing anyway
                log.debug("write to %s failed: %s", client.session, exc)

    def _work(self) -> None:
        # One slice of the queries under way per turn of the loop: between two, the loop reads
        # every socket and runs every reducer that arrived, so a long query delays no one else.
        self._working = False
        self._dispatch(self.hosting.work())


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
