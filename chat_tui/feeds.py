"""What the app's views are fed from the model, and when. Plain objects, not widgets, with no clock
(the app stamps entries); ``ChatApp`` makes one of each and routes the connection's news to them.

``LogFeed``: what goes into the message log, at once or batched for one repaint: entries, the
unsent message and its end, pages of history, and the trim that keeps a long session bounded.
The trim runs in the same call as the add that passes ``LOG_MAX`` (never on a timer or a message
of its own), so once an entry is on screen the log, the model and the SDK's cache have all let go
of what was dropped.

``UsersFeed``: the user list and what follows from it (the names the log draws its messages
under, the status bar's count, the composer's completion, the title), redrawn at most every
``USERS_EVERY``.

``UnreadFeed``: what ``chat_tui.unread`` says, shown: the unread line in the log, the counts in the
status bar and the title, the mentions as the bell or a desktop notification.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from chat_tui import terminal
from chat_tui.chat import ChatState
from chat_tui.connection import ChatConnection
from chat_tui.entries import EntryKind, LogEntry
from chat_tui.unread import Unread
from chat_tui.widgets.composer import Composer
from chat_tui.widgets.message_log import MessageLog
from chat_tui.widgets.status_bar import StatusBar
from chat_tui.widgets.user_list import UserList
from db_core.visible import visible

FLUSH_EVERY = 0.1   # seconds: how long arriving messages may wait to be shown together
USERS_EVERY = 0.1   # seconds: presence storms (many clients at once) redraw the list this often, not per change

SetTimer = Callable[[float, Callable[[], None]], object]
"""The app's ``set_timer(delay, callback)``."""


class LogFeed:
    """Feeds ``log`` the entries of ``state``; older pages and trims go through ``connection``."""

    def __init__(self, log: MessageLog, state: ChatState, connection: ChatConnection, set_timer: SetTimer) -> None:
        self.log, self.state, self.connection = log, state, connection
        self._set_timer = set_timer
        self._incoming: list[LogEntry] = []
        self._flush_pending = False

    def show(self, entries: list[LogEntry], *, soon: bool = False) -> None:
        """Show ``entries``; with ``soon``, within FLUSH_EVERY, together with others that arrive
        meanwhile (a busy room repaints a few times a second, not per message, so keys stay quick)."""
        self._incoming += entries
        if not soon:
            self.flush()
        elif self._incoming and not self._flush_pending:
            self._flush_pending = True
            self._set_timer(FLUSH_EVERY, self.flush)

    @property
    def pending(self) -> bool:
        """Entries wait for the flush timer: the log does not show them yet."""
        return self._flush_pending

    def flush(self) -> None:
        """Show the entries waiting now, then trim the log if it passed ``LOG_MAX``."""
        self._flush_pending = False
        if self._incoming:
            entries, self._incoming = self._incoming, []
            log = self.log
            log.add(entries)
            keep = self.state.keep(log.entry_count)
            if keep is not None:
                # A long session's memory stays bounded: the oldest entries go (while the reader
                # follows the end), to be paged back in from the server like any older history.
                floor = self.state.trimmed(log.trim(keep))
                if floor is not None:
                    self.connection.forget_before(floor)
                    log.set_has_older(True)

    def send(self, unsent: LogEntry) -> None:
        """Show ``unsent`` (``ChatState.unsent``) at the end, the view there too, and send it: the
        call carries it as its tag, for ``call_done``."""
        self.log.add([unsent])
        self.log.scroll_to_end()
        self.connection.call("send_message", unsent.text, tag=unsent)

    def call_done(self, unsent: LogEntry | None, entries: list[LogEntry]) -> None:
        """A call ended: its ``unsent`` entry goes (even if it was still waiting to be shown) and the
        ``entries`` of ``ChatState.call_done`` are shown."""
        self.flush()
        if unsent is not None:
            self.log.remove_entry(unsent.key)
        self.show(entries)

    def filter_presence(self, hide: bool, time: int) -> None:
        """Hide the connect, disconnect and rename lines (weechat's smart filter), or show them again;
        a line says so, and while they are hidden the log's border does too."""
        self.flush()
        self.log.set_hidden_kinds([EntryKind.PRESENCE] if hide else [])
        self.log.border_subtitle = "presence lines hidden · F2 shows them" if hide else ""
        self.show([self.state.system_entry(
            time, "Connect, disconnect and rename lines are hidden; F2 or /filter presence shows them." if hide
            else "Connect, disconnect and rename lines are shown again.")])

    def older(self, since: int | None, rows: Iterable[Any]) -> None:
        """A page of history arrived (``Older``): shown, and the log told whether more is older."""
        self.log.add(self.state.older(since, rows))
        self.log.set_has_older(since is not None)

    def load_older(self) -> None:
        """The log reached its top (``MessageLog.LoadOlder``): ask for the page before the oldest."""
        if self.state.history_floor is not None:
            self.connection.load_older(self.state.history_floor)


