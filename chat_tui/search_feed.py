"""What a search shows, and when. A plain object, not a widget: ``ChatApp`` makes one and routes
the search bar's messages, the log's ``EntriesChanged`` and the connection's search news to it.

Opening the bar (ctrl+f, ``/search TEXT``) notes where the view is. Each edit matches the text over
the log at once and makes current the newest match at or above the view's last row (the end, if
the view follows it), scrolled into view; with no match the view goes back to where it was. A step
moves to the next match; past the oldest one loaded, the server's older history is searched
(``ChatConnection.search_older``), and the page holding a match comes into the log with every
message after it (as history pages do: the log stays one unbroken stretch of time) and is jumped
to; at the first message the bar says ``no more matches``. An edit or closing the bar cancels a
search of the server. Escape closes the bar and returns the view to where it was (following the
end again if it was: weechat's ``search_stop``, urxvt's Escape); Tab closes it and leaves the view
at the match.
"""

from __future__ import annotations

from chat_tui.chat import ChatState
from chat_tui.connection import ChatConnection, Searched
from chat_tui.entries import EntryKind
from chat_tui.feeds import LogFeed
from chat_tui.search import Direction, History, Matches, OlderSearch, Query, status_text
from chat_tui.widgets.message_log import MessageLog, ViewAnchor
from chat_tui.widgets.search_bar import SearchBar

__all__ = ["SearchFeed"]


class SearchFeed:
    """Searches ``log`` for the text of ``bar``, and older history through ``connection``; pages of
    history found go into the log through ``log_feed``; ``state`` says where the history loaded ends."""

    def __init__(self, bar: SearchBar, log: MessageLog, log_feed: LogFeed, state: ChatState,
                 connection: ChatConnection) -> None:
        self.bar, self.log, self.log_feed, self.state, self.connection = bar, log, log_feed, state, connection
        self.matches = Matches(Query(""))
        self._active = False                   # the bar is open and its text matched
        self._anchor: ViewAnchor | None = None  # where the view was when the bar opened
        self._origin: tuple[int, int] | None = None   # the sort key of its last row's entry (None: the end)
        self._history = History.UNSEARCHED
        self._hunt: OlderSearch | None = None
        self._note = ""                        # what the last step found: "no more matches"
        self._error = ""

    def open(self, text: str | None = None) -> None:
        """Open the bar (focused) with ``text``, or with the last search's text selected."""
        if not self.bar.is_open:
            self._anchor = self.log.view_anchor()
            bottom = self.log.bottom_item()
            self._origin = None if bottom is None else bottom.sort
        self.bar.open(text)
        self.edit(self.bar.field.value)

    def edit(self, text: str) -> None:
        """The bar's text is ``text`` (``SearchBar.Edited``): match it from where the view was."""
        query = Query.of(text)
        if not self.bar.is_open or (self._active and query == self.matches.query):
            return
        self._active = True
        self._stop_hunt()
        self.matches = Matches(query)
        self._history, self._note = History.UNSEARCHED, ""
        self._recount()
        self.matches.start_at(self._origin)
        if self.matches.current is None:
            self.log.restore_view(self._anchor)
        self._show(scroll=True)

    def step(self, direction: Direction) -> None:
        """To the next match ``direction`` (``SearchBar.Step``); past the oldest loaded, older history."""
        self._note = ""
        if not self.matches.query.needle:
            return
        if self.matches.step(direction):
            self._show(scroll=True)
            return
        if direction is Direction.NEWER:
            self._note = "no newer match" if self.matches.items else ""
        elif self._history in (History.UNSEARCHED, History.FAILED):
            self._search_older()
        elif self._history is History.SEARCHED:
            self._note = "no more matches"
        self._show()

    def close(self, stay: bool) -> None:
        """Close the bar (``SearchBar.Closed``): the view goes back to where it was unless ``stay``."""
        self._stop_hunt()
        self._active = False
        self.bar.shut()
        self.log.show_matches(None)
        if not stay:
            self.log.restore_view(self._anchor)

    def log_changed(self) -> None:
        """The log's entries changed (``MessageLog.EntriesChanged``): count again, the view kept."""
        if self._active:
            self._recount()
            self._show()

    def progress(self, search: OlderSearch) -> None:
        """A page of older history held no match (``SearchProgress``)."""
        if search is self._hunt:
            self._show()

    def searched(self, msg: Searched) -> None:
        """The search of older history ended (``Searched``): jump to the match it found, if any."""
        if msg.search is not self._hunt:
            return   # cancelled meanwhile
        self._hunt = None
        if msg.error:
            self._history, self._error = History.FAILED, msg.error
        elif not msg.messages:
            self._history, self._note = History.SEARCHED, "no more matches"
        else:
            self.log_feed.older(msg.since, msg.messages)
            self._history = History.UNSEARCHED if msg.since is not None else History.SEARCHED
            self._recount()
            if not self.matches.step(Direction.OLDER):
                # The log drew it otherwise (a name changed meanwhile): search on from there.
                self.step(Direction.OLDER)
                return
            self._show(scroll=True)
            return
        self._show()

    # -- helpers ----------------------------------------------------------------------
    def _search_older(self) -> None:
        floor = self.state.history_floor
        if floor is None:
            self._history, self._note = History.SEARCHED, "no more matches"
            return
        self._hunt = OlderSearch(self.matches.query, self.state.names(), floor, self._spacing())
        self._history = History.SEARCHING
        self.connection.search_older(self._hunt)

    def _stop_hunt(self) -> None:
        if self._hunt is not None:
            self.connection.cancel_search()
            self._hunt = None

    def _spacing(self) -> float | None:
        """The µs between the messages loaded, on average (older ones are guessed to be as dense)."""
        times = [item.entry.time for item in self.log.items if item.entry.kind is EntryKind.MESSAGE]
        return (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 and times[-1] > times[0] else None

    def _recount(self) -> None:
        self.matches.recount(self.log.items, self.log.sender_name)

    def _show(self, scroll: bool = False) -> None:
        matches = self.matches
        current = matches.current
        self.log.show_matches(matches.query if matches.query.needle else None, current)
        if scroll and current is not None:
            self.log.scroll_to_item(current)
        history = self._history
        if history is History.UNSEARCHED and self.state.history_floor is None:
            history = History.SEARCHED   # older pages came in meanwhile, to the first message
        hunt = self._hunt
        self.bar.status = status_text(matches.query, matches.position, history, note=self._note,
                                      progress=(hunt.searched, hunt.total) if hunt else (0, None),
                                      error=self._error)
