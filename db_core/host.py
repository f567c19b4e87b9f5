"""Sans-I/O session logic for one hosted database: frames in, (session, frame) pairs out.

The network adapter feeds it connects, frames and disconnects, and tells it when the commit log
is durable up to an offset; it never touches a socket. Every entry point returns the frames that
may go out now, in order, as (session, bytes) pairs: send them, then, while ``busy``, call
``work`` once per turn of the loop::

    session, refusal, out = host.connect(identity, token)  # send out, or close with refusal
    out = host.receive(session, frame) + host.release()     # per client frame
    out = host.work()                                       # while host.busy
    out = host.on_durable(db.durable_offset)                # the log's news
    out = host.disconnect(session)                          # the socket closed

A session's requests are handled in order; its queries are evaluated in slices, taking turns
with the others (``work``). What the host sends waits in the ``Outbox`` until the log holds
what it reflects; ``Subscriptions`` registers each distinct query once.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import msgpack

from .authority import Action, refusal
from .database import CallResult, Database
from .errors import CallError, DbError, StorageError
from .logs import LEVEL_RANK, LogRecord
from .outbox import Outbox
from .outbox import PendingMsg
from .protocol import (
    CallReducer,
    ClientMessage,
    DeleteDatabase,
    ErrorMessage,
    IdentityToken,
    LogLines,
    Logs,
    OneOffQuery,
    OneOffResult,
    ProtocolError,
    Publish,
    ReducerResult,
    Subscribe,
    SubscribeApplied,
    SubscriptionError,
    Unsubscribe,
    UnsubscribeApplied,
    decode_client,
    decode_server,
    encode,
    encode_result,
)
from .queries import SLICE_SECONDS, Queries
from .ratelimit import KeyedBuckets, TokenBucket
from .session import RATE_PENALTY_SECONDS, Limits, Out, Session
from .subscription import Subscriptions
from .tx import TxData
from .types import ConnectionId, Identity


class Host:
    """The sessions of one database."""

    def __init__(self, db: Database, name: str, limits: Limits | None = None, *,
                 identity_buckets: KeyedBuckets | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """``identity_buckets`` (shared by every database of a server) limits each identity's requests.
        Next: ``connect`` sessions; ``close`` the host before the database."""
        self.db = db
        self.name = name
        self.limits = limits or Limits()
        self.clock = clock
        self.identity_buckets = identity_buckets or KeyedBuckets(self.limits.identity_requests)
        self.sessions: dict[ConnectionId, Session] = {}
        self.subscriptions: Subscriptions[Session] = Subscriptions(db.tables)
        self._outbox: Outbox[Session] = Outbox(self.subscriptions, db.codecs, db.durable_offset)
        self._queries = Queries(db, self.limits, self.subscriptions, self._outbox, self._drain)
        # Set by the hosting controller: publish and delete, which outlive this host, are its to run.
        self.on_admin: Callable[[Session, Publish | DeleteDatabase], None] | None = None
        db.add_commit_listener(self._on_commit)

    def close(self) -> None:
        """Stop following the database's commits; next, close the database."""
        self.db.remove_commit_listener(self._on_commit)

    @property
    def owner(self) -> Identity | None:
        """The database's owner."""
        return self.db.owner

    # -- connections --------------------------------------------------------------------
    def connect(self, identity: Identity, token: str, *, hooks: bool = True,
                connection_id: ConnectionId | None = None) -> tuple[Session | None, str | None, list[Out]]:
        """Open a session. With ``hooks`` (a client), client_connected runs and may refuse:
        then (None, reason, []): close the connection with the reason. Without (the CLI), nothing
        runs and calls carry no connection id. Next: send the frames (the identity message, once
        durable), then feed the session's frames to ``receive``."""
        if hooks:
            try:
                result = self.db.connect_nowait(identity, connection_id)
            except StorageError as exc:  # the hook cannot record the connection
                return None, str(exc), []
            if not result.ok:
                return None, result.error or "connection rejected", []
            assert result.connection_id is not None
            session = Session(result.connection_id, identity, True, token)
            barrier = result.offset
        else:
            session = Session(connection_id or ConnectionId.random(), identity, False, token)
            barrier = self.db.last_offset
        self._admit(session)
        return session, None, self._outbox.send(PendingMsg(barrier, session, self._hello(session), False, True))

    def _admit(self, session: Session) -> None:
        self.sessions[session.connection_id] = session
        if session.bucket is None:
            now = self.clock()
            session.bucket = TokenBucket(self.limits.connection_requests, now)
            session.identity_bucket = self.identity_buckets.acquire(session.identity, now)

    def _hello(self, session: Session) -> bytes:
        return encode(IdentityToken(bytes(session.identity), session.token, bytes(session.connection_id), self.name,
                                    self.db.schema()))

    def live_subscriptions(self, session: Session) -> list[tuple[int, list[str]]]:
        """(request id, queries) of a session's live subscriptions (one being evaluated included):
        what ``adopt`` on the next host subscribes again."""
        live = [(s.request_id, s.queries) for s in session.subs.values() if s.until is None]
        if isinstance(session.request, Subscribe):
            live.append((session.request.id, session.request.queries))
        return live

    def pending_requests(self, session: Session) -> list[ClientMessage]:
        """The requests of a session still to be answered, other than its subscribes being evaluated:
        what ``adopt`` on the next host answers."""
        first = [] if session.request is None or isinstance(session.request, Subscribe) else [session.request]
        return first + [msg for msg, _ in session.backlog]

    def adopt(self, session: Session, subscriptions: list[tuple[int, list[str]]],
              requests: list[ClientMessage] | None = None) -> list[Out]:
        """Take over a live session from the host of the previous module version (``detach``ed there).

        Same identity and connection, no hooks run. The client is sent the new
        schema (an identity message: clients drop their cached rows on it), then
        each subscription's rows again, checked against the new schema, then the
        answers to ``requests`` it was still waiting for. Next: send the frames; the
        session's frames go to this host's ``receive`` from now on.
        """
        session.closed = False
        session.subs = {}
        session.in_flight = 0
        session.signature = None
        session.log_follow = None
        session.job = session.request = None
        session.waiting = False
        session.backlog = collections.deque([(Subscribe(rid, queries), 0) for rid, queries in subscriptions]
                                            + [(msg, 0) for msg in requests or ()])
        self._admit(session)
        return self._outbox.send(PendingMsg(self.db.last_offset, session, self._hello(session), False, True)) \
            + self._drain(session)

    def release(self) -> list[Out]:
        """Whatever is ready to go now (e.g. log lines queued while a reducer ran): send it. Call
        after each ``receive``."""
        return self._outbox.release()

    def disconnect(self, session: Session) -> list[Out]:
        """The connection closed: run client_disconnected and forget the session; its pending frames
        are dropped. Next: send what it returns (to the others)."""
        if session.closed:
            return []
        session.closed = True
        self.sessions.pop(session.connection_id, None)
        self._queries.cancel(session)
        if session.identity_bucket is not None:
            self.identity_buckets.release(session.identity_bucket)
            session.identity_bucket = None
        for subset in session.subs.values():
            if subset.until is None:
                self.subscriptions.release(subset.qids)
            self.subscriptions.unwatch(session, subset.qids)
        session.subs.clear()
        self._stop_following(session)
        if not session.hooks:
            return []
        result = self.db.disconnect(session.connection_id, wait=False)
        return self._outbox.release() if result.offset <= self._outbox.durable else []

    def detach(self, session: Session) -> None:
        """Forget a session without running its disconnect hook: next, ``adopt`` it on another host."""
        session.closed = True
        self.sessions.pop(session.connection_id, None)
        self._queries.cancel(session)
        self._stop_following(session)

    # -- requests -----------------------------------------------------------------------
    def receive(self, session: Session, frame: bytes) -> list[Out]:
        """Handle one client frame; returns the frames that may go out now: send them, then those
        of ``release``. If the session's ``close_reason`` is set now, close the connection (1008)."""
        try:
            msg = decode_client(frame)
        except ProtocolError as exc:
            rid = _peek_id(frame)
            return [(session, encode(ErrorMessage(rid, str(exc))))]
        wait = self._rate_wait(session)
        if wait:
            text = (f"rate limited: too many requests from this {'connection' if wait[1] else 'identity'};"
                    f" retry in {wait[0]:.2f} s")
            if isinstance(msg, CallReducer):
                return [(session, encode(ReducerResult(msg.id, "refused", text, -1, 0, wait[0])))]
            return [(session, encode(ErrorMessage(msg.id, text, wait[0])))]
        if session.in_flight + len(session.backlog) >= self.limits.max_in_flight:
            text = f"too many requests in flight (limit {self.limits.max_in_flight}); wait for replies"
            if isinstance(msg, CallReducer):
                return [(session, encode(ReducerResult(msg.id, "refused", text, -1, 0)))]
            return [(session, encode(ErrorMessage(msg.id, text)))]
        if session.job is not None or session.backlog:
            session.backlog.append((msg, len(frame)))
            return []
        return self._handle(session, msg, len(frame))

    def _handle(self, session: Session, msg: ClientMessage, frame_size: int) -> list[Out]:
        if isinstance(msg, CallReducer):
            return self._call(session, msg, frame_size)
        if isinstance(msg, Subscribe):
            return self._queries.subscribe(session, msg)
        if isinstance(msg, Unsubscribe):
            return self._queries.unsubscribe(session, msg)
        if isinstance(msg, OneOffQuery):
            return self._sql(session, msg)
        if isinstance(msg, Logs):
            return self._logs(session, msg)
        if self.on_admin is None:
            return [(session, encode(ErrorMessage(msg.id, "publish and delete are not available here")))]
        self.on_admin(session, msg)
        return []

    def _rate_wait(self, session: Session) -> tuple[float, bool] | None:
        """None if ``session`` may make a request now, else (seconds to wait, whether its connection's
        own rate rather than its identity's was the limit); a session that keeps sending while
        refused gets its ``close_reason``."""
        now = self.clock()
        if now < session.blocked_until:
            wait, own = session.blocked_until - now, session.blocked_by_connection
        else:
            assert session.bucket is not None and session.identity_bucket is not None
            wait, own = session.bucket.take(now), True
            if not wait:
                wait, own = session.identity_bucket.take(now), False
            if not wait:
                session.refused_in_a_row = 0
                return None
            wait = max(wait, RATE_PENALTY_SECONDS)
            session.blocked_until, session.blocked_by_connection = now + wait, own
        session.refused_in_a_row += 1
        if session.refused_in_a_row >= self.limits.max_refused_in_a_row and session.close_reason is None:
            session.close_reason = "rate limit: the connection went on sending while refused"
        return wait, own

    def _logs(self, session: Session, msg: Logs) -> list[Out]:
        refused = refusal(session.identity, Action.READ_LOGS, self.name, self.owner)
        if refused is not None:
            return [(session, encode(ErrorMessage(msg.id, refused)))]
        lines = self.db.logs.lines(msg.n, msg.level)
        out: list[Out] = [(session, encode(LogLines(msg.id, lines)))]
        if msg.follow:
            self._stop_following(session)
            floor = LEVEL_RANK[msg.level.upper()] if msg.level else 0

            def follow(record: LogRecord) -> None:
                if LEVEL_RANK[record.level] >= floor and not session.closed:
                    frame = encode(LogLines(msg.id, record.format().split("\n")))
                    self._outbox.hold(PendingMsg(self.db.last_offset, session, frame, False))

            session.log_follow = (msg.id, follow)
            self.db.logs.add_listener(follow)
        return out

    def _stop_following(self, session: Session) -> None:
        if session.log_follow is not None:
            self.db.logs.remove_listener(session.log_follow[1])
            session.log_follow = None

    def _call(self, session: Session, msg: CallReducer, frame_size: int) -> list[Out]:
        def refuse(text: str) -> list[Out]:
            return [(session, encode_result(msg.id, "refused", text, -1, 0))]

        try:
            rdef = self.db.reducer(msg.reducer)
        except CallError as exc:
            unknown = msg.reducer not in self.db.reducers
            return refuse(self.db.no_such_reducer_message(msg.reducer, self.name) if unknown else str(exc))
        # The arguments are part of the frame: only a frame over the limit needs them measured.
        size = len(msgpack.packb(msg.args, use_bin_type=True)) if frame_size > self.limits.max_args_bytes else 0
        if size > self.limits.max_args_bytes:
            return refuse(f"arguments are {size} bytes; the limit is {self.limits.max_args_bytes}")
        try:  # the database checks (and converts) the arguments
            result = self.db.submit(rdef.name, *msg.args, sender=session.identity,
                                    connection_id=session.connection_id if session.hooks else None, wire=True)
        except (CallError, StorageError) as exc:
            return refuse(str(exc))
        session.in_flight += 1
        return self._outbox.send(PendingMsg(result.offset, session, _result_frame(msg.id, result), True))

    def _sql(self, session: Session, msg: OneOffQuery) -> list[Out]:
        if self.db.write_failure is not None and self.db.revert_pending:
            # A read after a failure sees what is on disk: everything waiting is answered, the
            # evaluations under way are stopped, then the database reverts (the adapter's own call
            # of on_storage_failure, when it comes, finds nothing left to do).
            return self.on_storage_failure() + self._sql(session, msg)
        try:
            prepared = self.db.prepare_select(msg.query, sender=session.identity)
            if prepared is None:  # DML (the owner's): one transaction, run now
                res = self.db.sql(msg.query, sender=session.identity, wait=False)
        except (DbError, ValueError) as exc:
            return [(session, encode(OneOffResult(msg.id, [], [], [], str(exc))))]
        if prepared is None:
            assert res.tx is not None
            session.in_flight += 1
            reply = OneOffResult(msg.id, [], [], [], None, res.affected)
            return self._outbox.send(PendingMsg(res.tx.offset, session, encode(reply), True))
        return self._queries.select(session, msg, *prepared)

    # -- evaluations in slices ------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Evaluations are under way: call ``work`` again soon (the network adapter, once per loop turn)."""
        return self._queries.busy

    def work(self, seconds: float = SLICE_SECONDS) -> list[Out]:
        """Go on with the evaluations under way, taking turns, for about ``seconds``; returns what
        may go out now: send it. Call again while ``busy``, letting other clients be served in between."""
        return self._queries.work(seconds)

    def _drain(self, session: Session) -> list[Out]:
        """Handle the session's queued requests in order, until one needs an evaluation that goes on."""
        out: list[Out] = []
        while session.backlog and session.job is None and not session.waiting and not session.closed:
            msg, size = session.backlog.popleft()
            out += self._handle(session, msg, size)
        return out

    # -- commits and durability -------------------------------------------------------------
    def _on_commit(self, tx: TxData) -> None:
        self._queries.apply(tx)
        deltas = self.subscriptions.evaluate(tx)
        if deltas:
            self._queries.catch_up(deltas)
            self._outbox.commit(tx, deltas)

    def on_durable(self, offset: int) -> list[Out]:
        """The log is durable up to ``offset``: release everything waiting on it, in order. Send
        what it returns; call on each of the log's durable reports (on the database's thread)."""
        return self._outbox.on_durable(offset)

    def on_storage_failure(self) -> list[Out]:
        """The commit log failed for good (``db.write_failure`` says why): call on the database's thread.

        What waits for an offset that will never be durable is answered with an error instead: a
        call (``internal_error``), a query (``sql_result`` with ``error``), a subscribe
        (``subscription_error``; the subscription is dropped), an unsubscribe (``error``); other
        messages go out as they are, and the updates of transactions nobody was told of are dropped.
        Then the database reverts to what is on disk and serves reads from there. Send what it returns.
        """
        out = self.on_durable(self.db.durable_offset)
        cause = f"the database {self.db.write_failure}"
        durable = self._outbox.durable
        for item in self._outbox.abandon():
            if item.session.closed:
                continue
            session, frame = item.session, item.frame
            if item.counts_in_flight:
                session.in_flight -= 1
            msg = decode_server(bytes(frame)) if item.offset > durable else None  # else: a read after a revert
            if isinstance(msg, ReducerResult):
                text = f"{cause}; this call was not saved and changed nothing"
                frame = encode_result(msg.id, "internal_error", text, -1, 0)
            elif isinstance(msg, OneOffResult):
                text = f"{cause}; this query was cancelled and changed nothing, send it again to read what is saved"
                frame = encode(OneOffResult(msg.id, [], [], [], text))
            elif isinstance(msg, (SubscribeApplied, UnsubscribeApplied)):
                subset = session.subs.pop(msg.id if isinstance(msg, SubscribeApplied) else msg.subscription, None)
                if subset is not None:
                    if subset.until is None:
                        self.subscriptions.release(subset.qids)
                    self.subscriptions.unwatch(session, subset.qids)
                    session.signature = None
                text = f"{cause}; this request was cancelled and the subscription dropped"
                frame = encode(SubscriptionError(msg.id, text) if isinstance(msg, SubscribeApplied)
                               else ErrorMessage(msg.id, text))
            out.append((session, frame))
        out += self._queries.cancel_all(f"{cause}; this request was cancelled, send it again to read what is saved")
        self.db.revert_undurable()
        out += self._outbox.release()  # e.g. the module log's line about the revert, to followers
        for session in list(self.sessions.values()):
            out += self._drain(session)
        return out


def _result_frame(request_id: int, r: CallResult) -> bytes:
    """The encoded ``ReducerResult`` of a call."""
    if r.ok:
        status = "no_changes" if r.tx is not None and r.tx.is_empty else "committed"
        return encode_result(request_id, status, None, r.offset, int(r.tx.timestamp) if r.tx else 0)
    return encode_result(request_id, r.status, r.error, r.offset, 0)


def _peek_id(frame: bytes) -> int | None:
    try:
        m = msgpack.unpackb(frame, raw=False)
    except Exception:
        return None
    rid = m.get("id") if isinstance(m, dict) else None
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None
