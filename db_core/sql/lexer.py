"""SQL text -> tokens: words, quoted identifiers, literals, parameters, operators.

Comments (``-- …`` and ``/* … */``) are skipped; the last token is ``eof``.
Anything that is no token raises ``SqlError`` (``syntax error: …``) at its position.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from db_core.sql.ast import SqlError, is_word_char, is_word_start

__all__ = ["Token", "TokenKind", "tokenize", "syntax_error"]

TokenKind = typing.Literal["word", "qident", "int", "float", "string", "hex", "param", "op", "eof"]

_DIGITS = "0123456789"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_OPS2 = ("<>", "!=", "<=", ">=", "||", "::")
_OPS1 = "=<>(),.*;+-/%"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    value: typing.Any
    pos: int
    end: int


def syntax_error(text: str, message: str, pos: int) -> SqlError:
    return SqlError(f"syntax error: {message}", pos, text)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with one ``eof`` token."""
    toks: list[Token] = []
    n = len(text)
    i = 0
    while True:
        while i < n:  # whitespace and comments
            ch = text[i]
            if ch.isspace():
                i += 1
            elif text.startswith("--", i):
                j = text.find("\n", i)
                i = n if j < 0 else j + 1
            elif text.startswith("/*", i):
                j = text.find("*/", i + 2)
                if j < 0:
                    raise syntax_error(text, "unterminated comment", i)
                i = j + 2
            else:
                break
        if i >= n:
            end = toks[-1].end if toks else 0
            toks.append(Token("eof", None, end, end))
            return toks
        start = i
        ch = text[i]
        if ch in "xX" and i + 1 < n and text[i + 1] == "'":
            j = text.find("'", i + 2)
            if j < 0:
                raise syntax_error(text, "unterminated hex literal", start)
            toks.append(Token("hex", _hex_bytes(text, text[i + 2:j], start), start, j + 1))
            i = j + 1
        elif is_word_start(ch):
            i += 1
            while i < n and is_word_char(text[i]):
                i += 1
            toks.append(Token("word", text[start:i], start, i))
        elif ch in _DIGITS:
            tok = _number(text, start)
            toks.append(tok)
            i = tok.end
        elif ch == "'" or ch == '"':
            value, i = _quoted(text, start)
            if ch == "'":
                toks.append(Token("string", value, start, i))
            else:
                if not value:
                    raise syntax_error(text, "empty quoted identifier", start)
                toks.append(Token("qident", value, start, i))
        elif ch == ":" and i + 1 < n and is_word_start(text[i + 1]):
            i += 2
            while i < n and is_word_char(text[i]):
                i += 1
            toks.append(Token("param", text[start + 1:i], start, i))
        elif text.startswith(_OPS2, i):
            toks.append(Token("op", text[i:i + 2], start, i + 2))
            i += 2
        elif ch in _OPS1:
            toks.append(Token("op", ch, start, i + 1))
            i += 1
        else:
            shown = f"`{ch}`" if ch.isprintable() else repr(ch)
            raise syntax_error(text, f"unexpected character {shown}", start)


def _quoted(text: str, start: int) -> tuple[str, int]:
    """Read a '…' or "…" token whose doubled quote is an escape; return (value, end)."""
    q = text[start]
    parts = []
    j = start + 1
    while True:
        k = text.find(q, j)
        if k < 0:
            what = "string" if q == "'" else "quoted identifier"
            raise syntax_error(text, f"unterminated {what}", start)
        parts.append(text[j:k])
        if text.startswith(q, k + 1):
            parts.append(q)
            j = k + 2
        else:
            return "".join(parts), k + 1


def _hex_bytes(text: str, digits: str, start: int) -> bytes:
    if not all(c in _HEX_DIGITS for c in digits):
        raise syntax_error(text, "invalid hex literal", start)
    if len(digits) % 2:
        raise syntax_error(text, "hex literal has an odd number of digits", start)
    return bytes.fromhex(digits)


def _number(text: str, start: int) -> Token:
    n = len(text)
    j = start
    while j < n and text[j] in _DIGITS:
        j += 1
    if j == start + 1 and text[start] == "0" and j < n and text[j] in "xX":
        k = j + 1
        while k < n and is_word_char(text[k]):
            k += 1
        digits = text[j + 1:k]
        if not digits:
            raise syntax_error(text, "invalid hex literal", start)
        return Token("hex", _hex_bytes(text, digits, start), start, k)
    is_float = False
    if j + 1 < n and text[j] == "." and text[j + 1] in _DIGITS:
        j += 1
        while j < n and text[j] in _DIGITS:
            j += 1
        is_float = True
    if j < n and text[j] in "eE":
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        if k < n and text[k] in _DIGITS:
            j = k
            while j < n and text[j] in _DIGITS:
                j += 1
            is_float = True
    if j < n and is_word_char(text[j]):
        k = j
        while k < n and is_word_char(text[k]):
            k += 1
        raise syntax_error(text, f"invalid number `{text[start:k]}`", start)
    raw = text[start:j]
    if is_float:
        return Token("float", float(raw), start, j)
    try:
        return Token("int", int(raw), start, j)
    except ValueError:  # beyond Python's int/str conversion limit
        raise syntax_error(text, "integer literal is too long", start) from None
