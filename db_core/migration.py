"""Compare the schema stored with the data to a module's schema.

Compatible (migrates by itself): a new table, a new or removed btree index,
a table made public or private, a column appended at the end with a default.
Anything else is refused, naming each difference.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .schema import TableDef, col_type_from_description


@dataclasses.dataclass(slots=True)
class MigrationPlan:
    new_tables: list[str] = dataclasses.field(default_factory=list)
    appended_columns: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    index_changes: list[str] = dataclasses.field(default_factory=list)
    access_changes: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def compatible(self) -> bool:
        return not self.problems

    @property
    def changed(self) -> bool:
        return bool(self.new_tables or self.appended_columns or self.index_changes or self.access_changes)

    def describe(self) -> list[str]:
        out = [f"new table `{t}`" for t in self.new_tables]
        for table, cols in self.appended_columns.items():
            out += [f"new column `{c}` in table `{table}`" for c in cols]
        return out + self.index_changes + self.access_changes


def plan_migration(stored: dict[str, Any], tables: dict[str, TableDef]) -> MigrationPlan:
    """What it takes to move data stored under ``stored`` (schema JSON) to ``tables``."""
    plan = MigrationPlan()
    old_tables = {t["name"]: t for t in stored.get("tables", [])}
    for name in old_tables:
        if name not in tables:
            plan.problems.append(f"table `{name}` was removed (its rows would be lost)")
    for name, tdef in tables.items():
        old = old_tables.get(name)
        if old is None:
            plan.new_tables.append(name)
            continue
        new = tdef.describe()
        old_cols = old["columns"]
        new_cols = new["columns"]
        for i, oc in enumerate(old_cols):
            if i >= len(new_cols):
                plan.problems.append(f"column `{oc['name']}` of table `{name}` was removed")
                continue
            nc = new_cols[i]
            if nc["name"] != oc["name"]:
                plan.problems.append(
                    f"column {i + 1} of table `{name}` was `{oc['name']}` and is now `{nc['name']}`"
                    " (renamed or reordered)"
                )
            elif nc["type"] != oc["type"]:
                plan.problems.append(
                    f"column `{oc['name']}` of table `{name}` changed type from "
                    f"{col_type_from_description(oc['type'])} to {col_type_from_description(nc['type'])}"
                )
        appended = []
        for nc in new_cols[len(old_cols):]:
            if "default" not in nc:
                plan.problems.append(f"new column `{nc['name']}` of table `{name}` needs a default value")
            else:
                appended.append(nc["name"])
        if appended:
            plan.appended_columns[name] = appended
        for key, label in (("primary_key", "primary key"), ("unique", "unique columns"),
                           ("autoinc", "auto-increment columns")):
            if old.get(key) != new.get(key):
                plan.problems.append(
                    f"the {label} of table `{name}` changed from {_show(old.get(key))} to {_show(new.get(key))}")
        added = sorted(set(new["indexes"]) - set(old.get("indexes", [])))
        removed = sorted(set(old.get("indexes", [])) - set(new["indexes"]))
        plan.index_changes += [f"new index on `{name}.{c}`" for c in added]
        plan.index_changes += [f"index on `{name}.{c}` removed" for c in removed]
        if old.get("public") != new["public"]:
            plan.access_changes.append(f"table `{name}` is now {'public' if new['public'] else 'private'}")
    return plan


def _show(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        return ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"
