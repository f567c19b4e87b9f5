"""The search's plain parts: what a query matches (``chat_tui.search``), how older history is paged,
what the bar says, and where ``log_search`` draws the matches in a rendered entry."""

from __future__ import annotations

import time

from rich.style import Style

from chat_tui.chat import ChatState
from chat_tui.entries import EntryKind, LogEntry
from chat_tui.search import Direction, History, Matches, OlderSearch, Query, drawn_text, status_text
from chat_tui.widgets.log_rows import Item, render_block, shown_text
from chat_tui.widgets.log_search import mark_matches
from chat_tui.wrap import wrap_text
from db_core.types import Identity

ALICE, BOB = bytes([1]) * 32, bytes([2]) * 32
NAMES = {ALICE: "Alice", BOB: "Bob"}


def entry(key: int, text: str, sender: bytes = BOB, kind: EntryKind = EntryKind.MESSAGE) -> LogEntry:
    action = text.startswith("/me ")
    return LogEntry(key=key, time=key * 1_000_000, kind=kind, text=text, sender=sender, action=action)


def items(*entries: LogEntry) -> list[Item]:
    return [Item(e, i) for i, e in enumerate(entries)]


def name_of(e: LogEntry) -> str:
    return NAMES.get(e.sender, e.name)


def matched(query: str, log: list[Item]) -> list[object]:
    """The keys of the entries in ``log`` that ``query`` matches."""
    m = Matches(Query.of(query))
    m.recount(log, name_of)
    return [item.entry.key for item in m.items]


# -- Query ---------------------------------------------------------------------------------------
def test_smart_case_ignores_case_unless_the_query_has_a_capital() -> None:
    assert not Query.of("deploy").case_sensitive and Query.of("Deploy").case_sensitive
    assert Query.of("deploy").spans("Deploy the DEPLOY") == [(0, 6), (11, 17)]
    assert Query.of("Deploy").spans("Deploy the DEPLOY") == [(0, 6)]
    assert Query.of("").spans("anything") == []


def test_spans_are_offsets_in_the_text_even_where_casefolding_lengthens_it() -> None:
    # "ß" folds to "ss": the match of "strasse" in "Straße" is the whole word, "x" stays where it is.
    assert Query.of("strasse").spans("Straße x") == [(0, 6)]
    assert Query.of("x").spans("Straße x") == [(7, 8)]
    assert Query.of("e").spans("ßeß e") == [(1, 2), (4, 5)]


def test_a_query_is_made_visible_so_an_escape_matches_what_the_log_draws() -> None:
    query = Query.of("\x1b]0;x\x07")
    assert query.text == "␛]0;x␇" and "\x1b" not in query.text
    assert query.spans("said ␛]0;x␇ once") == [(5, 11)]


# -- Matches -------------------------------------------------------------------------------------
def test_matches_text_as_drawn_and_sender_names_but_not_across_lines() -> None:
    log = items(
        entry(0, "deploy went fine"),
        entry(1, "/me waves at everyone", sender=ALICE),   # drawn "* Alice waves at everyone"
        entry(2, "first line\nsecond line"),
        entry(3, "tabs\there"),
        entry(4, "Alice renamed to Al.", sender=b"", kind=EntryKind.PRESENCE),
        entry(5, "nothing to see", sender=ALICE),
    )
    assert matched("deploy", log) == [0]
    assert matched("alice waves", log) == [1]           # an action's name is in its text
    assert matched("line second", log) == [] and matched("line\nsecond", log) == []
    assert matched("second line", log) == [2]
    assert matched("tabs    here", log) == [3]          # a tab is drawn as spaces
    assert matched("alice", log) == [1, 4, 5]           # by name (5), in an action (1), in a line (4)
    assert matched("Alice", log) == [1, 4, 5]
    assert matched("ALICE", log) == []


def test_hidden_entries_do_not_match_and_a_rename_matches_under_the_new_name() -> None:
    log = items(entry(0, "hello"), entry(1, "hello", kind=EntryKind.PRESENCE), entry(2, "/me waves", sender=ALICE))
    log[1].shown = False
    assert matched("hello", log) == [0]
    assert matched("alice waves", log) == [2]
    NAMES[ALICE] = "Alicia"
    try:
        assert matched("alice waves", log) == [] and matched("alicia waves", log) == [2]
    finally:
        NAMES[ALICE] = "Alice"


