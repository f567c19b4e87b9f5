"""The errors module's docstring names every exception class of the project."""

from __future__ import annotations

import ast
from pathlib import Path

import db_core.errors

ROOT = Path(__file__).resolve().parent.parent


def exception_classes() -> set[str]:
    """Classes in the three packages that derive (directly or not) from an exception or warning."""
    bases: dict[str, list[str]] = {}
    for package in ("db_core", "chat_server", "chat_tui"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    bases[node.name] = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]

    def is_exception(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name.endswith(("Exception", "Error", "Warning")) and name not in bases:
            return True  # a built-in one
        return name not in seen and any(is_exception(b, seen | {name}) for b in bases.get(name, ()))

    return {name for name in bases if is_exception(name)}


def test_every_exception_class_is_in_the_tree() -> None:
    doc = db_core.errors.__doc__ or ""
    found = exception_classes()
    assert {"DbError", "StorageError", "ClientError", "InputRefused"} <= found
    missing = sorted(name for name in found if f" {name} " not in doc.replace("\n", " \n"))
    assert not missing, missing
