"""Incremental subscriptions: registered queries, who watches them, and per-query deltas from one TxData.

``Subscriptions`` is a database's one registry: each distinct query is registered
once however many clients want it (one count of its users), and is evaluated
once per transaction; it also knows which clients watch each query, so delivery
considers only those. ``SubscriptionEngine`` below it indexes the queries. Deltas come from the transaction's own
inserts and deletes (plus index lookups for joins), never from rescanning a
table. Queries with an equality on a column (``WHERE sender = 0x…``) are kept
in a hash index by that constant, so a changed row is tested only against
the queries it can match: a thousand such queries cost one dict lookup per
changed row.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

from .readview import LiveView
from .sql.execute import CHUNK, LIVE, Meter, chunks
from .table import Table
from .tx import TableUpdate, TxData
from .types import Identity

W = TypeVar("W", bound=Hashable)  # a watcher: the host's session


class Plan(Protocol):
    """What the SQL checker hands over for a subscription query (see ``sql.check``)."""

    table: str
    predicate: Callable[[Any], bool] | None
    equalities: list[tuple[str, Any]]
    join: tuple[str, str, str] | None   # (other table, own column, other column)
    other_predicate: Callable[[Any], bool] | None
    pair_predicate: Callable[[Any, Any], bool] | None

    @property
    def whole_table(self) -> bool:
        """Every row of ``table``: no condition, no join."""


@dataclasses.dataclass(slots=True)
class QueryDelta:
    """What one transaction changed in one query's result (bag semantics)."""

    table: str
    inserts: list[Any]
    deletes: list[Any]
    whole: TableUpdate | None = None  # set when the delta is the whole update of the table (and shares its lists)


class Query:
    """One distinct registered query."""

    __slots__ = ("key", "plan", "refs", "residual", "eq_column")

    def __init__(self, key: Any, plan: Plan) -> None:
        self.key = key
        self.plan = plan
        self.refs = 0
        self.residual = plan.predicate
        self.eq_column: str | None = None