def test_steps_and_positions_count_from_the_newest() -> None:
    log = items(*(entry(i, "hit" if i % 2 == 0 else "miss") for i in range(7)))   # hits: 0, 2, 4, 6
    m = Matches(Query.of("hit"))
    m.recount(log, name_of)
    m.start_at(None)
    assert m.current is log[6] and m.position == (1, 4)
    assert m.step(Direction.OLDER) and m.current is log[4] and m.position == (2, 4)
    assert m.step(Direction.OLDER) and m.step(Direction.OLDER) and m.position == (4, 4)
    assert not m.step(Direction.OLDER) and m.current is log[0]          # the oldest: nothing moves
    assert m.step(Direction.NEWER) and m.current is log[2]
    m.start_at(log[3].sort)                                             # from a row in the middle: older first
    assert m.current is log[2]
    m.start_at((-1, -1))                                                # above every match: the oldest
    assert m.current is log[0]


def test_recount_keeps_the_current_match_or_falls_back_to_the_nearest_older() -> None:
    log = items(*(entry(i, "hit") for i in range(4)))
    m = Matches(Query.of("hit"))
    m.recount(log, name_of)
    m.start_at(log[2].sort)
    older = items(entry(-2, "hit"), entry(-1, "no"))
    m.recount(older + log, name_of)                   # a page of history came in
    assert m.current is log[2] and m.position == (2, 5)
    m.recount([it for it in log if it is not log[2]], name_of)   # the current one went
    assert m.current is log[1]


def test_matching_a_hundred_thousand_entries_is_quick() -> None:
    words = "the quick brown fox jumps over a lazy dog while we deploy the build".split()
    log = items(*(entry(i, " ".join(words[(i + k) % len(words)] for k in range(9)) + f" #{i}",
                        sender=ALICE if i % 3 else BOB) for i in range(100_000)))
    timings = []
    for text in ("d", "de", "deploy", "Deploy", "bob", "zzz"):
        m = Matches(Query.of(text))
        start = time.perf_counter()
        m.recount(log, name_of)
        timings.append(time.perf_counter() - start)
    # Generous for a loaded machine: each pass is about 25 ms here, the first (making the texts) 70.
    assert max(timings) < 0.5, timings
    assert sum(timings[1:]) / len(timings[1:]) < 0.15, timings


# -- the bar's words -----------------------------------------------------------------------------
def test_status_text() -> None:
    q = Query.of("x")
    assert status_text(Query(""), (0, 0), History.UNSEARCHED).startswith("Enter/↑ older")
    assert status_text(q, (3, 17), History.SEARCHED) == "3/17"
    assert status_text(q, (3, 17), History.UNSEARCHED) == "3/17+"
    assert status_text(q, (0, 0), History.UNSEARCHED) == "no match loaded · Enter searches older history"
    assert status_text(q, (0, 0), History.SEARCHED, note="no more matches") == "no match · no more matches"
    assert (status_text(q, (17, 17), History.SEARCHING, progress=(5000, 95000))
            == "17/17+ · searching older history… 5,000 of 95,000")
    assert status_text(q, (1, 2), History.FAILED, error="boom\x1b[2J") == "1/2+ · older history: boom␛[2J"


# -- OlderSearch ---------------------------------------------------------------------------------
def test_older_search_pages_by_the_times_newest_first_growing_to_the_first_message() -> None:
    search = OlderSearch(Query.of("x"), NAMES, before=1_000_000)
    assert search.times_wanted() == (None, 1_000_000)              # every older message's time, at once
    times = list(range(0, 60_000, 2)) + [900_000] * 3 + list(range(500_000, 500_000 + 30_000))   # bursts, a gap
    search.got_times(None, reversed(times))
    assert search.total == len(times) == 60_003 and search.times_wanted() is None
    pages = []
    while not search.done:
        assert search.times_wanted() is None
        lo, hi = search.page()
        count = sum(1 for t in times if (lo is None or t >= lo) and t < hi)
        pages.append(count)
        search.passed(lo, count)
    assert pages == [5_000, 20_000, 35_003] and search.searched == search.total   # 5,000, 20,000, the rest


def test_older_search_asks_for_less_when_the_server_refuses_too_much() -> None:
    search = OlderSearch(Query.of("x"), NAMES, before=10_000_000_000, spacing=10.0)
    assert search.fewer_times()                                     # not every time at once: 50,000 at 10 µs
    assert search.times_wanted() == (10_000_000_000 - 500_000, 10_000_000_000)
    search.got_times(10_000_000_000 - 500_000, [])                  # a quiet stretch: sixteen times as far next
    assert search.hi == 10_000_000_000 - 500_000 and not search.done
    assert search.times_wanted() == (search.hi - 8_000_000, search.hi)
    lo = search.hi - 8_000_000
    search.got_times(lo, range(lo, lo + 12_000))
    assert search.total is None and search.times_wanted() is None
    assert search.page() == (lo + 12_000 - 5_000, search.hi)       # the newest 5,000
    assert search.smaller_page()                                    # too many bytes: half as many
    assert search.page() == (lo + 12_000 - 2_500, search.hi)
    search.passed(lo + 12_000 - 2_500, 2_500)
    assert search.page() == (lo, lo + 9_500)                        # the rest of the stretch fits a page
    search.passed(lo, 9_500)
    assert search.times_wanted() is not None and search.times_wanted()[1] == lo   # then further back
    search.got_times(None, [5, 4])
    assert search.total == 12_002 and search.page() == (None, lo)
    search.passed(None, 2)
    assert search.done and search.searched == 12_002


