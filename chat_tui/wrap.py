"""Text laid out in terminal cells: word wrapping and a right-aligned, truncated name. No Textual.

Widths are display cells (a wide character takes two); what is wrapped is first made
``visible`` (a control character drawn as a code, never sent to the terminal).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.cells import cell_len, chop_cells

from db_core.visible import visible

__all__ = ["fit_name", "paragraphs", "wrap_paragraph", "wrap_text"]

# A word with the spaces after it, or a run of leading spaces.
_WORD = re.compile(r"\S+\s*|\s+")


def paragraphs(text: str) -> list[str]:
    """The lines of a message text as drawn: made visible, split at newlines, tabs expanded
    (``wrap_text`` wraps each with ``wrap_paragraph``)."""
    text = visible(text, multiline=True)
    if "\n" not in text and "\t" not in text:  # the common case: one line
        return [text]
    return [line.expandtabs(4) for line in text.splitlines()] or [""]


def wrap_paragraph(line: str, width: int) -> list[str]:
    """Word-wrap one line to `width` cells; words wider than a line are broken."""
    # Printable ASCII is one cell per character: len() is much cheaper than cell_len().
    measure: Callable[[str], int] = len if line.isascii() else cell_len
    if measure(line) <= width:
        return [line]
    rows: list[str] = []
    row, row_width = "", 0
    for token in _WORD.findall(line):
        body = token.rstrip()
        body_width = measure(body)
        # Trailing spaces may hang past the edge; they are stripped at a break.
        if row_width + body_width <= width:
            row += token
            row_width += measure(token)
            continue
        if row:
            rows.append(row.rstrip())
        if body_width <= width:
            row, row_width = token, measure(token)
            continue
        pieces = chop_cells(body, width)
        rows.extend(pieces[:-1])
        row = pieces[-1] + token[len(body):]
        row_width = cell_len(row)
    rows.append(row.rstrip())
    return rows


def wrap_text(text: str, width: int) -> list[str]:
    """All display rows of a message text at `width` cells (at least one row), made visible."""
    lines = paragraphs(text)
    if len(lines) == 1:
        return wrap_paragraph(lines[0], width)
    rows: list[str] = []
    for paragraph in lines:
        rows.extend(wrap_paragraph(paragraph, width))
    return rows


def fit_name(name: str, width: int) -> str:
    """`name` right-aligned in `width` cells, truncated with `…` if longer."""
    size = cell_len(name)
    if size > width:
        name = chop_cells(name, width - 1)[0] + "…" if width > 1 else "…"
        size = cell_len(name)
    return " " * (width - size) + name