class SubscriptionEngine:
    """Registered queries over ``tables``; ``evaluate(tx)`` gives each affected query its delta."""

    def __init__(self, tables: dict[str, Table]) -> None:
        self._tables = tables
        self._queries: dict[Any, Query] = {}
        self._scan: dict[str, list[Query]] = {}                      # table -> queries tested per row
        self._eq: dict[str, dict[str, dict[Any, list[Query]]]] = {}  # table -> column -> value -> queries
        self._joins: dict[str, list[Query]] = {}                     # either table -> join queries

    def __len__(self) -> int:
        return len(self._queries)

    @property
    def tables(self) -> dict[str, Table]:
        """The tables the queries read."""
        return self._tables

    def get(self, key: Any) -> Query | None:
        return self._queries.get(key)

    # -- registration ----------------------------------------------------------------
    def add(self, key: Any, plan: Plan) -> Query:
        """Register a query (or count one more user of it); ``key`` identifies equal queries."""
        query = self._queries.get(key)
        if query is None:
            query = self._queries[key] = Query(key, plan)
            self._index(query)
        query.refs += 1
        return query

    def remove(self, key: Any) -> bool:
        """Drop one user of a query; the query goes when its last user does. True if it went."""
        query = self._queries.get(key)
        if query is None:
            return False
        query.refs -= 1
        if query.refs > 0:
            return False
        del self._queries[key]
        plan = query.plan
        if plan.join is not None:
            for name in (plan.table, plan.join[0]):
                self._joins[name].remove(query)
        elif query.eq_column is not None:
            value = dict(plan.equalities)[query.eq_column]
            bucket = self._eq[plan.table][query.eq_column]
            bucket[value].remove(query)
            if not bucket[value]:
                del bucket[value]
        else:
            self._scan[plan.table].remove(query)
        return True

    def _index(self, query: Query) -> None:
        plan = query.plan
        if plan.join is not None:
            self._joins.setdefault(plan.table, []).append(query)
            if plan.join[0] != plan.table:
                self._joins.setdefault(plan.join[0], []).append(query)
            return
        if plan.equalities:
            column, value = plan.equalities[0]
            query.eq_column = column
            self._eq.setdefault(plan.table, {}).setdefault(column, {}).setdefault(value, []).append(query)
        else:
            self._scan.setdefault(plan.table, []).append(query)

    # -- initial rows ------------------------------------------------------------------
    def initial_rows(self, plan: Plan) -> list[Any]:
        """The query's rows now (call between transactions)."""
        return [r for chunk in self.initial_chunks(plan, LIVE, Meter()) for r in chunk]

    def initial_chunks(self, plan: Plan, view: LiveView, meter: Meter) -> Iterator[list[Any]]:
        """The query's rows as ``view`` reads them, a list at a time (lists may be empty: a pause
        point, see ``sql.execute.select_chunks``); ``meter`` counts the rows read."""
        table = self._tables[plan.table]
        pred = plan.predicate
        rows: Iterable[Any] | None = None
        if plan.join is None:
            for column, value in plan.equalities:
                index = table.index_for(column)
                if index is not None:
                    rows = view.find(table, index, value)
                    break
        source = view.rows(table) if rows is None else rows
        if plan.join is None:
            for chunk in chunks(source, view, meter):
                yield list(chunk) if pred is None else list(filter(pred, chunk))
            return
        other_name, own_col, other_col = plan.join
        other_table = self._tables[other_name]
        other_index = other_table.index_for(other_col)
        assert other_index is not None, "the checker only admits joins on indexed columns"
        find = view.finder(other_table, other_index)
        get = attrgetter(own_col)
        opred, ppred = plan.other_predicate, plan.pair_predicate
        for chunk in chunks(source, view, meter):
            out: list[Any] = []
            for row in chunk:
                if pred is not None and not pred(row):
                    continue
                for other in find(get(row)):
                    meter.scanned += 1
                    if (opred is None or opred(other)) and (ppred is None or ppred(row, other)):
                        out.append(row)
                if view.sliced and len(out) >= CHUNK:
                    yield out
                    out = []
            yield out

    # -- incremental evaluation -------------------------------------------------------------
    def evaluate(self, tx: TxData) -> dict[Any, QueryDelta]:
        """Each affected query's inserts and deletes for one committed transaction."""
        out: dict[Any, QueryDelta] = {}
        for name, upd in tx.tables.items():
            for query in self._scan.get(name, ()):
                pred = query.plan.predicate
                if pred is None:
                    out[query.key] = QueryDelta(name, upd.inserts, upd.deletes, upd)
                    continue
                ins = [r for r in upd.inserts if pred(r)]
                dels = [r for r in upd.deletes if pred(r)]
                if ins or dels:
                    out[query.key] = QueryDelta(name, ins, dels)
            for column, by_value in self._eq.get(name, {}).items():
                get = attrgetter(column)
                for rows, is_insert in ((upd.inserts, True), (upd.deletes, False)):
                    for row in rows:
                        for query in by_value.get(get(row), ()):
                            residual = query.residual
                            if residual is not None and not residual(row):
                                continue
                            delta = out.get(query.key)
                            if delta is None:
                                delta = out[query.key] = QueryDelta(name, [], [])
                            (delta.inserts if is_insert else delta.deletes).append(row)
        if self._joins:
            seen: set[int] = set()
            for name in tx.tables:
                for query in self._joins.get(name, ()):
                    if id(query) not in seen:
                        seen.add(id(query))
                        delta = self._join_delta(query.plan, tx)
                        if delta is not None:
                            out[query.key] = delta
        return out

    def _join_delta(self, plan: Plan, tx: TxData) -> QueryDelta | None:
        """Old and new results for every join key the transaction touched; their difference."""
        assert plan.join is not None  # the caller checked: a join's plan
        other_name, own_col, other_col = plan.join
        own_upd = tx.tables.get(plan.table)
        other_upd = tx.tables.get(other_name)
        get_own, get_other = attrgetter(own_col), attrgetter(other_col)
        keys: set[Any] = set()
        if own_upd is not None:
            keys.update(map(get_own, own_upd.inserts))
            keys.update(map(get_own, own_upd.deletes))
        if other_upd is not None:
            keys.update(map(get_other, other_upd.inserts))
            keys.update(map(get_other, other_upd.deletes))
        own_index = self._tables[plan.table].index_for(own_col)
        other_index = self._tables[other_name].index_for(other_col)
        assert own_index is not None and other_index is not None
        pred, opred, ppred = plan.predicate, plan.other_predicate, plan.pair_predicate
        own_ins = _by_key(own_upd.inserts if own_upd else (), get_own)
        own_del = _by_key(own_upd.deletes if own_upd else (), get_own)
        oth_ins = _by_key(other_upd.inserts if other_upd else (), get_other)
        oth_del = _by_key(other_upd.deletes if other_upd else (), get_other)
        diff: Counter[Any] = Counter()
        for key in keys:
            own_new = own_index.find(key)
            oth_new = other_index.find(key)
            own_old = _old(own_new, own_ins.get(key), own_del.get(key))
            oth_old = _old(oth_new, oth_ins.get(key), oth_del.get(key))
            for own_rows, others, sign in ((own_new, oth_new, 1), (own_old, oth_old, -1)):
                for row in own_rows:
                    if pred is not None and not pred(row):
                        continue
                    n = sum(1 for o in others if (opred is None or opred(o)) and (ppred is None or ppred(row, o)))
                    if n:
                        diff[row] += sign * n
        inserts: list[Any] = []
        deletes: list[Any] = []
        for row, n in diff.items():
            if n > 0:
                inserts.extend([row] * n)
            elif n < 0:
                deletes.extend([row] * -n)
        if not inserts and not deletes:
            return None
        return QueryDelta(plan.table, inserts, deletes)


