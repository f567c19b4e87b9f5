"""Make the README's screenshots from the real app in fixed scenes.

    .venv/bin/python screenshots/make.py        # writes screenshots/*.svg

Each shot is the real ``ChatApp`` driven by Textual's Pilot through one of the
scenes of ``tests/tui/scenes.py``: the messages its connection worker would post,
with seeded identities, a frozen clock and time zone, a fixed server address and
the default theme. So a re-run writes the same bytes (``tests/tui/test_screenshots.py``
checks it), and a change to what users see shows as a diff here.

The SVGs are Rich's export with one change, so that they render alike in
browsers and in librsvg (``rsvg-convert``): Rich places each run of text at its
start and asks the renderer to stretch it to its cells with ``textLength``,
which librsvg ignores; with any font other than Fira Code the characters then
drift off their columns (names, the date line and the borders misaligned).
Here each word of a run starts at its own column's ``x`` instead (a wide
character stands alone), so a drift can never pass the end of a word; spaces are
left out, since their backgrounds are rects of their own. (An ``x`` per
character would be exact, but librsvg honours only the first of such a list.)
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

from textual.pilot import Pilot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tui import scenes  # noqa: E402

OUT = Path(__file__).resolve().parent
CELL_WIDTH = 12.2  # Rich's export: the width of one terminal cell in SVG units


class Shot(NamedTuple):
    name: str
    size: tuple[int, int]
    scene: Callable[[Pilot], Awaitable[None]]


async def _help(pilot: Pilot) -> None:
    await scenes.conversation(pilot)
    await pilot.press("f1")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


SHOTS = [
    Shot("conversation.svg", (110, 30), scenes.conversation),
    Shot("help.svg", (110, 30), _help),
    Shot("error.svg", (110, 30), scenes.errors),
    Shot("search.svg", (110, 30), scenes.search),
    Shot("unread.svg", (110, 30), scenes.unread),
    Shot("filtered.svg", (110, 30), scenes.filtered),
    Shot("offline.svg", (110, 30), scenes.offline),
    Shot("narrow.svg", (60, 24), scenes.conversation),
    Shot("wide.svg", (200, 30), scenes.conversation),
]

_TEXT = re.compile(r'<text class="([^"]+)" x="([0-9.]+)" y="([0-9.]+)" textLength="([0-9.]+)"'
                   r' clip-path="([^"]+)">(.*?)</text>')


def _per_cell(m: re.Match[str]) -> str:
    """One run of text as pieces each placed on its own cell: words, with wide characters alone."""
    from rich.cells import cell_len

    cls, x, y, length, clip, body = m.groups()
    text = html.unescape(body)
    if not text or abs(cell_len(text) - float(length) / CELL_WIDTH) > 0.01:  # not a plain run: leave it
        return m.group(0)
    pieces: list[tuple[float, str]] = []
    at, start, word = float(x), float(x), ""
    for ch in text:
        width = cell_len(ch)
        if ch.isspace() or width != 1:
            if word:
                pieces.append((start, word))
            if not ch.isspace():
                pieces.append((at, ch))
            word = ""
        else:
            if not word:
                start = at
            word += ch
        at += width * CELL_WIDTH
    if word:
        pieces.append((start, word))
    return "".join(f'<text class="{cls}" x="{px:g}" y="{y}" clip-path="{clip}">'
                   f"{html.escape(piece, quote=False)}</text>" for px, piece in pieces)


def per_cell_svg(svg: str) -> str:
    """Rich's SVG with every character placed on its own column (see the module's docstring)."""
    return _TEXT.sub(_per_cell, svg)


async def render(shot: Shot) -> str:
    """The SVG of one shot, made in a fresh app."""
    app = scenes.make_app()
    async with app.run_test(size=shot.size) as pilot:
        await shot.scene(pilot)
        await pilot.pause()
        svg = app.export_screenshot(title="chat-tui")
    return per_cell_svg(svg)


async def make(out: Path = OUT) -> list[Path]:
    """Write every shot into ``out``; the paths written."""
    written = []
    with scenes.frozen():
        for shot in SHOTS:
            path = out / shot.name
            path.write_text(await render(shot), encoding="utf-8")
            written.append(path)
    return written


if __name__ == "__main__":
    paths = asyncio.run(make())
    print("wrote", ", ".join(p.name for p in paths))
