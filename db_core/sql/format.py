"""SQL results as text (psql style, for the CLI) and as JSON-friendly values.

``format_table`` renders what ``chat-server sql`` prints::

     name    | online | text
    ---------+--------+-----------------
     "alice" | true   | "Hello, World!"

Each cell is left-aligned with one space either side, padded to its column's
width (the widest of header and values, in terminal cells), cells joined by
``|``. Like psql, the last column is not padded, so no line ends in spaces.
The separator is ``-`` × (width + 2) per column joined by ``+``. An empty
result prints the header and separator only. Lines are joined by ``\\n``,
with no trailing newline.

Values (``format_value``): strings JSON-quoted (``"it's \\"x\\""``, a newline
``\\n``, ESC ``\\u001b``) and then made ``db_core.visible`` (what JSON leaves raw
but a terminal would act on or hide: DEL ``␡``, C1 controls, bidi and zero-width
characters as ``<U+202E>`` ...; column names too), Identity,
ConnectionId and bytes ``0x`` + lowercase hex, timestamps RFC 3339 with
microseconds and ``+00:00``, ``true``/``false``, options ``(some = <inner>)`` /
``(none = ())``, enums by variant name, lists ``[a, b]``, floats as Python
``repr`` (``1.5``, ``1e+20``, ``inf``).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from db_core.schema import ColType, TableDef
from db_core.types import Timestamp
from db_core.visible import visible

__all__ = ["format_value", "format_table", "json_value", "to_json_rows", "row_to_json", "display_width"]


def _timestamp_text(v: Any) -> str:
    try:
        return Timestamp(v).to_rfc3339()
    except (OverflowError, ValueError):  # beyond datetime's years 1..9999
        return str(int(v))


def format_value(t: ColType, v: Any) -> str:
    """One cell of ``format_table``."""
    kind = t.kind
    if kind == "option":
        if v is None:
            return "(none = ())"
        return f"(some = {format_value(t.item, v)})"
    if v is None:
        return "(none = ())"
    if kind == "str":
        return visible(json.dumps(v, ensure_ascii=False))
    if kind == "bool":
        return "true" if v else "false"
    if kind in ("identity", "connection_id", "bytes"):
        return "0x" + bytes(v).hex()
    if kind == "timestamp":
        return _timestamp_text(v)
    if kind == "enum":
        return str(getattr(v, "name", v))
    if kind == "array":
        return "[" + ", ".join(format_value(t.item, x) for x in v) + "]"
    if kind == "float":
        return repr(float(v))
    return str(v)


def display_width(text: str) -> int:
    """Terminal cells ``text`` (as ``visible`` left it) takes: wide (East Asian) characters 2,
    combining marks 0, anything else 1."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.category(ch) in ("Mn", "Me"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def format_table(columns: list[str], types: list[ColType], rows: list[tuple[Any, ...]]) -> str:
    """A psql-style table of ``rows`` (tuples of values typed by ``types``)."""
    if not columns:
        return ""
    columns = [visible(c) for c in columns]
    cells = [[format_value(t, v) for t, v in zip(types, row, strict=True)] for row in rows]
    widths = [display_width(c) for c in columns]
    for line in cells:
        for i, cell in enumerate(line):
            w = display_width(cell)
            if w > widths[i]:
                widths[i] = w
    last = len(columns) - 1

    def render(values: list[str]) -> str:
        out = []
        for i, value in enumerate(values):
            if i == last:
                out.append(f" {value}")
            else:
                out.append(f" {value}{' ' * (widths[i] - display_width(value))} ")
        return "|".join(out).rstrip(" ") if values[last] == "" else "|".join(out)

    lines = [render(list(columns)), "+".join("-" * (w + 2) for w in widths)]
    lines.extend(render(line) for line in cells)
    return "\n".join(lines)


def json_value(t: ColType, v: Any) -> Any:
    """A JSON-friendly value: str/int/float/bool as is; Identity, ConnectionId and
    bytes as ``"0x…"`` hex strings; timestamps as RFC 3339 strings; options as
    ``{"some": v}`` / ``{"none": []}`` (SATS-JSON style); enums as the variant
    name; lists as lists. ``ColType.convert`` reads every one of these back."""
    kind = t.kind
    if kind == "option":
        return {"none": []} if v is None else {"some": json_value(t.item, v)}
    if v is None:
        return None
    if kind in ("identity", "connection_id", "bytes"):
        return "0x" + bytes(v).hex()
    if kind == "timestamp":
        return _timestamp_text(v)
    if kind == "enum":
        return getattr(v, "name", v)
    if kind == "array":
        return [json_value(t.item, x) for x in v]
    if kind == "bool":
        return bool(v)
    if kind == "float":
        return float(v)
    if kind == "int":
        return int(v)
    return v


def to_json_rows(columns: list[str], types: list[ColType], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Each row as ``{column: json_value}``. A repeated column name (``SELECT *``
    over a join) gets a ``#2``, ``#3`` … suffix so no value is lost."""
    keys: list[str] = []
    seen: dict[str, int] = {}
    for name in columns:
        n = seen.get(name, 0) + 1
        seen[name] = n
        keys.append(name if n == 1 else f"{name}#{n}")
    return [{k: json_value(t, v) for k, t, v in zip(keys, types, row, strict=True)} for row in rows]


def row_to_json(tdef: TableDef, row: Any) -> dict[str, Any]:
    """A stored row of ``tdef`` as ``{column: json_value}`` (for ``subscribe`` output)."""
    return {c.name: json_value(c.type, getattr(row, c.name)) for c in tdef.columns}
