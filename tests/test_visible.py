"""``db_core.visible``: text someone else wrote, safe to draw on a terminal, checked against a slow model."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db_core.visible import MAX_MARKS, visible

from .security.hostile import CORPUS, INVISIBLE, forbidden
from .security.hostile import FORBIDDEN_CATEGORIES as DANGEROUS


def model(text: str, multiline: bool) -> str:
    """The contract of ``visible``, one code point at a time."""
    out: list[str] = []
    marks = 0
    for ch in text:
        category = unicodedata.category(ch)
        if multiline and ch in "\n\t":
            shown = ch
        elif ord(ch) < 0x20:
            shown = chr(0x2400 + ord(ch))
        elif ch == "\x7f":
            shown = "\u2421"
        elif category in DANGEROUS or ch in INVISIBLE:
            shown = f"<U+{ord(ch):04X}>"
        elif category in ("Mn", "Me"):
            marks += 1
            out.append(ch if marks <= MAX_MARKS else f"<U+{ord(ch):04X}>")
            continue
        else:
            shown = ch
        marks = 0
        out.append(shown)
    return "".join(out)


def longest_mark_run(text: str) -> int:
    longest = run = 0
    for ch in text:
        run = run + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        longest = max(longest, run)
    return longest


# Every code point, surrogates included, with the troublesome ones and runs of marks drawn often.
# (Pieces joined, not one alphabet: hypothesis would merge the alphabets and favour low code points.)
SPECIAL = INVISIBLE + "\n\t\r\x1b\x7f\x85\x9b\u2028\u2029\u202e\u2066\u200b\u200d\ufeff\u00ad\U000e0041\ud800"
piece = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=6),
    st.characters(max_codepoint=0x9f, exclude_categories=()),
    st.characters(categories=["Cf", "Mn", "Me", "Zs", "Co", "Cs"]),
    st.sampled_from(SPECIAL),
    st.text(st.characters(categories=["Mn", "Me"]), min_size=MAX_MARKS - 1, max_size=MAX_MARKS + 3),
)
texts = st.lists(piece, max_size=10).map("".join)


@settings(max_examples=600, deadline=None)
@given(text=texts, multiline=st.booleans())
def test_visible_is_the_model(text: str, multiline: bool) -> None:
    assert visible(text, multiline=multiline) == model(text, multiline)


@settings(max_examples=300, deadline=None)
@given(text=texts, multiline=st.booleans())
def test_nothing_dangerous_survives_and_twice_is_once(text: str, multiline: bool) -> None:
    shown = visible(text, multiline=multiline)
    assert forbidden(shown, allow="\n\t" if multiline else "") == []
    assert longest_mark_run(shown) <= MAX_MARKS
    shown.encode("utf-8")   # no lone surrogate left: printing it cannot fail
    assert visible(shown, multiline=multiline) == shown
    assert visible(visible(text), multiline=True) == visible(text)   # one-line output is safe everywhere
    assert len(shown) >= len(text)  # nothing is dropped


clean_char = st.characters(exclude_categories=tuple(DANGEROUS) + ("Mn", "Me")).filter(lambda c: c not in INVISIBLE)


@settings(max_examples=300, deadline=None)
@given(text=st.text(clean_char, max_size=60))
def test_clean_text_is_unchanged(text: str) -> None:
    assert visible(text) is text or visible(text) == text
    assert visible(text, multiline=True) == text


def test_conventions() -> None:
    assert visible("\x1b]0;pwned\x07") == "␛]0;pwned␇"
    assert visible("a\nb\tc\rd") == "a␊b␉c␍d"
    assert visible("a\nb\tc\rd", multiline=True) == "a\nb\tc␍d"
    assert visible("\x7f\x00") == "␡␀"
    assert visible("\x9b2J") == "<U+009B>2J"
    assert visible("\u202eexe.txt") == "<U+202E>exe.txt"
    assert visible("x\U000e0041") == "x<U+E0041>"
    assert visible("e" + "\u0301" * 6) == "e" + "\u0301" * MAX_MARKS + "<U+0301>" * (6 - MAX_MARKS)
    assert visible("\u3164") == "<U+3164>"
    # What people write stays as they wrote it: accents, CJK, emoji with variation selectors,
    # Vietnamese stacked diacritics, spaces of other widths.
    for text in ["café", "日本語", "❤️ 👍🏽", "Tiếng Việt", "a\u00a0b\u3000c", "[bold]not markup[/]"]:
        assert visible(text) == text


@pytest.mark.parametrize("label, text", CORPUS, ids=[label for label, _ in CORPUS])
def test_the_hostile_corpus_is_made_visible(label: str, text: str) -> None:
    for multiline in (False, True):
        shown = visible(text, multiline=multiline)
        assert forbidden(shown, allow="\n\t" if multiline else "") == [], label
        assert "\x1b" not in shown and "\r" not in shown and "\x07" not in shown
        assert longest_mark_run(shown) <= MAX_MARKS
    assert "\n" not in visible(text)