def _by_key(rows: Iterable[Any], get: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = {}
    for row in rows:
        out.setdefault(get(row), []).append(row)
    return out


def _old(new_rows: list[Any], inserted: list[Any] | None, deleted: list[Any] | None) -> list[Any]:
    """Rows with one key before the transaction: now, minus what it inserted, plus what it deleted."""
    if not inserted and not deleted:
        return new_rows
    drop = Counter(inserted or ())
    old: list[Any] = []
    for row in new_rows:
        if drop.get(row):
            drop[row] -= 1
        else:
            old.append(row)
    return old + list(deleted or ())


@dataclasses.dataclass(eq=False, slots=True)
class Subscription:
    """One subscribe request of one client: its queries, live from ``since`` (exclusive)."""

    request_id: int
    qids: list[int]
    queries: list[str]
    since: int
    until: int | None = None  # set by unsubscribe: updates up to here still go out


class Subscriptions(Generic[W]):
    """The subscribed queries of one database and who watches them.

    ``acquire`` a checked query for each one a subscribe lists (equal queries share one id and
    one registration; each acquire counts one user), ``release`` each when its subscribe ends or
    fails; ``watch`` once its rows went out, ``unwatch`` once its last update did. ``evaluate``
    each committed transaction, then hand the deltas to the outbox.
    """

    def __init__(self, tables: dict[str, Table]) -> None:
        self._engine = SubscriptionEngine(tables)
        self._ids: dict[tuple[str, bytes | None], int] = {}  # equal queries -> their one id
        self._keys: dict[int, tuple[str, bytes | None]] = {}
        self._next_qid = 1
        # query id -> watchers holding it (live, or awaiting their unsubscribe) and how many times
        self._watchers: dict[int, dict[W, int]] = {}

    def __len__(self) -> int:
        """Distinct queries registered."""
        return len(self._engine)

    @property
    def engine(self) -> SubscriptionEngine:
        """The index of the registered queries (its keys are the query ids)."""
        return self._engine

    def acquire(self, text: str, plan: Plan, sender: Identity) -> int:
        """The id of query ``text`` (checked: ``plan``) for ``sender``, with one more user; next,
        read its rows (``engine.initial_chunks``) and ``release`` it if the subscribe fails."""
        key = (" ".join(text.split()), bytes(sender) if ":sender" in text else None)
        qid = self._ids.get(key)
        if qid is None:
            qid = self._ids[key] = self._next_qid
            self._keys[qid] = key
            self._next_qid += 1
        self._engine.add(qid, plan)
        return qid

    def release(self, qids: Iterable[int]) -> None:
        """One user fewer of each query; a query nobody uses is dropped."""
        for qid in qids:
            if self._engine.remove(qid):
                del self._ids[self._keys.pop(qid)]

    def plan(self, qid: int) -> Plan:
        """The checked plan of a registered query."""
        query = self._engine.get(qid)
        assert query is not None, f"query {qid} is not registered"
        return query.plan

    def evaluate(self, tx: TxData) -> dict[int, QueryDelta]:
        """Each affected query's delta for one committed transaction (by query id): hand them to
        the outbox (and to the subscribes still reading their rows)."""
        return self._engine.evaluate(tx) if len(self._engine) else {}

    def watch(self, watcher: W, qids: Iterable[int]) -> None:
        """``watcher`` receives the updates of ``qids`` from now on (a query listed twice, twice)."""
        for qid in qids:
            watchers = self._watchers.setdefault(qid, {})
            watchers[watcher] = watchers.get(watcher, 0) + 1

    def unwatch(self, watcher: W, qids: Iterable[int]) -> None:
        """Undo one ``watch`` of ``qids``."""
        for qid in qids:
            watchers = self._watchers.get(qid)
            if watchers is None or watcher not in watchers:
                continue
            watchers[watcher] -= 1
            if watchers[watcher] <= 0:
                del watchers[watcher]
                if not watchers:
                    del self._watchers[qid]

    def watchers(self, qid: int) -> dict[W, int] | None:
        """Who watches query ``qid`` (None: nobody)."""
        return self._watchers.get(qid)