class UsersFeed:
    """Shows the users of ``state`` in ``users``, their current names in ``log``, their online count
    in ``status``, the names to complete in ``composer``; then calls ``retitle`` (the title names
    the user)."""

    def __init__(self, users: UserList, log: MessageLog, status: StatusBar, composer: Composer,
                 state: ChatState, set_timer: SetTimer, retitle: Callable[[], None]) -> None:
        self.users, self.log, self.status, self.composer, self.state = users, log, status, composer, state
        self._set_timer, self._retitle = set_timer, retitle
        self._dirty = False

    def refresh_soon(self) -> None:
        """Refresh within USERS_EVERY, once for every change meanwhile."""
        if not self._dirty:
            self._dirty = True
            self._set_timer(USERS_EVERY, self.refresh)

    @property
    def pending(self) -> bool:
        """A refresh waits for its timer: the list, names and count are not up to date yet."""
        return self._dirty

    def refresh(self) -> None:
        """Refresh now."""
        self._dirty = False
        names = self.state.names()
        lines = self.state.user_lines(names)
        self.log.set_names(names)
        self.users.show(lines)
        self.status.online = sum(1 for u in lines if u.online)
        # Completion inserts a name as it is drawn: what you see is what you mention.
        self.composer.names = [visible(u.name) for u in sorted(lines, key=lambda u: not u.online) if not u.me]
        self._retitle()


class UnreadFeed:
    """Feeds what ``unread`` says to ``log`` (the unread line), ``status`` (the counts) and the
    terminal (``write``: the driver's): the window title (``show_title``) and the notifications
    (titled with ``where``, the chat's name); ``retitle`` (the app's) when the count changes.
    ``state`` says who you are (your own messages are never unread)."""

    def __init__(self, unread: Unread, log: MessageLog, status: StatusBar, state: ChatState,
                 write: Callable[[str], None], retitle: Callable[[], None], where: str,
                 protocol: terminal.Desktop) -> None:
        self.unread, self.log, self.status, self.state = unread, log, status, state
        self._write, self._retitle, self._where, self._protocol = write, retitle, where, protocol
        self._title: str | None = None

    def arrived(self, entries: list[LogEntry]) -> None:
        """Live entries arrived (``ChatState.apply``): counted if you are away, notified if they mention you."""
        self.unread.scrolled(self.log.following)   # (its AtEnd message may still be on its way)
        me = self.state.me
        alert = self.unread.arrived(entries, bytes(me) if me is not None else b"")
        if alert is not None:
            self._write(terminal.notification(self.unread.notify, alert, self._where, self._protocol))
        self._show()

    def focus(self, focused: bool) -> None:
        """The terminal gained or lost focus (``App.app_focus``)."""
        self.unread.focus(focused, line_in_view=self.log.read_line_in_view)
        self._show()

    def focus_reported(self) -> None:
        """The terminal reported a focus change (so it can: from now on focus decides notifications)."""
        self.unread.focus_reported = True

    def scrolled(self, at_end: bool) -> None:
        """The log's view reached its end or left it (``MessageLog.AtEnd``)."""
        self.unread.scrolled(at_end)
        self._show()

    def line_shown(self) -> None:
        """The unread line came on screen (``MessageLog.ReadLineShown``)."""
        self.unread.viewed()

    def sent(self) -> None:
        """You sent a message."""
        self.unread.sent()
        self._show()

    def show_title(self, title: str) -> None:
        """Set the terminal's window title to ``title`` (if it changed); the first time, save the
        title it had, for ``restore_title``."""
        if title != self._title:
            self._write(("" if self._title is not None else terminal.TITLE_PUSH) + terminal.title(title))
            self._title = title

    def restore_title(self) -> None:
        """Give the terminal back the title it had before ``show_title``."""
        if self._title is not None:
            self._write(terminal.TITLE_POP)
            self._title = None

    def _show(self) -> None:
        unread = self.unread
        self.log.set_read_line(unread.marker)
        status = self.status
        if (status.unread, status.mentions) != (unread.count, unread.mentions):
            status.unread, status.mentions = unread.count, unread.mentions
            self._retitle()
