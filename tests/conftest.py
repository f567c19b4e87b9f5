"""Shared fixtures: example modules written against the public API."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chat_server.modules import QUICKSTART_CHAT  # noqa: E402


@pytest.fixture
def quickstart_path() -> Path:
    return QUICKSTART_CHAT


def write_module(tmp_path: Path, source: str, name: str = "mod") -> Path:
    """Write a module file and return its path."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return path
