"""SVG snapshots of the real app in fixed scenes (frozen clock, identities, theme, size).

Update after an intended change with ``pytest tests/tui/snapshots --snapshot-update``
and look at the SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .. import scenes


@pytest.fixture(autouse=True)
def _frozen() -> Iterator[None]:
    with scenes.frozen():
        yield


def test_main_screen(snap_compare) -> None:  # noqa: ANN001
    """Three users talking; presence, rename and day-change lines; a mention of me highlighted."""
    assert snap_compare(scenes.make_app(), terminal_size=(110, 30), run_before=scenes.conversation)


def test_help(snap_compare) -> None:  # noqa: ANN001
    """F1 shows every command and key."""
    async def run_before(pilot) -> None:  # noqa: ANN001
        await scenes.conversation(pilot)
        await pilot.press("f1")
        await pilot.pause()
    assert snap_compare(scenes.make_app(), terminal_size=(110, 30), run_before=run_before)


def test_errors(snap_compare) -> None:  # noqa: ANN001
    """An unknown /command refused (kept in the input), a failed set_name in the log."""
    assert snap_compare(scenes.make_app(), terminal_size=(110, 30), run_before=scenes.errors)


def test_long_history_scrolled_back(snap_compare) -> None:  # noqa: ANN001
    """2,000 messages, scrolled up three pages; new messages below are counted, not jumped to."""
    assert snap_compare(scenes.make_app(), terminal_size=(110, 30), run_before=scenes.long_history)


def test_offline_with_queued_message(snap_compare) -> None:  # noqa: ANN001
    """The status bar says offline at once; what was typed is shown pending and counted."""
    assert snap_compare(scenes.make_app(), terminal_size=(110, 30), run_before=scenes.offline)


def test_narrow_terminal(snap_compare) -> None:  # noqa: ANN001
    """Below 80 columns the user list hides; the status bar keeps the online count."""
    assert snap_compare(scenes.make_app(), terminal_size=(60, 24), run_before=scenes.conversation)


def test_filtered_presence_and_an_action(snap_compare) -> None:  # noqa: ANN001
    """F2 hides the connect, disconnect and rename lines (the border says so); /me shows as * Carol waves."""
    assert snap_compare(scenes.make_app(), terminal_size=(110, 30), run_before=scenes.filtered)


def test_unread_marker(snap_compare) -> None:  # noqa: ANN001
    """The terminal lost focus and two messages came: the unread line above them, `2 unread, 1 mention`
    in the status line, `(2, @1)` first in the title."""
    assert snap_compare(scenes.make_app(), terminal_size=(110, 30), run_before=scenes.unread)


def test_search(snap_compare) -> None:  # noqa: ANN001
    """ctrl+f, "the", Enter: every match marked, the current one (the second newest) brighter, the bar
    counting them."""
    assert snap_compare(scenes.make_app(), terminal_size=(110, 30), run_before=scenes.search)


def test_wide_terminal(snap_compare) -> None:  # noqa: ANN001
    """At 200 columns the user list keeps its width, the name column stays capped and the log takes the rest."""
    assert snap_compare(scenes.make_app(), terminal_size=(200, 30), run_before=scenes.conversation)
