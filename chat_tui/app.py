"""``chat-tui``: the Textual app. Composition, key bindings and message routing only:
the meaning of input is in ``commands``, the chat's state in ``chat``, what you have not read
in ``unread``, what the views show and when in ``feeds`` (a search's in ``search_feed``), the
network in ``connection``, the
persistence in ``profiles``, the command line in ``cli``
(``main`` is imported here for the ``chat-tui`` script and ``python -m chat_tui.app``)."""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Literal

from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Header, Input

from chat_server.client import DEFAULT_SERVER
from chat_tui import commands, terminal
from chat_tui.cli import main
from chat_tui.chat import ChatState
from chat_tui.connection import (CallDone, Changes, ChatConnection, ConnState, Older, SearchProgress, Searched,
                                 Status, Welcome)
from chat_tui.entries import EntryKind, LogEntry
from chat_tui.feeds import LogFeed, UnreadFeed, UsersFeed
from chat_tui.profiles import Profile, screenshots_dir
from chat_tui.screens import HelpScreen, PasteScreen, QuitScreen
from chat_tui.search_feed import SearchFeed
from chat_tui.unread import NotifyMode, Unread
from chat_tui.widgets.composer import Composer
from chat_tui.widgets.message_log import MessageLog
from chat_tui.widgets.search_bar import SearchBar
from chat_tui.widgets.status_bar import StatusBar
from chat_tui.widgets.user_list import UserList

NARROW = 80


def now_us() -> int:
    return int(time.time() * 1_000_000)


