"""Selecting and copying in ``MessageLog``: the selected span drawn over one row, and the selected
text built from the selected rows only. No widget here."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.geometry import Offset
from textual.selection import Selection
from textual.strip import Strip


def highlight(strip: Strip, span: tuple[int, int], style: Style, console: Console) -> Strip:
    """``strip`` with the cells of ``span`` (an end of -1: to the row's end) drawn in ``style``."""
    text = Text(no_wrap=True, end="")
    for segment in strip:
        text.append(segment.text, segment.style)
    start, end = span
    text.stylize(style, start, len(text) if end == -1 else end)
    return Strip(text.render(console), strip.cell_length)


def selected_text(selection: Selection, line_count: int, row_text: Callable[[int], str]) -> tuple[str, str]:
    """What ``Widget.get_selection`` returns for ``selection`` over ``line_count`` rows (at least
    one); ``row_text(line)`` is one row's plain text, asked for the selected rows only."""
    first = selection.start.y if selection.start is not None else 0
    last = selection.end.y if selection.end is not None else line_count - 1
    lines = [row_text(line) for line in range(max(0, first), min(last, line_count - 1) + 1)]
    shifted = Selection(
        None if selection.start is None else Offset(selection.start.x, 0),
        None if selection.end is None else Offset(selection.end.x, selection.end.y - first),
    )
    return shifted.extract("\n".join(lines)), "\n"
