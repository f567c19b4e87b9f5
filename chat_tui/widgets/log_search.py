"""The search's matches drawn over the log's rows: ``mark_matches`` restyles the cells of one
rendered entry (``log_rows.render_block``) where a ``Query`` matches. No widget here.

The text is wrapped again here as ``render_block`` wraps it (``wrap.paragraphs``, then
``wrap.wrap_paragraph`` for each), so a match is found in a whole line, across the places the wrap
breaks it, and each row gets the part that falls on it. Offsets become cells with ``cell_len``: a
wide character takes two, and a cut never falls inside one. A name matches in the name column as
it is drawn there; cut short with ``…``, the name is marked whole.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from chat_tui.entries import EntryKind, LogEntry
from chat_tui.search import Query
from chat_tui.widgets.log_rows import SEPARATOR_WIDTH, TIME_WIDTH, Block, shown_text
from chat_tui.wrap import fit_name, paragraphs, wrap_paragraph
from db_core.visible import visible

__all__ = ["mark_matches"]

Cells = list[tuple[int, int]]
"""(start, end) cell ranges on one row."""


def _row_cells(line: str, pieces: list[str], spans: list[tuple[int, int]], start: int) -> list[Cells]:
    """Per row piece of ``line`` (as ``wrap_paragraph`` cut it), the cells of ``spans`` (character
    offsets in ``line``) on it; ``start`` is the cell the text column begins at."""
    out: list[Cells] = []
    at = 0
    for piece in pieces:
        # The wrap drops only spaces between pieces: each piece is found where the last one ended.
        begin = line.find(piece, at) if piece else at
        end = begin + len(piece)
        cells: Cells = []
        for lo, hi in spans:
            lo, hi = max(lo, begin), min(hi, end)
            if lo < hi:
                cells.append((start + cell_len(piece[:lo - begin]), start + cell_len(piece[:hi - begin])))
        out.append(cells)
        at = end
    return out


def _restyle(strip: Strip, cells: Cells, style: Style) -> Strip:
    """``strip`` with the cells in ``cells`` (sorted, apart) in ``style`` too, over their own."""
    cuts = sorted({cut for span in cells for cut in span} | {strip.cell_length})
    pieces = strip.divide(cuts)
    edges = [0, *cuts]
    segments: list[Segment] = []
    for piece, left in zip(pieces, edges, strict=False):
        marked = any(lo <= left < hi for lo, hi in cells)
        for seg in piece:
            segments.append(Segment(seg.text, (seg.style or Style()) + style, seg.control) if marked else seg)
    return Strip(segments, strip.cell_length)


def mark_matches(block: Block, entry: LogEntry, header: bool, query: Query, style: Style, name: str,
                 name_column: int, text_width: int) -> Block:
    """``block`` (``render_block``'s for ``entry``, ``header``, drawn under ``name`` with these
    columns) with every match of ``query`` in ``style``; the same block if nothing matches."""
    plain, strips = block
    marks: dict[int, Cells] = {}
    row = int(header)
    start = TIME_WIDTH + name_column + SEPARATOR_WIDTH
    for line in paragraphs(shown_text(entry, name)):
        pieces = wrap_paragraph(line, text_width)
        spans = query.spans(line)
        if spans:
            for number, cells in enumerate(_row_cells(line, pieces, spans, start)):
                if cells:
                    marks[row + number] = cells
        row += len(pieces)
    if entry.kind is EntryKind.MESSAGE and not entry.action:
        shown = visible(name or entry.name)
        label = fit_name(shown, name_column)
        drawn = label.lstrip(" ")
        pad = len(label) - len(drawn)
        spans = query.spans(drawn)
        if not spans and query.finds_in(shown):
            spans = [(0, len(drawn))]   # the match is in the part cut off: the name is marked whole
        cells = [(TIME_WIDTH + pad + cell_len(drawn[:lo]), TIME_WIDTH + pad + cell_len(drawn[:hi])) for lo, hi in spans]
        if cells:
            marks[int(header)] = sorted(cells + marks.get(int(header), []))
    if not marks:
        return block
    return plain, [_restyle(strip, marks[i], style) if i in marks else strip for i, strip in enumerate(strips)]
