"""SQL: parse (text -> AST, no schema), check (AST + schema -> plan), execute.

- ``db_core.sql.ast``: the syntax tree (frozen dataclasses), ``SqlError``,
  ``format_position`` and ``to_sql`` (AST -> canonical SQL text).
- ``db_core.sql.parser``: ``parse(text) -> Statement``; a hand-written
  tokenizer and recursive-descent parser for the supported subset only.
- ``db_core.sql.check``: ``check(stmt, tables, is_owner, sender) -> plan``
  (the plans and bound expressions: ``db_core.sql.plan``).
- ``db_core.sql.predicate``: ``compile_predicate`` and friends (bound
  expression -> Python function).
- ``db_core.sql.subscribe``: ``check_subscription(text, tables, is_owner,
  sender) -> SubscriptionPlan``.
- ``db_core.sql.physical``: ``physical_plan``/``explain`` (index choice, join
  order).
- ``db_core.sql.execute``: ``run_select``, ``select_chunks``, ``run_dml``.
- ``db_core.sql.format``: ``format_table`` (psql style), ``to_json_rows``.
- ``db_core.sql.engine``: ``run_sql(text, *, tables, sender, is_owner, transact)
  -> SqlResult``.
"""

from db_core.sql.ast import SqlError, to_sql
# Not ``check`` itself: a package attribute of that name would hide the
# ``db_core.sql.check`` submodule (``import db_core.sql.check as m`` would give the function).
from db_core.sql.check import NotAuthorized
from db_core.sql.engine import PlanCache, SqlResult, plan_select, run_sql
from db_core.sql.physical import explain, physical_plan
from db_core.sql.format import format_table, format_value, json_value, row_to_json, to_json_rows
from db_core.sql.parser import parse
from db_core.sql.plan import SelectPlan, SubscriptionPlan
from db_core.sql.predicate import compile_predicate
from db_core.sql.subscribe import check_subscription

__all__ = [
    "SqlError", "NotAuthorized", "PlanCache", "SqlResult", "SelectPlan", "SubscriptionPlan",
    "parse", "check_subscription", "compile_predicate", "plan_select", "run_sql", "explain", "physical_plan",
    "format_table", "format_value", "json_value", "to_json_rows", "row_to_json", "to_sql",
]
