"""One entry point for one-off SQL: parse, check, execute.

    res = run_sql("SELECT * FROM user WHERE online = true", tables=store.tables,
                  sender=me, is_owner=me == owner, transact=store.writer(me))
    print(res.format())

SELECT reads the tables as they are (call it between transactions); DML runs
inside ``transact(body)``, which must run ``body(tx)`` as one transaction and
return its ``TxData`` (``Datastore.writer`` gives one). Every error is an ``SqlError`` whose ``text`` is
set, so ``str(err)`` ends with ``(at line L, column C)`` when it has a position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from db_core.schema import ColType
from db_core.sql.ast import SqlError
from db_core.sql.check import check
from db_core.sql.execute import run_dml, run_select
from db_core.sql.physical import PhysicalPlan, physical_plan
from db_core.sql.format import format_table, to_json_rows
from db_core.sql.parser import parse
from db_core.sql.plan import SelectPlan
from db_core.table import Table
from db_core.tx import Transaction, TxData
from db_core.types import Identity

__all__ = ["PlanCache", "SqlResult", "Transact", "plan_select", "run_sql"]

# Runs a body as one transaction and returns what it committed.
Transact = Callable[[Callable[[Transaction], object]], TxData]


@dataclasses.dataclass(slots=True)
class SqlResult:
    """The outcome of one statement.

    SELECT: ``columns``, ``types`` and ``rows`` (tuples of plain values, as rows
    hold them); ``affected`` and ``tx`` are None. DML: no columns or rows;
    ``affected`` is the number of rows inserted, matched by UPDATE, or deleted;
    ``tx`` is the transaction's ``TxData`` (``tx.offset`` is what to wait for
    before telling anyone; an unchanged database gives an empty TxData).
    ``plan`` describes how a SELECT ran (access path and joins), for ``EXPLAIN``-like output.
    """
    columns: list[str]
    types: list[ColType]
    rows: list[tuple[Any, ...]]
    affected: int | None = None
    tx: TxData | None = None
    plan: list[str] | None = None

    def format(self) -> str:
        """psql-style text (``format_table``); for DML, ``N row(s) affected``."""
        if self.affected is not None and not self.columns:
            return f"{self.affected} row{'s' if self.affected != 1 else ''} affected"
        return format_table(self.columns, self.types, self.rows)

    def to_json(self) -> list[dict[str, Any]]:
        return to_json_rows(self.columns, self.types, self.rows)


class PlanCache:
    """Checked plans of recent statements, so a repeated query skips parse and check.

    Keyed by the text, the caller's ownership and (for ``:sender`` queries) the
    caller; plans depend on nothing else, since a database's schema is fixed
    while it is open. Bounded: it empties itself when full.
    """

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._plans: dict[tuple[str, bool, bytes | None], tuple[Any, Any]] = {}

    def get(self, key: tuple[str, bool, bytes | None]) -> tuple[Any, Any] | None:
        return self._plans.get(key)

    def put(self, key: tuple[str, bool, bytes | None], value: tuple[Any, Any]) -> None:
        if len(self._plans) >= self.capacity:
            self._plans.clear()
        self._plans[key] = value


def plan_select(text: str, *, tables: dict[str, Table], sender: Identity, is_owner: bool,
                cache: PlanCache | None = None) -> tuple[SelectPlan, PhysicalPlan] | None:
    """The checked plan and physical plan of a SELECT, for running it (``run_select``, or in slices
    with ``select_chunks``); None if ``text`` is DML (run it with ``run_sql``). Raises SqlError."""
    key = (text, is_owner, bytes(sender) if ":sender" in text else None)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    try:
        plan = check(parse(text), {name: t.tdef for name, t in tables.items()}, is_owner, sender)
    except SqlError as err:
        if err.text is None:
            err.text = text
        raise
    if not isinstance(plan, SelectPlan):
        return None
    prepared = (plan, physical_plan(plan, tables))
    if cache is not None:
        cache.put(key, prepared)
    return prepared


def run_sql(text: str, *, tables: dict[str, Table], sender: Identity, is_owner: bool,
            transact: Transact | None = None, cache: PlanCache | None = None) -> SqlResult:
    """Parse, check and run one SQL statement for ``sender``.

    ``is_owner`` decides private-table visibility and DML permission.
    ``transact`` runs DML as one transaction (see the module docstring); DML without
    it is an ``SqlError``.
    ``cache`` (one per set of tables) remembers checked SELECT plans.
    """
    prepared = plan_select(text, tables=tables, sender=sender, is_owner=is_owner, cache=cache)
    if prepared is not None:
        plan, pp = prepared
        return SqlResult(list(plan.columns), list(plan.types), run_select(plan, tables, pp), plan=pp.describe())
    try:
        dml = check(parse(text), {name: t.tdef for name, t in tables.items()}, is_owner, sender)
        assert not isinstance(dml, SelectPlan)
        if transact is None:
            raise SqlError("this connection runs no INSERT, UPDATE or DELETE (no transactions)")
        affected, tx = run_dml(dml, tables, transact)
        return SqlResult([], [], [], affected, tx)
    except SqlError as err:
        if err.text is None:
            err.text = text
        raise