class ChatApp(App[None]):
    """One user's chat: messages beside the users, the composer and status below.

    ``connect=False`` leaves the network alone (the messages a connection posts can be fed in
    by hand, as the snapshot tests do); ``tune_gc`` applies chat-tui's process-wide garbage
    collector settings, as the ``chat-tui`` command does; ``notify`` says how a mention reaches
    you while the terminal is in the background."""

    CSS_PATH = "app.tcss"
    TITLE = "quickstart-chat"
    AUTO_FOCUS = "#composer"
    # Below NARROW columns the screen gets -narrow: the user list hides, the status bar keeps the count.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-wide")]
    BINDINGS = [
        Binding("ctrl+q", "quit_chat", "Quit", priority=True),
        Binding("ctrl+c", "copy_or_quit", "Copy / quit", show=False, priority=True),
        Binding("f1", "help", "Help"),
        Binding("f2", "filter_presence", "Presence", show=False),
        Binding("ctrl+f", "search", "Search", show=False),
        Binding("escape", "hide_help_panel", "Close keys", show=False),   # the Keys panel (ctrl+p, Keys)
        Binding("pageup", "scroll_log('page_up')", "Scroll up", show=False),
        Binding("pagedown", "scroll_log('page_down')", "Scroll down", show=False),
        Binding("ctrl+end", "scroll_log('end')", "Newest", show=False),
    ]

    def __init__(self, *, server: str = DEFAULT_SERVER, database: str = "quickstart-chat",
                 profile: Profile | None = None, auto_start: bool = False, connect: bool = True,
                 tune_gc: bool = False, notify: NotifyMode = NotifyMode.BELL) -> None:
        super().__init__()
        self.server, self.database, self.profile = server, database, profile
        self.state = ChatState()
        self.connection = ChatConnection(
            self.post_message, server=server, database=database,
            token=profile.token(server) if profile else None,
            on_token=(lambda token: profile.save_token(server, token)) if profile else None,
            auto_start=auto_start,
        )
        self._connect = connect
        self._tune_gc = tune_gc
        self.unread = Unread(notify)

    def compose(self) -> ComposeResult:
        # Kept as attributes: a query would search the active screen, which may be a modal.
        self.log_view = MessageLog(id="log")
        self.log_view.end_key = "ctrl+End"   # End itself belongs to the composer, which has the focus
        self.users_view = UserList(id="users")
        self.composer = Composer(history=self.profile.history() if self.profile else [], id="composer",
                                 placeholder="Message, or /help")
        self.status_bar = StatusBar(id="status")
        self.search_bar = SearchBar(id="search")
        self.log_feed = LogFeed(self.log_view, self.state, self.connection, self.set_timer)
        self.search_feed = SearchFeed(self.search_bar, self.log_view, self.log_feed, self.state, self.connection)
        self.users_feed = UsersFeed(self.users_view, self.log_view, self.status_bar, self.composer, self.state,
                                    self.set_timer, self._retitle)
        self.unread_feed = UnreadFeed(self.unread, self.log_view, self.status_bar, self.state, self._write_terminal,
                                      self._retitle, self.database, terminal.desktop_protocol(os.environ))
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="main"):
            yield self.log_view
            yield self.users_view
        yield self.search_bar
        yield self.composer
        yield self.status_bar

    def on_mount(self) -> None:
        if self._tune_gc:
            # Rarer collections: full passes over the log's objects were the worst key-echo stalls.
            gc.set_threshold(20_000, 20, 100)
        self.watch(self, "app_focus", self.unread_feed.focus, init=False)
        self._retitle()
        composer = self.composer
        composer.commands = [name for name, _, _ in commands.COMMANDS]
        self.status_bar.text = f"Connecting to {self.server}…"
        if self._connect:
            self.run_worker(self.connection.run(), name="connection", exclusive=True)

    # -- connection -------------------------------------------------------------------
    @on(Status)
    def _status(self, msg: Status) -> None:
        bar = self.status_bar
        bar.state, bar.text, bar.reason, bar.retry_in = msg.state, msg.text, msg.reason, msg.retry_in
        if msg.state is ConnState.OFFLINE:
            self.log_feed.show(self.state.disconnected(msg.reason, now_us()))
        elif msg.state is ConnState.FAILED:
            self.log_feed.show([self.state.error_entry(now_us(), msg.text)])

    @on(Welcome)
    def _welcome(self, msg: Welcome) -> None:
        self.log_feed.show(self.state.welcome(msg.identity, msg.users, msg.messages, first=msg.first,
                                              floor=self.connection.cutoff, time=now_us()))
        if msg.first:
            # After the rows are in: an empty log is "at the top" and would page at once.
            self.log_view.set_has_older(msg.has_older)
            if self._tune_gc:
                # What start-up built lives on: keep it out of the collector's full passes.
                gc.freeze()
        self.users_feed.refresh()

    @on(Changes)
    def _changes(self, msg: Changes) -> None:
        entries = self.state.apply(msg.rows, msg.timestamp)
        self.log_feed.show(entries, soon=True)
        self.unread_feed.arrived(entries)
        if any(e.table == "user" for e in msg.rows):
            self.users_feed.refresh_soon()

    @on(Older)
    def _older(self, msg: Older) -> None:
        self.log_feed.older(msg.since, msg.messages)

    @on(MessageLog.LoadOlder)
    def _load_older(self) -> None:
        self.log_feed.load_older()

    # -- search -----------------------------------------------------------------------
    @on(SearchBar.Edited)
    def _search_edited(self, msg: SearchBar.Edited) -> None:
        self.search_feed.edit(msg.text)

    @on(SearchBar.Step)
    def _search_step(self, msg: SearchBar.Step) -> None:
        self.search_feed.step(msg.direction)

    @on(SearchBar.Closed)
    def _search_closed(self, msg: SearchBar.Closed) -> None:
        self.search_feed.close(msg.stay)
        self.composer.focus()

    @on(MessageLog.EntriesChanged)
    def _log_changed(self) -> None:
        self.search_feed.log_changed()

    @on(SearchProgress)
    def _search_progress(self, msg: SearchProgress) -> None:
        self.search_feed.progress(msg.search)

    @on(Searched)
    def _searched(self, msg: Searched) -> None:
        self.search_feed.searched(msg)

    @on(CallDone)
    def _call_done(self, msg: CallDone) -> None:
        self._update_queued()
        unsent: LogEntry | None = msg.call.tag
        self.log_feed.call_done(unsent, self.state.call_done(msg.call.reducer, msg.call.args, msg.failure, unsent,
                                                             now_us()))

    # -- reading ----------------------------------------------------------------------
    @on(events.AppBlur)
    @on(events.AppFocus)
    def _focus_reported(self) -> None:
        self.unread_feed.focus_reported()   # (app_focus itself is watched: keys and clicks set it too)

    @on(MessageLog.AtEnd)
    def _at_end(self, msg: MessageLog.AtEnd) -> None:
        self.unread_feed.scrolled(msg.at_end)

    @on(MessageLog.ReadLineShown)
    def _read_line_shown(self) -> None:
        self.unread_feed.line_shown()

    def on_unmount(self) -> None:
        self.unread_feed.restore_title()

    # -- input ------------------------------------------------------------------------
    @on(Input.Submitted, "#composer")
    def _submitted(self, event: Input.Submitted) -> None:
        self._run_line(event.value)

    @on(Composer.MultilinePaste)
    def _paste(self, event: Composer.MultilinePaste) -> None:
        def answer(text: str | None) -> None:
            if text is not None:
                self.composer.value = ""   # what was typed around the paste went with it
                self._run_line(text, from_paste=True)
        self.push_screen(PasteScreen(event.text, commands.refusal, commands.paste_note(event.text)), answer)

    def _run_line(self, line: str, *, from_paste: bool = False) -> None:
        composer = self.composer
        try:
            action = commands.parse(line)
        except commands.InputRefused as exc:
            self.log_feed.show([self.state.error_entry(now_us(), str(exc))])
            if not from_paste:   # (the paste dialog refuses before it closes)
                composer.give_back(line)
            return
        if isinstance(action, commands.Ignore):   # a blank line, as in irssi: nothing, not even a refusal
            return
        if not from_paste:
            composer.remember(line)
            if self.profile is not None:
                self.profile.add_history(line)
        if isinstance(action, commands.Help):
            self.action_help()
        elif isinstance(action, commands.Quit):
            self.run_worker(self.action_quit_chat())
        elif isinstance(action, commands.ToggleFilter):
            self.action_filter_presence()
        elif isinstance(action, commands.Search):
            self.search_feed.open(action.text or None)
        elif isinstance(action, commands.SetName):
            self.connection.call("set_name", action.name)
        else:
            self.log_feed.send(self.state.unsent(action.text, now_us()))
            self.unread_feed.sent()
        self._update_queued()

    # -- actions ----------------------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_search(self) -> None:   # ctrl+f, /search
        self.search_feed.open()

    def action_filter_presence(self) -> None:   # F2, /filter presence
        self.log_feed.filter_presence(EntryKind.PRESENCE not in self.log_view.hidden_kinds, now_us())

    def action_scroll_log(self, how: Literal["end", "page_up", "page_down"]) -> None:
        log = self.log_view
        if how == "end":
            log.scroll_to_end()
        elif how == "page_up":
            log.scroll_page_up()
        else:
            log.scroll_page_down()

    async def action_copy_or_quit(self) -> None:
        """ctrl+c copies selected text (in the log or the composer) if there is any, else quits."""
        text = self.screen.get_selected_text() or (self.composer.selected_text if self.screen is self.screen_stack[0]
                                                   else "")
        if text:
            self.copy_to_clipboard(text)
            self.screen.clear_selection()
            self.notify(f"Copied {len(text):,} characters.", timeout=2)
            return
        await self.action_quit_chat()

    async def action_quit_chat(self) -> None:
        """Leave: close the connection first, so everyone sees us go offline at once. With
        messages still waiting for the connection, ask first (they would be lost)."""
        waiting = sum(1 for o in self.connection.outbox if o.reducer == "send_message")
        if waiting and not isinstance(self.screen, QuitScreen):
            def answer(quit_anyway: bool | None) -> None:
                if quit_anyway:
                    self.run_worker(self._leave())
            self.push_screen(QuitScreen(waiting), answer)
            return
        await self._leave()

    async def _leave(self) -> None:
        await self.connection.close()
        if self.profile is not None:
            self.profile.release()
        self.exit()

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Textual's hook behind ctrl+p -> Screenshot (and ``action_screenshot``): into a folder that
        exists (``screenshots_dir``) rather than a ~/Downloads that may not; Textual then says where."""
        if path is None:
            try:
                path = str(screenshots_dir())
            except OSError as exc:
                self.notify(f"Cannot save a screenshot: {exc.strerror or exc}"
                            + (f": {exc.filename}" if exc.filename else ""),
                            title="Screenshot", severity="error", markup=False)
                return None
        return super().deliver_screenshot(filename, path, time_format)

    # -- helpers ----------------------------------------------------------------------
    def _update_queued(self) -> None:
        self.status_bar.queued = sum(1 for o in self.connection.outbox if not o.in_flight)

    def _retitle(self) -> None:
        where = self.server if self.database == "quickstart-chat" else f"{self.database} on {self.server}"
        self.sub_title = self.state.title(self.profile.name if self.profile else None, where)
        self.title = self.unread.title(self.TITLE)
        self.unread_feed.show_title(f"{self.title} — {self.sub_title}")   # as the header reads

    def _write_terminal(self, data: str) -> None:
        """Write ``data`` (an escape sequence of ``terminal``) to the terminal, past Textual's screen."""
        if self._driver is not None:
            self._driver.write(data)


if __name__ == "__main__":
    sys.exit(main())
