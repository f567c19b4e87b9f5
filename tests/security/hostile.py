"""Hostile text: names and messages a stranger could send to make other people's terminals act.

Each entry is (label, text). The labels name the attack; the texts are what a client can put in a
``set_name`` or ``send_message`` argument (or, with the module's checks bypassed, in a row).
"""

from __future__ import annotations

import base64
import unicodedata

ESC, BEL, ST = "\x1b", "\x07", "\x1b\\"

#: (label, text): every one must reach a terminal only in its ``visible`` form.
CORPUS: list[tuple[str, str]] = [
    ("OSC 0 window title", f"{ESC}]0;pwned{BEL}"),
    ("OSC 2 window title, ST-terminated", f"{ESC}]2;pwned{ST}"),
    ("OSC 52 clipboard", f"{ESC}]52;c;{base64.b64encode(b'rm -rf ~').decode()}{BEL}"),
    ("OSC 8 hyperlink", f"{ESC}]8;;http://evil.example/{BEL}click{ESC}]8;;{BEL}"),
    ("clear screen and home", f"{ESC}[2J{ESC}[H"),
    ("cursor up and erase line", f"{ESC}[1A{ESC}[2Kfake line"),
    ("SGR colours", f"{ESC}[31;1mred{ESC}[0m"),
    ("DCS", f"{ESC}P+q544e{ST}"),
    ("bell", f"ding{BEL}{BEL}{BEL}"),
    ("backspaces", "admin\b\b\b\b\bguest"),
    ("CR overwrite", "innocent\rEVIL    "),
    ("newline", "Alice\nBob connected."),
    ("CRLF", "line\r\nnext"),
    ("vertical tab and form feed", "a\vb\fc"),
    ("NUL", "nul\x00byte"),
    ("DEL", "del\x7fete"),
    ("C1 CSI clear screen", "\x9b2J\x9bH"),
    ("8-bit OSC title", "\x9d0;x\x9c"),
    ("NEL", "next\x85line"),
    ("RLO bidi override", "\u202eevil.exe\u202c"),
    ("LRO/LRE/RLE/PDF", "\u202d\u202a\u202bx\u202c"),
    ("bidi isolates", "\u2066\u2067\u2068x\u2069"),
    ("bidi marks", "\u200e\u200f\u061c"),
    ("zero-width space", "ad\u200bmin"),
    ("zero-width joiner and non-joiner", "a\u200db\u200cc"),
    ("word joiner and invisible operators", "a\u2060\u2061\u2062\u2063\u2064b"),
    ("BOM", "\ufeffBOM"),
    ("soft hyphen", "soft\u00adhyphen"),
    ("Mongolian vowel separator", "a\u180eb"),
    ("line and paragraph separators", "a\u2028b\u2029c"),
    ("tag characters", "flag\U000e0041\U000e0042\U000e007f"),
    ("Hangul filler (a blank-looking name)", "\u3164"),
    ("private use", "\ue000\U000f0000"),
    ("combining mark flood", "Z" + "\u0336\u0334\u0335\u0301\u0300\u0302" * 30),
    ("very long name", "N" * 5_000),
    ("Rich markup", "[bold red]x[/]"),
    ("Rich link markup", "[link=http://evil.example]x[/link]"),
    ("Textual action markup", "[@click=app.quit]x[/]"),
    ("Textual variable markup", "[$accent]x[/]"),
    ("all together", f"{ESC}]0;t{BEL}\u202e[b]x[/b]\u200b\r\n\x9b2J"),
]

#: Code points none of which may reach a terminal raw: C0 (bar newline in multi-line text),
#: DEL, C1, the format characters (bidi controls, zero-width, BOM, soft hyphen, tags ...),
#: separators, surrogates, private use, unassigned, and letters that draw nothing.
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
INVISIBLE = "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"


def forbidden(text: str, *, allow: str = "") -> list[str]:
    """The code points of ``text`` that must never be drawn raw (``allow``: the ones that may)."""
    return [f"U+{ord(c):04X}" for c in text
            if c not in allow and (unicodedata.category(c) in FORBIDDEN_CATEGORIES or c in INVISIBLE)]


MARKUP = [text for label, text in CORPUS if "markup" in label]
