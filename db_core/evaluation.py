"""Queries evaluated in slices, within a budget: one-off SELECTs and subscription rows.

A client's query may read a million rows; the host serves every other client between two of its
slices. A job reads through a ``ReadView`` taken when it starts (so its answer is the state of
one offset however many transactions commit meanwhile), counts what it reads and returns, and
encodes its reply as it goes, a chunk at a time, into packed bytes:

    job = SelectJob(request_id, plan, pp, tables, ReadView(db.last_offset), budget)
    while not job.run(time.perf_counter() + 0.002): ...   # serve others between slices
    job.frame or job.error                                 # the reply, or why there is none

The caller feeds every transaction committed meanwhile to ``job.view.apply`` (and, for a
subscribe, its deltas to ``SubscribeJob.catch_up``), and drops a job whose client went away.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from .codec import TableCodec
from .errors import DbError
from .protocol import SqlResultFrame, encode_query_rows_packed, pack, pack_items
from .readview import ReadView
from .schema import ColType, _identity
from .sql.execute import CHUNK, Meter, select_chunks, whole_table
from .sql.physical import PhysicalPlan
from .sql.plan import SelectPlan
from .subscription import Plan, QueryDelta, SubscriptionEngine
from .table import Table


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    """What one query (a one-off SELECT, or all the queries of one subscribe) may cost."""

    rows_scanned: int = 1_000_000     # rows read from tables, index hits and join probes included
    rows_returned: int = 100_000      # rows in the reply
    seconds: float = 2.0              # evaluation time, summed over its slices
    reply_bytes: int = 8 << 20        # the encoded reply


class BudgetExceeded(DbError):
    """A query went past its budget; the text says which part."""


class Job:
    """One request being evaluated. ``run`` until it returns True; then ``frame`` or ``error`` is set."""

    def __init__(self, view: ReadView, budget: Budget) -> None:
        self.view = view
        self.budget = budget
        self.meter = Meter()
        self.returned = 0
        self.size = 0
        self.spent = 0.0
        self.frame: bytes | bytearray | None = None
        self._slice_from = 0
        self.error: str | None = None

    def run(self, deadline: float) -> bool:
        """Work until ``deadline`` (``time.perf_counter()``) or the end; True once finished. A slice
        reads at least CHUNK rows before it stops, so a query that reads fewer ends in its first."""
        start = time.perf_counter()
        self._slice_from = self.meter.scanned + self.meter.copied
        try:
            done = self._work(deadline)
        except BudgetExceeded as exc:
            self.error, done = str(exc), True
        self.spent += time.perf_counter() - start
        if not done and self.spent > self.budget.seconds:
            self.error, done = f"query exceeded its budget of {self.budget.seconds:g} s", True
        return done

    def close(self) -> None:
        """Finished or dropped: stop following the tables' changes."""
        self.view.close()

    def _work(self, deadline: float) -> bool:
        raise NotImplementedError

    def _pause(self, deadline: float) -> bool:
        """Whether the slice is over (checked between chunks)."""
        meter = self.meter
        return meter.scanned + meter.copied - self._slice_from >= CHUNK and time.perf_counter() >= deadline

    def _foresee(self, rows: int) -> None:
        """Refuse now a query whose answer is known, before a row is read, to hold ``rows`` rows
        (a whole table, unfiltered): an attacker's repeated full scans then cost nothing."""
        if rows > self.budget.rows_returned:
            raise BudgetExceeded(f"query exceeded its budget of {self.budget.rows_returned} rows returned")

    def _check(self, added_rows: int, added_bytes: int) -> None:
        budget = self.budget
        self.returned += added_rows
        self.size += added_bytes
        if self.meter.scanned > budget.rows_scanned:
            raise BudgetExceeded(f"query exceeded its budget of {budget.rows_scanned} rows scanned")
        if self.returned > budget.rows_returned:
            raise BudgetExceeded(f"query exceeded its budget of {budget.rows_returned} rows returned")
        if self.size > budget.reply_bytes:
            raise BudgetExceeded(f"reply exceeded its budget of {budget.reply_bytes} bytes")


def _converter(types: list[ColType]) -> Callable[[list[tuple[Any, ...]]], list[Any]]:
    """Result rows (tuples of stored values) to wire rows."""
    convs = [t.to_wire for t in types]
    if all(c is _identity for c in convs):
        return lambda rows: rows
    return lambda rows: [[c(v) for c, v in zip(convs, row, strict=True)] for row in rows]


class SelectJob(Job):
    """A one-off SELECT; ``frame`` is its ``sql_result``."""

    def __init__(self, request_id: int, plan: SelectPlan, pp: PhysicalPlan, tables: dict[str, Table],
                 view: ReadView, budget: Budget) -> None:
        super().__init__(view, budget)
        self.request_id = request_id
        self.plan = plan
        self._chunks = select_chunks(plan, pp, tables, view, self.meter)
        self._to_wire = _converter(list(plan.types))
        if whole_table(plan, pp) and not plan.count:
            whole = view.count(tables[plan.sources[0].table])
            self._known = whole if plan.limit is None else min(whole, plan.limit)
        else:
            self._known = 0
        self._answer = SqlResultFrame(request_id, list(plan.columns), [t.describe() for t in plan.types])

    def _work(self, deadline: float) -> bool:
        self._foresee(self._known)
        for chunk in self._chunks:
            if chunk:
                body = pack_items(self._to_wire(chunk))
                self._check(len(chunk), len(body))
                self._answer.add(body, len(chunk))
            else:
                self._check(0, 0)
            if self._pause(deadline):
                return False
        self.frame = self._answer.finish()
        return True


