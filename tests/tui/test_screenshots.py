"""screenshots/: made deterministically, and up to date with the app.

A re-run of ``screenshots/make.py`` must write the committed bytes (frozen clock,
seeded identities, a fixed address): if this fails after an intended change to
what users see, run ``.venv/bin/python screenshots/make.py`` and look at the SVGs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _make() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots_make", ROOT / "screenshots" / "make.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make = _make()


def test_a_rerun_writes_the_committed_screenshots(tmp_path: Path) -> None:
    written = asyncio.run(make.make(tmp_path))
    assert {p.name for p in written} == {p.name for p in (ROOT / "screenshots").glob("*.svg")}
    for path in written:
        assert path.read_text(encoding="utf-8") == (ROOT / "screenshots" / path.name).read_text(encoding="utf-8"), \
            f"screenshots/{path.name} is stale or not deterministic: run screenshots/make.py"


def test_every_word_starts_on_its_own_column() -> None:
    """librsvg ignores textLength: each word of a run is placed on its cell, a wide character alone."""
    svg = '<text class="r1" x="24.4" y="20" textLength="97.6" clip-path="url(#c)">a&#160;b●漢c&lt;</text>'
    out = make.per_cell_svg(svg)
    pieces = re.findall(r'<text class="r1" x="([0-9.]+)" y="20" clip-path="url\(#c\)">([^<]*)</text>', out)
    assert pieces == [("24.4", "a"), ("48.8", "b●"), ("73.2", "漢"), ("97.6", "c&lt;")], out
    assert "textLength" not in out


def test_the_committed_screenshots_show_no_address_or_time_of_the_machine() -> None:
    for path in (ROOT / "screenshots").glob("*.svg"):
        text = path.read_text(encoding="utf-8")
        assert "127.0.0.1:3000" in text.replace("&#160;", " ") or path.name == "help.svg", path.name
