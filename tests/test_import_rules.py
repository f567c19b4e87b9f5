"""The import rules of the architecture: db_core is usable embedded, without networking or UI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_db_core_imports_no_network_ui_or_other_packages() -> None:
    mods = loaded_after_import("db_core")
    forbidden = {"websockets", "textual", "asyncio", "chat_server", "chat_tui", "rich"}
    assert not {m.split(".")[0] for m in mods} & forbidden


# Inside db_core, dependencies run one way: a module may import only lower layers.
LAYERS = {
    "errors": 0, "types": 0, "ratelimit": 0, "visible": 0,
    "authority": 1,
    "commitlog": 1, "schema": 1, "logs": 1, "dirlock": 1,
    "table": 2, "migration": 2, "system": 2,
    "tx": 3,
    "readview": 4,
    "codec": 5, "sql": 5, "messages": 5,
    "subscription": 6, "cache": 6, "protocol": 6, "durability": 6,
    "module": 7, "evaluation": 7, "datastore": 7, "outbox": 7,
    "calls": 8, "recovery": 8,
    "database": 9,
    "session": 10,
    "queries": 11,
    "host": 12,
    "hosting": 13,
    "__init__": 13,
}


def db_core_imports(path: Path) -> set[str]:
    """The db_core modules (top-level names) that ``path`` imports."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT / "db_core")
    package_depth = len(rel.parts) - 1
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level <= package_depth:
                    continue  # inside the same subpackage
                parts = (node.module or "").split(".")
                names = [parts[0]] if parts[0] else [a.name for a in node.names]
                found.update(names)
            elif node.module and node.module.startswith("db_core"):
                found.add(node.module.split(".")[1] if "." in node.module else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("db_core."):
                    found.add(alias.name.split(".")[1])
    return found


def test_db_core_layers() -> None:
    problems = []
    for path in sorted((ROOT / "db_core").rglob("*.py")):
        rel = path.relative_to(ROOT / "db_core")
        me = rel.parts[0].removesuffix(".py")
        assert me in LAYERS, f"db_core/{rel} has no layer in LAYERS"
        for dep in db_core_imports(path):
            if dep == me:
                continue
            if LAYERS[dep] >= LAYERS[me]:
                problems.append(f"db_core/{rel} imports {dep} (layer {LAYERS[dep]} >= {LAYERS[me]})")
    assert not problems, problems


def test_commitlog_imports_only_errors_and_stdlib() -> None:
    for path in (ROOT / "db_core" / "commitlog").rglob("*.py"):
        assert db_core_imports(path) <= {"errors"}, path
        text = path.read_text()
        assert "msgpack" not in text and "sortedcontainers" not in text


def test_public_api_names() -> None:
    import db_core

    for name in db_core.__all__:
        assert hasattr(db_core, name), name
    for name in ("table", "reducer", "init", "client_connected", "client_disconnected", "ReducerContext",
                 "Identity", "ConnectionId", "Timestamp", "PrimaryKey", "Unique", "AutoInc", "Index",
                 "ReducerError", "UniqueConstraintViolation", "log", "Database"):
        assert name in db_core.__all__


def test_chat_tui_reaches_the_database_only_through_the_sdk() -> None:
    # What chat_tui's own modules import (importing db_core.cache also runs db_core/__init__,
    # so the loaded-module set cannot tell; the import statements can).
    allowed = {"chat_server.client", "chat_server.errors", "chat_server.reconnect", "chat_server.tokens",
               "chat_server.cli", "db_core.cache", "db_core.types", "db_core.protocol", "db_core.visible"}
    found: set[str] = set()
    for path in (ROOT / "chat_tui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
    ours = {m for m in found if m.split(".")[0] in ("db_core", "chat_server")}
    assert ours and ours <= allowed, ours - allowed


def test_chat_tui_core_imports_no_ui() -> None:
    # What a line means is decided without Textual, so it can be tested and reused on its own.
    assert "textual" not in {m.split(".")[0] for m in loaded_after_import("chat_tui.commands")}