class CheckJob(Job):
    """The checks of a subscribe's queries (a check is ~65 us; a subscribe may list 64), before its
    rows are read; ``plans`` are the checked ones, in order. ``check`` raises ``DbError`` for a bad
    query: ``error`` then names it. Its view is unused: rows are read by the job that follows."""

    AT_LEAST = 8  # checked before a slice may end: a usual subscribe is answered in its first

    def __init__(self, texts: list[str], check: Callable[[str], Plan], view: ReadView, budget: Budget) -> None:
        super().__init__(view, budget)
        self.plans: list[tuple[str, Plan]] = []
        self._texts = texts
        self._check_one = check

    def _work(self, deadline: float) -> bool:
        texts, plans = self._texts, self.plans
        start = len(plans)
        while len(plans) < len(texts):
            text = texts[len(plans)]
            try:
                plans.append((text, self._check_one(text)))
            except DbError as exc:
                self.error = f"{exc} in query: {text}"
                return True
            if len(plans) - start >= self.AT_LEAST and time.perf_counter() >= deadline:
                return len(plans) == len(texts)
        return True


@dataclasses.dataclass(slots=True)
class QueryInput:
    """One query of a subscribe or unsubscribe: its id, its plan, how often the request lists it."""

    qid: int
    plan: Plan
    times: int = 1


class RowsJob(Job):
    """The rows of a subscribe's (or an unsubscribe's) queries; ``frame`` is its answer.

    Each distinct query is evaluated once and its rows are sent as many times as the request
    lists it (``QueryInput.times``). Rows are packed one by one, so that a subscribe can fold the
    changes committed while it ran into them (``catch_up``) before it answers.
    """

    def __init__(self, kind: str, request_id: int, subscription: int | None, queries: list[QueryInput],
                 order: list[int], engine: SubscriptionEngine, codecs: dict[str, TableCodec],
                 view: ReadView, budget: Budget) -> None:
        super().__init__(view, budget)
        self.kind = kind
        self.request_id = request_id
        self.subscription = subscription
        self.queries = queries
        self.order = order            # the request's query ids, in its order (repeats included)
        self._engine = engine
        self._codecs = codecs
        self._rows: dict[int, list[bytes]] = {}
        self._todo: Iterator[tuple[QueryInput, list[Any]]] = self._evaluate()

    def _evaluate(self) -> Iterator[tuple[QueryInput, list[Any]]]:
        tables = self._engine.tables
        self._foresee(sum(self.view.count(tables[q.plan.table]) * q.times for q in self.queries
                          if q.plan.whole_table))
        for q in self.queries:
            self._rows[q.qid] = []
            for chunk in self._engine.initial_chunks(q.plan, self.view, self.meter):
                yield q, chunk

    def _work(self, deadline: float) -> bool:
        for q, chunk in self._todo:
            if chunk:
                encode = self._codecs[q.plan.table].encode
                packed = [pack(encode(row)) for row in chunk]
                self._rows[q.qid] += packed
                self._check(len(packed) * q.times, sum(map(len, packed)) * q.times)
            else:
                self._check(0, 0)
            if self._pause(deadline):
                return False
        self._finish()
        return True

    def catch_up(self, deltas: dict[int, QueryDelta]) -> None:
        """Fold one transaction committed while this job ran into the rows already read."""

    def _finish(self) -> None:
        tables = {q.qid: q.plan.table for q in self.queries}
        answer = [(qid, tables[qid], len(self._rows[qid]), b"".join(self._rows[qid])) for qid in self.order]
        self.frame = encode_query_rows_packed(self.kind, self.request_id, self.subscription, answer)


class SubscribeJob(RowsJob):
    """A subscribe's initial rows, as of when it finishes: the changes committed since its view's
    offset are folded in (``catch_up``), so the subscription can go live at that later offset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("subscribed", *args, **kwargs)
        self._pending: list[tuple[int, QueryDelta]] = []

    def catch_up(self, deltas: dict[int, QueryDelta]) -> None:
        for q in self.queries:
            delta = deltas.get(q.qid)
            if delta is not None:
                self._pending.append((q.qid, delta))

    def _finish(self) -> None:
        by_query: dict[int, Counter[bytes]] = {}
        for qid, delta in self._pending:
            encode = self._codecs[delta.table].encode
            net = by_query.setdefault(qid, Counter())
            for row in delta.deletes:
                net[pack(encode(row))] -= 1
            for row in delta.inserts:
                net[pack(encode(row))] += 1
        for qid, net in by_query.items():
            kept: list[bytes] = []
            for packed in self._rows[qid]:
                if net.get(packed, 0) < 0:
                    net[packed] += 1
                else:
                    kept.append(packed)
            for packed, n in net.items():
                kept.extend([packed] * n if n > 0 else ())
            self._rows[qid] = kept
        super()._finish()
        self._pending.clear()


class UnsubscribeJob(RowsJob):
    """The rows an unsubscribe drops: those of its view's offset, after which it takes effect."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("unsubscribed", *args, **kwargs)
