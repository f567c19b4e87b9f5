"""The event loop's turns, shared among the clients: each client's share of one turn, and the
commits of one turn held so that they join one fsync.

The server's hot path: every message a client sends enters ``Turns.on_message`` straight from its
connection's ``data_received``, goes to ``Hosting.receive`` and its frames to the server's write
path (``dispatch``), with nothing in between.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from db_core.hosting import Hosting
from db_core.session import Out, Session

log = logging.getLogger("chat_server")

# A client's share of one turn of the event loop: the messages past it wait for the next turn
# (and its socket is not read meanwhile), so a client that pipelines hundreds of requests delays
# the others' by a few of its own, not by all of them.
MESSAGES_PER_TURN = 8


class Peer:
    """One websocket a database serves: its session, its share of this turn, and why it is being
    closed (if it is)."""

    __slots__ = ("ws", "session", "wake", "closing", "close_code", "turn", "deferred")

    def __init__(self, ws: ServerConnection, session: Session) -> None:
        self.ws = ws
        self.session = session
        self.wake = asyncio.Event()
        self.closing: str | None = None
        self.close_code = 1001
        self.turn = 0  # messages handled in this turn of the loop
        self.deferred: collections.deque[bytes | str] | None = None  # past this turn's share

    def close_soon(self, reason: str, code: int = 1001) -> None:
        """Have ``closer`` close the websocket with ``code`` and ``reason``."""
        if self.closing is None:
            self.closing, self.close_code = reason, code
            self.wake.set()

    async def closer(self) -> None:
        """The peer's task: closes the socket when asked to (frames themselves are written
        synchronously, by the server's write path). The caller cancels it once the socket is closed."""
        try:
            await self.wake.wait()
            if self.closing:
                await self.ws.close(self.close_code, self.closing)
        except ConnectionClosed:
            return


class Turns:
    """Hands each message to ``hosting`` and what it answers to ``dispatch``, at most
    ``MESSAGES_PER_TURN`` of one peer's per turn of the loop, and holds the turn's commits until
    the next (``Hosting.release_commits``). Runs on the event loop."""

    def __init__(self, hosting: Hosting, dispatch: Callable[[Iterable[Out]], None]) -> None:
        self.hosting = hosting
        self.dispatch = dispatch
        self.busy = False  # a message, connect or disconnect since the server's last idle check
        self._turn: list[Peer] = []  # peers with messages in this turn of the loop (see on_message)
        self._holding = False  # commits are held until the loop's next turn (see _handle)

    def on_message(self, peer: Peer, message: bytes | str) -> None:
        """One message from ``peer``, straight from its connection's ``data_received``: handled now,
        or (past the peer's share of this turn) deferred, its socket paused until the next turn."""
        if peer.deferred is not None:
            peer.deferred.append(message)
            return
        if not peer.turn:
            self._in_turn(peer)
            self.busy = True
        peer.turn += 1
        if peer.turn > MESSAGES_PER_TURN:
            peer.deferred = collections.deque([message])
            peer.ws.transport.pause_reading()
            return
        self._handle(peer, message)

    def _in_turn(self, peer: Peer) -> None:
        """Count the peer's messages in this turn of the loop (one callback a turn ends them all)."""
        if not self._turn:
            asyncio.get_running_loop().call_soon(self._next_turn)
        self._turn.append(peer)

    def _next_turn(self) -> None:
        """A new turn of the loop: every count starts again; deferred messages go first, a share each,
        then those peers' sockets are read again."""
        peers, self._turn = self._turn, []
        for peer in peers:
            peer.turn = 0
            deferred = peer.deferred
            if deferred is None:
                continue
            self._in_turn(peer)
            while deferred and peer.turn < MESSAGES_PER_TURN and not peer.closing:
                peer.turn += 1
                self._handle(peer, deferred.popleft())
            if not deferred or peer.closing:
                peer.deferred = None
                peer.ws.transport.resume_reading()

    def _handle(self, peer: Peer, message: bytes | str) -> None:
        session = peer.session
        if not self._holding:
            # The other requests that arrived with this one (this turn of the loop) join its fsync:
            # one batch, one frame to each client, instead of a batch for the first and one for the rest.
            self._holding = True
            asyncio.get_running_loop().call_soon(self._release_commits)
        try:
            out = self.hosting.receive(session, message)  # type: ignore[arg-type]  # str: refused there
        except Exception:
            log.exception("handling a message from %s failed", session)
            peer.close_soon("internal error", 1011)
            return
        self.dispatch(out)
        if session.close_reason is not None:
            peer.close_soon(session.close_reason, 1008)

    def _release_commits(self) -> None:
        self._holding = False
        self.hosting.release_commits()
