"""The reads of one database's sessions: subscribe, unsubscribe and one-off SELECTs, in slices.

A read may take long (a million rows): it runs as a job (``evaluation``) a slice at a time, at
most ``Limits.max_running_queries`` at once, taking turns so that nobody waits behind it longer
than a slice. A finished job's answer goes to the outbox, behind the offset its view read. The
host hands each read request to ``subscribe``, ``unsubscribe`` or ``select``, calls ``work``
while ``busy``, and feeds every commit to ``apply`` (and its deltas to ``catch_up``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from .database import Database
from .evaluation import CheckJob, Job, QueryInput, RowsJob, SelectJob, SubscribeJob, UnsubscribeJob
from .outbox import Outbox, PendingMsg
from .protocol import (
    ClientMessage,
    ErrorMessage,
    OneOffQuery,
    OneOffResult,
    Subscribe,
    SubscriptionError,
    Unsubscribe,
    encode,
)
from .readview import ReadView
from .session import Limits, Out, Session
from .sql import check_subscription
from .sql.physical import PhysicalPlan
from .sql.plan import SelectPlan
from .subscription import Plan, QueryDelta, Subscription, Subscriptions
from .tx import TxData
from .types import Identity

# A query's first slice runs as soon as it arrives, if no other read is under way; most end within
# it. Longer ones go on in ``work``, at most SLICE_SECONDS at a time, so that no other client waits
# longer than that. A read that starts while others are under way waits for their next slice, and one
# that starts inside a slice (the next request of a session whose read just ended) shares it: the
# slices never stack up in one turn of the loop.
FIRST_SLICE_SECONDS = 0.00025
SLICE_SECONDS = 0.00025

CHECKED_PLANS = 256  # subscription queries whose checked plan is remembered


class Queries:
    """The evaluations under way, or waiting for a slot, of one database's sessions."""

    def __init__(self, db: Database, limits: Limits, subscriptions: Subscriptions[Session],
                 outbox: Outbox[Session], drain: Callable[[Session], list[Out]]) -> None:
        """``drain(session)`` handles a session's queued requests once its read is answered."""
        self.db = db
        self.limits = limits
        self.subscriptions = subscriptions
        self._outbox = outbox
        self._drain = drain
        self._running: collections.deque[Session] = collections.deque()  # sessions whose job is under way
        self._waiting: collections.deque[Session] = collections.deque()  # sessions whose job waits for a slot
        self._tdefs = {name: t.tdef for name, t in db.tables.items() if not t.tdef.system}
        self._checked: dict[tuple[str, bool, bytes | None], Plan] = {}  # subscription plans by query text
        self._slice_end: float | None = None  # the deadline of the slice under way, if one is

    # -- requests ---------------------------------------------------------------------------
    def subscribe(self, session: Session, msg: Subscribe) -> list[Out]:
        """Check a subscribe's queries and read their rows, starting now; returns what may go out
        now (its answer, if its first slice finished it). Send it; if ``busy``, call ``work``."""
        most = self.limits.max_queries_per_subscribe
        if len(msg.queries) > most:
            return [(session, encode(SubscriptionError(
                msg.id, f"too many queries in one subscribe ({len(msg.queries)}; limit {most})")))]
        if len(session.subs) >= self.limits.max_subscriptions:
            return [(session, encode(SubscriptionError(
                msg.id, f"too many live subscriptions (limit {self.limits.max_subscriptions}); unsubscribe first")))]
        if msg.id in session.subs:
            return [(session, encode(SubscriptionError(msg.id, f"request id {msg.id} is already a live subscription")))]
        is_owner = session.identity == self.db.owner
        identity = session.identity
        known = self._checked
        plans = [known.get(self._check_key(text, is_owner, identity)) for text in msg.queries]
        if not self._slot_free():
            return self._wait(session, msg)
        if None in plans:
            # Checks to do (an attacker sends 64 new queries at a time): in slices, as rows are read.
            job: Job = CheckJob(list(msg.queries), lambda text: self._check_subscription(text, is_owner, identity),
                                ReadView(self.db.last_offset), self.limits.budget)
            return self._begin(session, msg, job)
        checked = [(text, plan) for text, plan in zip(msg.queries, plans, strict=True) if plan is not None]
        return self._begin(session, msg, self._subscribe_job(msg.id, checked, identity))

    def unsubscribe(self, session: Session, msg: Unsubscribe) -> list[Out]:
        """End a subscription now: its rows to drop are read, then sent; as ``subscribe`` next."""
        subset = session.subs.get(msg.subscription)
        if subset is None or subset.until is not None:
            return [(session, encode(ErrorMessage(msg.id, f"no live subscription with id {msg.subscription}")))]
        if not self._slot_free():
            return self._wait(session, msg)
        now = self.db.last_offset
        subset.until = now
        session.signature = None
        job = UnsubscribeJob(msg.id, msg.subscription, self._inputs(subset.qids), subset.qids,
                             self.subscriptions.engine, self.db.codecs, ReadView(now), self.limits.budget)
        self.subscriptions.release(subset.qids)
        return self._begin(session, msg, job)

    def select(self, session: Session, msg: OneOffQuery, plan: SelectPlan, pp: PhysicalPlan) -> list[Out]:
        """Run a checked one-off SELECT; as ``subscribe`` next."""
        if not self._slot_free():
            return self._wait(session, msg)
        job = SelectJob(msg.id, plan, pp, self.db.tables, ReadView(self.db.last_offset), self.limits.budget)
        return self._begin(session, msg, job)

    def _subscribe_job(self, request_id: int, plans: list[tuple[str, Plan]], identity: Identity) -> SubscribeJob:
        """Watch the checked queries and read their rows from now."""
        order = [self.subscriptions.acquire(text, plan, identity) for text, plan in plans]
        return SubscribeJob(request_id, None, self._inputs(order), order, self.subscriptions.engine, self.db.codecs,
                            ReadView(self.db.last_offset), self.limits.budget)

    @staticmethod
    def _check_key(text: str, is_owner: bool, sender: Identity) -> tuple[str, bool, bytes | None]:
        """What a check depends on."""
        return (text, is_owner, bytes(sender) if ":sender" in text else None)

    def _check_subscription(self, text: str, is_owner: bool, sender: Identity) -> Plan:
        """``check_subscription``, remembered: clients mostly send the same few queries. Only the
        latest 256 are kept: each plan is about 15 objects that every full collection walks, and
        an attacker sends new queries."""
        known = self._checked
        key = self._check_key(text, is_owner, sender)
        plan = known.get(key)
        if plan is None:
            plan = check_subscription(text, self._tdefs, is_owner, sender)
            if len(known) >= CHECKED_PLANS:
                del known[next(iter(known))]
            known[key] = plan
        return plan

    def _inputs(self, qids: list[int]) -> list[QueryInput]:
        """The distinct queries of ``qids`` (a request's, repeats included), each with its count."""
        inputs: dict[int, QueryInput] = {}
        for qid in qids:
            q = inputs.get(qid)
            if q is None:
                inputs[qid] = QueryInput(qid, self.subscriptions.plan(qid))
            else:
                q.times += 1
        return list(inputs.values())

    # -- slices -------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Evaluations are under way: call ``work`` again soon (the network adapter, once per loop turn)."""
        return bool(self._running)

    def work(self, seconds: float = SLICE_SECONDS) -> list[Out]:
        """Go on with the evaluations under way, taking turns, for about ``seconds``; returns what
        may go out now: send it. Call again while ``busy``, letting other clients be served in between."""
        out: list[Out] = []
        deadline = self._slice_end = time.perf_counter() + seconds
        running = self._running
        try:
            while running:
                session = running[0]
                running.rotate(-1)
                out += self._step(session, deadline)
                if time.perf_counter() >= deadline:
                    break
        finally:
            self._slice_end = None
        return out

    def _slot_free(self) -> bool:
        return len(self._running) < self.limits.max_running_queries

    def _wait(self, session: Session, msg: ClientMessage) -> list[Out]:
        """No evaluation slot is free: ``msg`` is handled again when one is, before the session's others."""
        session.backlog.appendleft((msg, 0))
        session.waiting = True
        self._waiting.append(session)
        return []

    def _begin(self, session: Session, msg: ClientMessage, job: Job) -> list[Out]:
        session.job, session.request = job, msg
        alone = not self._running
        self._running.append(session)
        if self._slice_end is not None:
            return self._step(session, self._slice_end)
        if not alone:
            return []  # its first slice is in the next ``work``, in turn with the others
        deadline = self._slice_end = time.perf_counter() + FIRST_SLICE_SECONDS
        try:
            return self._step(session, deadline)
        finally:
            self._slice_end = None

    def _step(self, session: Session, deadline: float) -> list[Out]:
        """One slice of the session's job; once it is done, its answer and the session's next requests."""
        job = session.job
        assert job is not None
        if not job.run(deadline):
            return []
        if isinstance(job, CheckJob) and job.error is None:
            job.close()
            assert isinstance(session.request, Subscribe)
            session.job = self._subscribe_job(session.request.id, job.plans, session.identity)
            return self._step(session, deadline)
        self._running.remove(session)
        job.close()
        request = session.request
        session.job = session.request = None
        out = self._answer(session, job, request) + self._drain(session)
        while self._waiting and self._slot_free():
            nxt = self._waiting.popleft()
            nxt.waiting = False
            out += self._drain(nxt)
        return out

    def _answer(self, session: Session, job: Job, request: ClientMessage | None) -> list[Out]:
        if isinstance(job, SelectJob):
            if job.frame is None:
                return [(session, encode(OneOffResult(job.request_id, [], [], [], job.error)))]
            session.in_flight += 1
            return self._outbox.send(PendingMsg(job.view.offset, session, job.frame, True))
        if isinstance(job, CheckJob):
            assert isinstance(request, Subscribe) and job.error is not None
            return [(session, encode(SubscriptionError(request.id, job.error)))]
        assert isinstance(job, RowsJob)
        if isinstance(job, SubscribeJob):
            if job.frame is None:
                self.subscriptions.release(job.order)
                return [(session, encode(SubscriptionError(job.request_id, f"{job.error}; nothing was subscribed")))]
            # Live from now: the changes committed while it ran are in its rows already (catch_up).
            since = self.db.last_offset
            assert isinstance(request, Subscribe)
            subset = Subscription(job.request_id, list(job.order), list(request.queries), since)
            session.subs[job.request_id] = subset
            self.subscriptions.watch(session, subset.qids)
            session.signature = None
            session.in_flight += 1
            return self._outbox.send(PendingMsg(since, session, job.frame, True, True))
        if job.frame is None:
            return [(session, encode(ErrorMessage(
                job.request_id, f"unsubscribed, but the rows to drop were not sent: {job.error}")))]
        session.in_flight += 1
        return self._outbox.send(PendingMsg(job.view.offset, session, job.frame, True, True))

    # -- commits, and ends ---------------------------------------------------------------------
    def apply(self, tx: TxData) -> None:
        """A transaction committed: the reads under way go on as of their own offset."""
        for session in self._running:
            assert session.job is not None
            session.job.view.apply(tx)

    def catch_up(self, deltas: dict[int, QueryDelta]) -> None:
        """The same transaction's deltas: subscribes still reading fold them into their rows."""
        for session in self._running:
            assert session.job is not None
            if isinstance(session.job, SubscribeJob):
                session.job.catch_up(deltas)

    def cancel(self, session: Session) -> None:
        """Drop the session's read in progress (and its turn in the queue), unanswered."""
        job = session.job
        if job is not None:
            self._running.remove(session)
            job.close()
            if isinstance(job, SubscribeJob):
                self.subscriptions.release(job.order)
            session.job = None
        if session.waiting:
            self._waiting.remove(session)
            session.waiting = False

    def cancel_all(self, text: str) -> list[Out]:
        """Answer every evaluation under way, or waiting for its turn, with ``text`` and drop it
        (the tables are about to change under their views). Send what it returns."""
        out: list[Out] = []
        for session in list(self._running):
            job, request = session.job, session.request
            self.cancel(session)
            if isinstance(job, SelectJob):
                out.append((session, encode(OneOffResult(job.request_id, [], [], [], text))))
            elif isinstance(job, (SubscribeJob, CheckJob)):
                assert isinstance(request, Subscribe)
                out.append((session, encode(SubscriptionError(request.id, text))))
            elif request is not None:
                out.append((session, encode(ErrorMessage(getattr(request, "id", None), text))))
            session.request = None
        for session in list(self._waiting):
            self.cancel(session)
        return out
