"""``chat-tui``: the Textual app. Composition, key bindings and message routing only:
the meaning of input is in ``commands``, the chat's state in ``chat``, the network
in ``connection``, the persistence in ``profiles``."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import sys
import time

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Header, Input

from chat_server.client import DEFAULT_SERVER, argument_type, check_database_name, parse_server
from chat_tui import commands
from chat_tui.chat import ChatState
from chat_tui.connection import CallDone, Changes, ChatConnection, Older, Status, Welcome
from chat_tui.profiles import Profile, ProfileBusy, claim_profile, validate_name
from chat_tui.screens import HelpScreen, PasteScreen, QuitScreen
from chat_tui.widgets.composer import Composer
from chat_tui.widgets.message_log import LogEntry, MessageLog, nick_style
from chat_tui.widgets.status_bar import StatusBar
from chat_tui.widgets.user_list import UserLine, UserList
from db_core.visible import visible

NARROW = 70
LOG_MAX, LOG_KEEP = 10_000, 8_000   # log entries kept in memory; older ones page back in on demand
FLUSH_EVERY = 0.1   # seconds: how long arriving messages may wait to be shown together


def now_us() -> int:
    return int(time.time() * 1_000_000)


class ChatApp(App[None]):
    """One user's chat: messages beside the users, the composer and status below.

    ``connect=False`` leaves the network alone (the messages a connection posts can be fed in
    by hand, as the snapshot tests do); ``tune_gc`` applies chat-tui's process-wide garbage
    collector settings, as the ``chat-tui`` command does."""

    CSS_PATH = "app.tcss"
    TITLE = "quickstart-chat"
    AUTO_FOCUS = "#composer"
    # Below NARROW columns the screen gets -narrow: the user list hides, the status bar keeps the count.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-wide")]
    BINDINGS = [
        Binding("ctrl+q", "quit_chat", "Quit", priority=True),
        Binding("ctrl+c", "copy_or_quit", "Copy / quit", show=False, priority=True),
        Binding("f1", "help", "Help"),
        Binding("pageup", "scroll_log('page_up')", "Scroll up", show=False),
        Binding("pagedown", "scroll_log('page_down')", "Scroll down", show=False),
        Binding("ctrl+end", "scroll_log('end')", "Newest", show=False),
    ]

    def __init__(self, *, server: str = DEFAULT_SERVER, database: str = "quickstart-chat",
                 profile: Profile | None = None, auto_start: bool = False, connect: bool = True,
                 tune_gc: bool = False) -> None:
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
        self._pending = itertools.count(1)
        self._history_floor: int | None = None
        self._was_online = False
        self._users_dirty = False
        self._incoming: list[LogEntry] = []
        self._flush_pending = False
        self._tune_gc = tune_gc

    def compose(self) -> ComposeResult:
        # Kept as attributes: a query would search the active screen, which may be a modal.
        self.log_view = MessageLog(id="log")
        self.log_view.end_key = "ctrl+End"   # End itself belongs to the composer, which has the focus
        self.users_view = UserList(id="users")
        self.composer = Composer(history=self.profile.history() if self.profile else [], id="composer",
                                 placeholder="Message, or /help")
        self.status_bar = StatusBar(id="status")
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="main"):
            yield self.log_view
            yield self.users_view
        yield self.composer
        yield self.status_bar

    def on_mount(self) -> None:
        if self._tune_gc:
            # Rarer collections: full passes over the log's objects were the worst key-echo stalls.
            gc.set_threshold(20_000, 20, 100)
        self.sub_title = self._who()
        composer = self.composer
        composer.commands = [name for name, _, _ in commands.COMMANDS]
        self.status_bar.text = f"Connecting to {self.server}…"
        if self._connect:
            self.run_worker(self.connection.run(), name="connection", exclusive=True)

    # -- connection -------------------------------------------------------------------
    @on(Status)
    def _status(self, msg: Status) -> None:
        bar = self.status_bar
        bar.state, bar.text = msg.state, msg.text
        if msg.state == "offline" and self._was_online:
            self._was_online = False
            self._log([self.state.system_entry(
                now_us(), f"Disconnected ({msg.reason}). What you send now waits for the connection.",
                kind="error")])
        elif msg.state == "failed":
            self._log([self.state.system_entry(now_us(), msg.text, kind="error")])

    @on(Welcome)
    def _welcome(self, msg: Welcome) -> None:
        self.state.me = msg.identity
        entries = self.state.load(msg.users, msg.messages, now_us())
        log = self.log_view
        if not msg.first:
            entries.append(self.state.system_entry(now_us(), "Reconnected."))
        elif self.state.my_name is None:
            entries.append(self.state.system_entry(
                now_us(), f"Welcome! You are {msg.identity.to_abbreviated_hex()}. "
                          "Choose a name with /name NAME; /help lists commands and keys."))
        self._was_online = True
        self._log(entries)
        if msg.first:
            # After the rows are in: an empty log is "at the top" and would page at once.
            self._history_floor = self.connection.cutoff
            log.set_has_older(msg.has_older)
            if self._tune_gc:
                # What start-up built lives on: keep it out of the collector's full passes.
                gc.freeze()
        self._refresh_users()
        self.sub_title = self._who()

    @on(Changes)
    def _changes(self, msg: Changes) -> None:
        entries = self.state.apply(msg.rows, msg.time)
        self._log(entries, soon=True)
        if any(e.highlight for e in entries):
            self.bell()   # someone mentioned you
        if any(e.table == "user" for e in msg.rows):
            self._refresh_users_soon()

    @on(Older)
    def _older(self, msg: Older) -> None:
        log = self.log_view
        self._history_floor = msg.since
        log.add(self.state.messages(msg.messages))
        log.set_has_older(msg.since is not None)

    @on(MessageLog.LoadOlder)
    def _load_older(self) -> None:
        if self._history_floor is not None:
            self.connection.load_older(self._history_floor)

    @on(CallDone)
    def _call_done(self, msg: CallDone) -> None:
        self._update_queued()
        self._flush_log()   # the sent message itself may be waiting to be shown
        log = self.log_view
        pending: LogEntry | None = msg.call.tag
        if pending is not None:
            log.remove(pending.key)
        if msg.status in ("committed", "no_changes"):
            return
        error = msg.error or msg.status.replace("_", " ")
        if msg.call.reducer == "set_name":
            text = f"Failed to set name to {_quoted(msg.call.args[0])}: {error}"
        else:
            text = f"Failed to send message {_quoted(msg.call.args[0])}: {error}"
        if pending is not None:
            log.add([_failed(pending)])
        self._log([self.state.system_entry(now_us(), text, kind="error")])

    # -- input ------------------------------------------------------------------------
    @on(Input.Submitted, "#composer")
    def _submitted(self, event: Input.Submitted) -> None:
        self._run_line(event.value)

    @on(Composer.MultilinePaste)
    def _paste(self, event: Composer.MultilinePaste) -> None:
        def answer(send: bool | None) -> None:
            if send:
                self._run_line(event.text, from_paste=True)
        self.push_screen(PasteScreen(event.text), answer)

    def _run_line(self, line: str, *, from_paste: bool = False) -> None:
        composer = self.composer
        try:
            action = commands.parse(line)
        except commands.InputRefused as exc:
            self._log([self.state.system_entry(now_us(), str(exc), kind="error")])
            if not from_paste and not composer.value:
                composer.value = line   # give it back for editing
                composer.cursor_position = len(line)
            return
        if not from_paste:
            composer.remember(line)
            if self.profile is not None:
                self.profile.add_history(line)
        if isinstance(action, commands.Help):
            self.action_help()
        elif isinstance(action, commands.Quit):
            self.run_worker(self.action_quit_chat())
        elif isinstance(action, commands.SetName):
            self.connection.call("set_name", action.name)
            self._update_queued()
        else:
            pending = LogEntry(key=("p", next(self._pending)), time=now_us(), kind="message", text=action.text,
                               name=self.state.my_name or (self.state.me.to_abbreviated_hex() if self.state.me else "you"),
                               name_style=nick_style(bytes(self.state.me or b"")), pending=True)
            self.log_view.add([pending])
            self.log_view.scroll_to_end()
            self.connection.call("send_message", action.text, tag=pending)
            self._update_queued()

    # -- actions ----------------------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_scroll_log(self, how: str) -> None:
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

    # -- helpers ----------------------------------------------------------------------
    def _log(self, entries: list[LogEntry], *, soon: bool = False) -> None:
        """Show ``entries``; with ``soon``, within FLUSH_EVERY, together with others that arrive
        meanwhile (a busy room repaints a few times a second, not per message, so keys stay quick)."""
        self._incoming += entries
        if not soon:
            self._flush_log()
        elif self._incoming and not self._flush_pending:
            self._flush_pending = True
            self.set_timer(FLUSH_EVERY, self._flush_log)

    def _flush_log(self) -> None:
        self._flush_pending = False
        if self._incoming:
            entries, self._incoming = self._incoming, []
            self.log_view.add(entries)
            if self.log_view.entry_count > LOG_MAX:
                self._trim_log()

    def _trim_log(self) -> None:
        """Keep a long session's memory bounded: the oldest entries go (they can be paged
        back in from the server like any older history)."""
        dropped = self.log_view.trim(LOG_KEEP)
        times = [e.time for e in dropped if e.kind == "message"]
        if not times:
            return
        self.state.forget(dropped)
        floor = max(times) + 1
        self._history_floor = floor
        self.connection.forget_before(floor)
        self.log_view.set_has_older(True)

    def _update_queued(self) -> None:
        self.status_bar.queued = sum(1 for o in self.connection.outbox if not o.in_flight)

    def _refresh_users_soon(self) -> None:
        # Presence storms (many clients at once) redraw the list once per 100 ms, not per change.
        if not self._users_dirty:
            self._users_dirty = True
            self.set_timer(0.1, self._refresh_users)

    def _refresh_users(self) -> None:
        self._users_dirty = False
        me = self.state.me
        lines = [UserLine(key=u.identity.hex(), name=self.state.display_name(u.identity), online=u.online,
                          me=u.identity == me, name_style=nick_style(bytes(u.identity)))
                 for u in self.state.users.values()]
        self.users_view.show(lines)
        self.status_bar.online = sum(1 for u in lines if u.online)
        composer = self.composer
        # Completion inserts a name as it is drawn: what you see is what you mention.
        composer.names = [visible(u.name) for u in sorted(lines, key=lambda u: not u.online) if not u.me]
        self.sub_title = self._who()

    def _who(self) -> str:
        """The header's line: who you are first (it must survive truncation), then where; visible
        (your name is whatever the server says it is)."""
        me = self.state.me
        who = "connecting…" if me is None else self.state.display_name(me)
        profile = f" · profile {self.profile.name}" if self.profile else ""
        where = self.server if self.database == "quickstart-chat" else f"{self.database} on {self.server}"
        return visible(f"you are {who}{profile} · {where}")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _failed(entry: LogEntry) -> LogEntry:
    return dataclasses.replace(entry, key=("f",) + tuple(entry.key), pending=False, failed=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chat-tui",
        description="Chat in the terminal on a quickstart-chat server. With no --server it uses the "
                    f"local one ({DEFAULT_SERVER}), starting it in the background if none answers.",
        epilog="example: chat-tui --profile alice   |   chat-tui --server wss://chat.example.org",
    )
    # Checked here, before the screen is taken: a bad value is one line and exit status 2.
    parser.add_argument("--server", metavar="URL", type=argument_type(parse_server),
                        help="server to connect to (http(s)://, ws(s)://, or host:port); never starts one")
    parser.add_argument("--database", metavar="NAME", default="quickstart-chat", type=argument_type(check_database_name),
                        help="database to chat in (default: quickstart-chat)")
    parser.add_argument("--profile", metavar="NAME", type=argument_type(validate_name),
                        help="whose identity to use (default: the first profile not in use by another chat-tui, "
                        "so each terminal is its own user)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        profile = claim_profile(args.profile)
    except ProfileBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a config directory that cannot be written
        print(f"error: cannot use the profile: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
              file=sys.stderr)
        return 1
    server = args.server or DEFAULT_SERVER
    app = ChatApp(server=server, database=args.database, profile=profile, auto_start=args.server is None,
                  tune_gc=True)
    app.run()
    profile.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