def test_older_search_matches_wire_rows_as_the_log_draws_them() -> None:
    def found(query: str, text: str, sender: bytes = BOB) -> bool:
        return OlderSearch(Query.of(query), NAMES, 0).matches([[sender, 0, text]], 0, 2)

    assert found("deploy", "we Deploy today") and not found("Deploy", "we deploy today")
    assert found("alice waves", "/me waves", ALICE) and not found("me waves", "/me waves", ALICE)
    assert found("bob", "anything") and not found("bob", "anything", ALICE)
    assert found("tabs    here", "tabs\there") and not found("one two", "one\ntwo")
    # The same rules as the log's own matching, message by message.
    state = ChatState()
    state.me = Identity(ALICE)
    for text, sender in [("/me waves", ALICE), ("tabs\there", BOB), ("x\ny", ALICE), ("/me ", BOB)]:
        row = type("Row", (), {"sender": sender, "sent": 1, "text": text})()
        log = [Item(state.message_entry(row), 0)]
        for query in ("waves", "alice", "bob", "tabs    here", "x", "/me"):
            assert found(query, text, sender) == bool(matched(query, log)), (query, text)


# -- drawing -------------------------------------------------------------------------------------
MARK = Style(bgcolor="red")


def marked_cells(e: LogEntry, query: str, width: int = 30, name_column: int = 5) -> list[list[tuple[int, str]]]:
    """Per row of ``e`` as rendered, the texts drawn in MARK and the cells they start at."""
    text_width = width - 6 - name_column - 3
    name = NAMES.get(e.sender, "")
    block = render_block(e, False, width, name_column, text_width, lambda _: Style(), name)
    plain, strips = mark_matches(block, e, False, Query.of(query), MARK, name, name_column, text_width)
    assert len(strips) == len(wrap_text(shown_text(e, name), text_width))
    rows = []
    for strip in strips:
        assert strip.cell_length == width
        cell, row = 0, []
        for seg in strip:
            if seg.style and seg.style.bgcolor == MARK.bgcolor:
                row.append((cell, seg.text))
            cell += seg.cell_length
        rows.append(row)
    return rows


def marked(e: LogEntry, query: str, width: int = 30, name_column: int = 5) -> list[list[str]]:
    """Per row of ``e`` as rendered, the texts drawn in MARK."""
    return [[text for _, text in row] for row in marked_cells(e, query, width, name_column)]


def test_a_match_cut_by_the_wrap_is_marked_on_both_rows() -> None:
    # 16 cells of text: "the quick brown" / "fox jumps over" / ...
    e = entry(0, "the quick brown fox jumps over the lazy dog")
    assert marked(e, "brown fox") == [["brown"], ["fox"], []]
    assert marked(e, "the") == [["the"], [], ["the"]]


def test_wide_characters_keep_the_marks_in_their_cells() -> None:
    # The text column starts at cell 14 (time 6, name 5, " │ " 3) and is 16 cells wide.
    e = entry(0, "漢字 and 漢字 again")                        # "漢字 and 漢字" / "again"
    assert marked_cells(e, "字") == [[(16, "字"), (25, "字")], []]
    assert marked_cells(e, "字 again") == [[(25, "字")], [(14, "again")]]
    e = entry(1, "😀😀😀😀😀😀😀😀😀x😀")                    # 9 emoji are 18 cells: the wrap breaks the run
    assert marked_cells(e, "x") == [[], [(16, "x")]]


def test_the_name_column_is_marked_and_a_cut_name_whole() -> None:
    NAMES[BOB] = "Bobby Tables"
    try:
        rows = marked(entry(0, "hi"), "bob", name_column=12)
        assert rows == [["Bob"]]
        rows = marked(entry(0, "hi"), "tables", name_column=6)   # drawn "Bobby…": the match is cut off
        assert rows == [["Bobby…"]]
    finally:
        NAMES[BOB] = "Bob"


def test_nothing_marked_is_the_same_block() -> None:
    e = entry(0, "hello")
    block = render_block(e, False, 30, 5, 16, lambda _: Style(), "Bob")
    assert mark_matches(block, e, False, Query.of("zzz"), MARK, "Bob", 5, 16) is block
    assert drawn_text("a\tb\nc") == "a   b\nc"
