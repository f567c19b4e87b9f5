"""Run checked plans over live tables (how a SELECT reads them: ``db_core.sql.physical``).

SELECT
    ``run_select(plan, tables)`` runs the physical plan (``physical_plan``);
    ``select_chunks`` runs it in slices over a ``ReadView``, ``Meter`` counting
    the rows read. ``COUNT(*)`` counts; ``LIMIT`` stops the pipeline early.

DML
    ``run_dml(plan, tables, transact)`` computes and applies the change inside
    ``transact(body)`` (one logged transaction, rolled back whole on any
    error). A unique violation becomes an ``SqlError`` naming the constraint.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Any

from db_core.errors import NoSuchRow, UniqueConstraintViolation
from db_core.sql.ast import SqlError
from db_core.sql.plan import DeletePlan, InsertPlan, SelectPlan, UpdatePlan
from db_core.sql.physical import JoinStep, PhysicalPlan, physical_plan
from db_core.sql.predicate import plain_attribute
from db_core.readview import LiveView
from db_core.table import Table
from db_core.tx import Transaction, TxData

__all__ = ["Meter", "run_select", "select_chunks", "whole_table", "matching_rows", "run_dml", "chunks", "CHUNK", "LIVE",
           "TICK"]


# --------------------------------------------------------------------------- running SELECT
#
# Every loop over stored rows goes through them CHUNK at a time and stops between chunks (a
# generator step), so a driver can run a large query in slices (``select_chunks``) and count
# the rows it reads (``Meter``). Join pipelines pass ``TICK`` along as their pause point.

CHUNK = 256
TICK: Any = object()


class Meter:
    """Rows a running query has read from tables (index hits and join probes included: the
    budget's count), and rows it copied into a table's snapshot (progress, not in the budget)."""

    __slots__ = ("scanned", "copied")

    def __init__(self) -> None:
        self.scanned = 0
        self.copied = 0


def chunks(rows: Iterable[Any], view: LiveView, meter: Meter) -> Iterable[Iterable[Any]]:
    """``rows`` CHUNK at a time for a reader that may pause between chunks, else in one go."""
    if not view.sliced:
        return (rows,)
    return _sliced(rows, meter)


def _sliced(rows: Iterable[Any], meter: Meter) -> Iterator[list[Any]]:
    take = getattr(rows, "take", None)  # a LazyScan: [] while it copies its table (a pause point), None at the end
    if take is None:
        it = iter(rows)
        while chunk := list(itertools.islice(it, CHUNK)):
            meter.scanned += len(chunk)
            yield chunk
        return
    while (chunk := take(CHUNK, meter)) is not None:
        meter.scanned += len(chunk)
        yield chunk


def _index_join(stream: Iterable[Any], step: JoinStep, pos: int, table: Table, view: LiveView,
                meter: Meter) -> Iterator[Any]:
    get = attrgetter(step.probe.name)
    assert step.index is not None
    find = view.finder(table, step.index)
    local, residual = step.local, step.residual
    guard_none, guard_nan = step.guard_none, step.guard_nan
    probed = 0
    for t in stream:
        if t is TICK:
            yield t
            continue
        k = get(t[pos])
        if guard_none and k is None:
            continue
        if guard_nan and k != k:
            continue
        for r in find(k):
            probed += 1
            if probed >= CHUNK:
                meter.scanned += probed
                probed = 0
                yield TICK
            if local is not None and not local(r):
                continue
            nt = t + (r,)
            if residual is None or residual(nt):
                yield nt
    meter.scanned += probed


def _hash_join(stream: Iterable[Any], step: JoinStep, pos: int, table: Table, view: LiveView,
               meter: Meter) -> Iterator[Any]:
    assert step.access is not None
    get_new = attrgetter(step.column.name)
    local, residual = step.local, step.residual
    guard_none, guard_nan = step.guard_none, step.guard_nan
    built: dict[Any, list[Any]] | None = None
    get = attrgetter(step.probe.name)
    probed = 0
    for t in stream:
        if t is TICK:
            yield t
            continue
        if built is None:
            built = {}
            for chunk in chunks(step.access.rows(table, view), view, meter):
                for r in chunk:
                    if local is not None and not local(r):
                        continue
                    k = get_new(r)
                    if (guard_none and k is None) or (guard_nan and k != k):
                        continue
                    bucket = built.get(k)
                    if bucket is None:
                        built[k] = [r]
                    else:
                        bucket.append(r)
                yield TICK
        k = get(t[pos])
        if guard_none and k is None:
            continue
        if guard_nan and k != k:
            continue
        for r in built.get(k, ()):
            probed += 1
            if probed >= CHUNK:
                meter.scanned += probed
                probed = 0
                yield TICK
            nt = t + (r,)
            if residual is None or residual(nt):
                yield nt
    meter.scanned += probed


def _single_chunks(pp: PhysicalPlan, tables: dict[str, Table], view: LiveView, meter: Meter,
                   project: Callable[[Any], Any] | None, limit: int = -1) -> Iterator[list[Any]]:
    """A one-table plan's rows that pass its filter, ``project``-ed, a chunk of the table at a time
    (at most ``limit`` of them unless it is negative)."""
    f = pp.start_filter
    for chunk in chunks(pp.access.rows(tables[pp.plan.sources[0].table], view), view, meter):
        src = chunk if f is None else filter(f, chunk)
        if limit >= 0:
            src = itertools.islice(src, limit)
        out = list(src) if project is None else list(map(project, src))
        yield out
        if limit >= 0:
            limit -= len(out)
            if not limit:
                return


def _tuples(pp: PhysicalPlan, tables: dict[str, Table], view: LiveView, meter: Meter) -> Iterator[Any]:
    """Joined tuples (one row per source, in ``pp.order``), with TICKs between chunks."""
    plan = pp.plan
    start_table = tables[plan.sources[pp.order[0]].table]
    f = pp.start_filter

    def start() -> Iterator[Any]:
        for chunk in chunks(pp.access.rows(start_table, view), view, meter):
            for r in chunk:
                if f is None or f(r):
                    yield (r,)
            yield TICK

    stream: Iterator[Any] = start()
    for step in pp.steps:
        pos = pp.position[step.probe.source]
        table = tables[plan.sources[step.source].table]
        join = _index_join if step.kind == "index" else _hash_join
        stream = join(stream, step, pos, table, view, meter)
    return stream


def _projector(plan: SelectPlan, position: dict[int, int] | None) -> Callable[[Any], tuple[Any, ...]]:
    out = plan.output
    assert out is not None
    if position is None:
        names = [c.name for c in out]
        if len(names) == 1:
            one = attrgetter(names[0])
            return lambda r: (one(r),)
        return attrgetter(*names)
    ns: dict[str, Any] = {"__builtins__": {}}
    items = []
    for i, c in enumerate(out):
        if plain_attribute(c.name):
            items.append(f"t[{position[c.source]}].{c.name}")
        else:
            ns[f"_g{i}"] = attrgetter(c.name)
            items.append(f"_g{i}(t[{position[c.source]}])")
    code = compile(f"lambda t: ({', '.join(items)},)", "<sql projection>", "eval")
    project: Callable[[Any], tuple[Any, ...]] = eval(code, ns)  # noqa: S307 - built from validated names
    return project


def whole_table(plan: SelectPlan, pp: PhysicalPlan) -> bool:
    """Whether the query reads every row of its one table, unfiltered (its size is the table's)."""
    return len(plan.sources) == 1 and pp.access.kind == "scan" and pp.start_filter is None


def select_chunks(plan: SelectPlan, pp: PhysicalPlan, tables: dict[str, Table], view: LiveView,
                  meter: Meter) -> Iterator[list[tuple[Any, ...]]]:
    """The result rows of a checked SELECT, a list at a time (lists may be empty: a pause point).

    Between two lists the caller may let transactions commit, if ``view`` is a ``ReadView`` it
    feeds them to: the rows are those of the view's offset. ``meter`` counts the rows read.
    """
    single = len(plan.sources) == 1
    limit = plan.limit
    if plan.count:
        if limit == 0:
            return
        if whole_table(plan, pp):
            yield [(view.count(tables[plan.sources[0].table]),)]
            return
        n = 0
        if single:
            for chunk in _single_chunks(pp, tables, view, meter, None):
                n += len(chunk)
                yield []
        else:
            for item in _tuples(pp, tables, view, meter):
                if item is TICK:
                    yield []
                else:
                    n += 1
        yield [(n,)]
        return
    if limit == 0:
        return
    if single:
        yield from _single_chunks(pp, tables, view, meter, _projector(plan, None), -1 if limit is None else limit)
        return
    left = -1 if limit is None else limit
    project = _projector(plan, pp.position)
    out: list[tuple[Any, ...]] = []
    for item in _tuples(pp, tables, view, meter):
        if item is TICK:
            yield out
            out = []
            continue
        out.append(project(item))
        if len(out) == left:
            break
        if len(out) >= CHUNK:
            left -= len(out)
            yield out
            out = []
    yield out


def run_select(plan: SelectPlan, tables: dict[str, Table], pp: PhysicalPlan | None = None) -> list[tuple[Any, ...]]:
    """The result rows of a checked SELECT (tuples of column values), read now and all at once."""
    if pp is None:
        pp = physical_plan(plan, tables)
    parts = list(select_chunks(plan, pp, tables, LIVE, Meter()))
    if len(parts) == 1:
        return parts[0]
    return [row for part in parts for row in part]


def matching_rows(plan: SelectPlan, tables: dict[str, Table]) -> list[Any]:
    """The stored rows of a one-table plan that satisfy its WHERE (for UPDATE/DELETE)."""
    assert len(plan.sources) == 1
    (rows,) = _single_chunks(physical_plan(plan, tables), tables, LIVE, Meter(), None)
    return rows


LIVE = LiveView()


# --------------------------------------------------------------------------- DML

def run_dml(plan: InsertPlan | UpdatePlan | DeletePlan, tables: dict[str, Table],
            transact: Callable[[Callable[[Transaction], object]], TxData]) -> tuple[int, TxData]:
    """Apply a DML plan as one transaction; returns (rows affected, what it committed)."""
    table = tables[plan.table]
    affected = [0]
    where = [-1]

    if isinstance(plan, InsertPlan):
        def body(tx: Transaction) -> None:
            row_type = plan.tdef.row_type
            autoinc = plan.tdef.autoinc
            for values, pos in zip(plan.rows, plan.positions, strict=True):
                where[0] = pos
                vals = dict(values)
                for c in autoinc:
                    if vals[c] == 0:
                        vals[c] = tx.next_sequence(table, c)
                row = row_type(**vals)
                table.validate(row)
                if tx.insert(table, row) is row:
                    affected[0] += 1

    elif isinstance(plan, UpdatePlan):
        def body(tx: Transaction) -> None:
            where[0] = plan.pos
            rows = matching_rows(plan.select, tables)
            affected[0] = len(rows)
            changes = [(old, dataclasses.replace(old, **plan.assignments)) for old in rows]
            changes = [(old, new) for old, new in changes if new != old]
            for old, _ in changes:
                tx.delete(table, old)
            for _, new in changes:
                table.validate(new)
                tx.insert(table, new)

    else:
        def body(tx: Transaction) -> None:
            rows = matching_rows(plan.select, tables)
            n = 0
            for row in rows:
                if tx.delete(table, row):
                    n += 1
            affected[0] = n

    try:
        result = transact(body)
    except UniqueConstraintViolation as exc:
        raise SqlError(str(exc), where[0] if where[0] >= 0 else None) from None
    except (TypeError, ValueError, NoSuchRow) as exc:
        raise SqlError(f"cannot apply {type(plan).__name__[:-4].upper()}: {exc}",
                       where[0] if where[0] >= 0 else None) from None
    return affected[0], result
