"""Text someone else wrote, made safe to draw on a terminal: ``visible(text)``.

Every place that shows client-supplied text on a terminal (the chat TUI, the
``chat-server`` CLI, the module log) passes it through ``visible`` first, so a
name or message can never move the cursor, set the window title or the
clipboard, ring the bell, reorder what follows it, hide, or break a line.
Nothing is dropped: whatever a terminal would act on or not show is shown as a
readable stand-in instead.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["MAX_MARKS", "visible"]

MAX_MARKS = 4
"""Combining marks kept in a row; more (a "zalgo" flood, drawn over the lines around it) are escaped."""

_PICTURES = {**{c: 0x2400 + c for c in range(0x20)}, 0x7F: 0x2421}   # ␀ … ␟, ␡
_ONE_LINE = str.maketrans(_PICTURES)
_KEEP_LINES = str.maketrans({c: p for c, p in _PICTURES.items() if c not in (0x09, 0x0A)})
# Letters and marks that draw nothing, so a name made of them looks empty (Unicode's
# default-ignorable code points that are not format characters, less the variation
# selectors, which emoji need).
_INVISIBLE = "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"


def visible(text: str, *, multiline: bool = False) -> str:
    """``text`` with every code point a terminal could act on or hide replaced by a visible stand-in.

    - C0 controls (U+0000-U+001F, including tab, newline and CR) and DEL become their Unicode
      control pictures: ESC ``␛``, BEL ``␇``, LF ``␊``, CR ``␍``, TAB ``␉``, DEL ``␡``.
    - Other dangerous code points become ``<U+XXXX>`` (uppercase hex, at least four digits):
      C1 controls (U+0080-U+009F), format characters (category Cf: the bidi controls U+202A-U+202E,
      U+2066-U+2069, U+200E, U+200F, U+061C, zero-width U+200B-U+200D, U+2060-U+2064, BOM U+FEFF,
      U+180E, soft hyphen U+00AD, ...), line and paragraph separators U+2028/U+2029, surrogates,
      private use and unassigned code points (as of this Python's Unicode database), and letters
      that draw nothing (Hangul fillers U+115F, U+1160, U+3164, U+FFA0, U+034F, U+17B4, U+17B5).
    - In a run of combining marks, those after the first ``MAX_MARKS`` become ``<U+XXXX>``.
    - With ``multiline``, newline and tab are kept (message bodies); a CR is ``␍`` either way, so
      it can never return the cursor to overwrite a line.

    Everything else, spaces of any width included, is unchanged, so clean text comes back as is
    (the same object, cheaply). The result contains none of the above, so ``visible`` of it is
    itself. Draw the result; never parse it as markup.
    """
    if text.isprintable():
        if text.isascii():
            return text
    elif text.isascii():
        return text.translate(_KEEP_LINES if multiline else _ONE_LINE)
    elif not (text.replace("\n", "").replace("\t", "") if multiline else text).isprintable():
        keep = "\n\t" if multiline else ""
        text = "".join([c if c.isprintable() or c in keep else _other(c) for c in text])
    suspects, runs = _patterns()
    if suspects.search(text) is None:
        return text
    return runs.sub(_fix, text)


def _other(ch: str) -> str:
    """A non-printable code point's stand-in."""
    if ch <= "\x7f":
        return chr(_PICTURES[ord(ch)])
    if unicodedata.category(ch) == "Zs":
        return ch  # a space of another width (no-break, ideographic, ...) draws as one
    return _escape(ch)


def _escape(ch: str) -> str:
    return f"<U+{ord(ch):04X}>"


def _fix(match: re.Match[str]) -> str:
    """An invisible letter, or a run of marks and astral code points: marks after MAX_MARKS in a row escaped."""
    out: list[str] = []
    marks = 0
    for ch in match.group():
        if ch in _INVISIBLE:  # U+034F and U+17B4/5 are marks too; escaped, they end the run
            out.append(_escape(ch))
            marks = 0
            continue
        marks = marks + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        out.append(ch if marks <= MAX_MARKS else _escape(ch))
    return "".join(out)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(any code point that may need ``_fix``, the spans to hand it). Built on first use (some 20 ms):
    the marks are read from this Python's Unicode database rather than written down here. Astral
    code points all count as suspects: a character class with many astral ranges is slow to match."""
    marks = [i for i in range(0x300, 0x10000) if unicodedata.category(chr(i)) in ("Mn", "Me")]
    ranges: list[str] = []
    start = prev = marks[0]
    for cp in [*marks[1:], -1]:
        if cp != prev + 1:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = cp
        prev = cp
    mark_or_astral = "".join(ranges) + "\U00010000-\U0010ffff"
    return (re.compile(f"[{mark_or_astral}{_INVISIBLE}]"),
            re.compile(f"[{mark_or_astral}]{{{MAX_MARKS + 1},}}|[{_INVISIBLE}]"))
