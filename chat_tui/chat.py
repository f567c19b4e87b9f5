"""The chat as the user sees it: users, log entries, unsent messages, history paging. No I/O.

``ChatState`` is fed what the connection delivers (``user`` and ``message`` rows
of the quickstart-chat module, row events, call results, connection changes)
and answers with the ``LogEntry`` records to show: messages, presence lines
(``Alice connected.``), rename lines (``Alice renamed to Al.``), errors. A
message entry names its sender by identity: the log draws the current name
(``names``), so one message reads the same in every client, whenever each
started; the rename lines tell the history.

A message typed by the user lives as an optimistic entry (``unsent``) until its
call ends (``call_done``): then it goes, and the message row (or, failing that,
a failed copy and the reason) takes its place. History pages back from
``history_floor``; a long session forgets its oldest entries (``trimmed``).
Times are given by the caller (microseconds since the epoch), never read here.

Presence and rename lines are ``PRESENCE`` entries (``/filter presence`` hides them); a message
``/me waves`` is an ``action`` entry (drawn ``* Alice waves``), its text kept as sent.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from chat_tui.entries import ACTION_PREFIX, EntryKind, LogEntry, UserLine
from db_core.visible import visible
from db_core.cache import RowEvent
from db_core.types import Identity

# Log entries kept in memory; past LOG_MAX the oldest go down to LOG_KEEP (they page back in on demand).
LOG_MAX, LOG_KEEP = 10_000, 8_000

MessageKey = tuple[str, bytes, int, str]


@dataclasses.dataclass(frozen=True, slots=True)
class ChatUser:
    identity: Identity
    name: str | None
    online: bool


def message_key(row: Any) -> MessageKey:
    """A message row's identity in the log (the table has set semantics, so the row is unique)."""
    return ("m", bytes(row.sender), int(row.sent), row.text)


def quoted(text: str) -> str:
    """``text`` in double quotes, its quotes and backslashes escaped, as failure lines show it."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ChatState:
    """Who is here and what to show, from the subscription's rows and the calls' results."""

    def __init__(self) -> None:
        self.me: Identity | None = None
        self.users: dict[Identity, ChatUser] = {}
        self.seen: set[Hashable] = set()
        self.history_floor: int | None = None
        """Where the oldest message asked for starts (µs): the next older page ends there;
        None when nothing older is to be asked for."""
        self._online = False
        self._offline_reason: str | None = None   # the last reason logged for being offline
        self._system_seq = 0
        self._unsent_seq = itertools.count(1)

    # -- names ------------------------------------------------------------------------
    def display_name(self, identity: Identity) -> str:
        """The user's name, else the abbreviated identity; a name shared by several users
        gets a short identity suffix so they can be told apart. Not yet ``visible``."""
        user = self.users.get(identity)
        if user is None or not user.name:
            return Identity(identity).to_abbreviated_hex()
        if any(u.name == user.name and u.identity != identity for u in self.users.values()):
            return f"{user.name}#{Identity(identity).hex()[:4]}"
        return user.name

    @property
    def my_name(self) -> str | None:
        """The name the user set, or None (none set, or not connected yet)."""
        user = self.users.get(self.me) if self.me is not None else None
        return user.name if user is not None else None

    def mention(self, text: str) -> str:
        """The user's name as ``text`` holds it (a word, in any case), or "" if it does not."""
        name = self.my_name
        if not name:
            return ""
        found = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE)
        return found.group() if found is not None else ""

    def mentions_me(self, text: str) -> bool:
        """Whether ``text`` holds the user's name as a word, in any case."""
        return bool(self.mention(text))

    def names(self) -> dict[bytes, str]:
        """Everyone's display name (as ``display_name``) by identity, in one pass: the caller hands
        them to ``MessageLog.set_names``."""
        shared: dict[str, int] = {}
        for u in self.users.values():
            if u.name:
                shared[u.name] = shared.get(u.name, 0) + 1
        out: dict[bytes, str] = {}
        for identity, u in self.users.items():
            if not u.name:
                out[bytes(identity)] = identity.to_abbreviated_hex()
            elif shared[u.name] > 1:
                out[bytes(identity)] = f"{u.name}#{identity.hex()[:4]}"
            else:
                out[bytes(identity)] = u.name
        return out

    def user_lines(self, names: dict[bytes, str] | None = None) -> list[UserLine]:
        """Everyone, as the user list shows them (``names``: from ``names()``, if the caller has
        them already): the caller hands them to ``UserList.show``."""
        me = self.me
        names = self.names() if names is None else names
        return [UserLine(key=u.identity.hex(), name=names[bytes(u.identity)], online=u.online,
                         me=u.identity == me)
                for u in self.users.values()]

    def title(self, profile: str | None, where: str) -> str:
        """The header's line: who you are first (it must survive truncation), then the profile and
        ``where``; visible (your name is whatever the server says it is)."""
        who = "connecting…" if self.me is None else self.display_name(self.me)
        profile = f" · profile {profile}" if profile else ""
        return visible(f"you are {who}{profile} · {where}")

    # -- entries ----------------------------------------------------------------------
    def message_entry(self, row: Any) -> LogEntry:
        """The entry of a message row (``messages`` also notes it as shown)."""
        sender = Identity(row.sender)
        mine = self.me is not None and sender == self.me
        mention = "" if mine else self.mention(row.text)
        return _message(message_key(row), int(row.sent), row.text, self.display_name(sender), bytes(sender),
                        mention=mention)

    def system_entry(self, time: int, text: str, kind: EntryKind = EntryKind.SYSTEM) -> LogEntry:
        """A line of the app's own (``SYSTEM``, ``PRESENCE`` or ``ERROR``), with a key of its own: the caller
        shows it."""
        self._system_seq += 1
        return LogEntry(key=("s", self._system_seq), time=time, kind=kind, text=text)

    def error_entry(self, time: int, text: str) -> LogEntry:
        """An ``ERROR`` line (a refused input, a failed connection): the caller shows it."""
        return self.system_entry(time, text, EntryKind.ERROR)

    def messages(self, rows: Iterable[Any]) -> list[LogEntry]:
        """Entries for message rows not shown yet (a reconnect delivers them again); the caller
        shows them (or hands them to ``trimmed`` when the log drops them)."""
        out = []
        for row in rows:
            key = message_key(row)
            if key not in self.seen:
                self.seen.add(key)
                out.append(self.message_entry(row))
        return out

    # -- the subscription -------------------------------------------------------------
    def load(self, users: Iterable[Any], messages: Iterable[Any], time: int) -> list[LogEntry]:
        """A (re)subscription's rows; the caller shows the entries. The first load makes no presence
        lines; a later one (after a reconnect) says what changed while we were away."""
        fresh = {Identity(u.identity): ChatUser(Identity(u.identity), u.name, u.online) for u in users}
        lines: list[LogEntry] = []
        if self.users:
            for identity, user in fresh.items():
                old = self.users.get(identity)
                lines += self._user_lines(time, old, user)
        self.users = fresh
        return lines + self.messages(messages)

    def welcome(self, me: Identity, users: Iterable[Any], messages: Iterable[Any], *, first: bool,
                floor: int | None, time: int) -> list[LogEntry]:
        """Subscribed as ``me``: ``load`` plus a greeting (the first time) or "Reconnected.".
        ``floor`` is the subscription's oldest ``sent`` bound (None: every message is in), kept
        as ``history_floor`` the first time. The caller shows the entries, then (the first time)
        tells the log whether older history exists (``history_floor is not None``)."""
        self.me = me
        entries = self.load(users, messages, time)
        if not first:
            entries.append(self.system_entry(time, "Reconnected."))
        elif self.my_name is None:
            entries.append(self.system_entry(
                time, f"Welcome! You are {me.to_abbreviated_hex()}. "
                      "Choose a name with /name NAME; /help lists commands and keys."))
        if first:
            self.history_floor = floor
        self._online = True
        self._offline_reason = None
        return entries

    def apply(self, events: Iterable[RowEvent], time: int) -> list[LogEntry]:
        """One transaction's row events, in order; the caller shows the entries (and notifies of
        those with ``highlight``, see ``chat_tui.unread``)."""
        out: list[LogEntry] = []
        user_events = [e for e in events if e.table == "user"]
        for e in user_events:
            if e.kind == "delete":
                self.users.pop(Identity(e.old.identity), None)
                continue
            new = ChatUser(Identity(e.new.identity), e.new.name, e.new.online)
            old = self.users.get(new.identity)
            out += self._user_lines(time, old, new)
            self.users[new.identity] = new
        out += self.messages(e.new for e in events if e.table == "message" and e.kind == "insert")
        return out

    def disconnected(self, reason: str, time: int) -> list[LogEntry]:
        """Offline (the connection dropped, or could not be made): the line saying why, once per
        connection and reason (the status line is kept short; its details are here)."""
        if self._online:
            self._online = False
            self._offline_reason = reason
            return [self.error_entry(time, f"Disconnected ({reason}). What you send now waits for the connection.")]
        if reason == self._offline_reason:
            return []
        self._offline_reason = reason
        return [self.error_entry(time, f"Cannot connect ({reason}). Retrying; what you send waits for the "
                                       "connection.")]

    # -- unsent messages --------------------------------------------------------------
    def unsent(self, text: str, time: int) -> LogEntry:
        """The optimistic entry of a message the user just sent: the caller shows it and passes it
        as the call's tag, to hand back to ``call_done`` when the call ends."""
        me = self.me
        name = self.my_name or (me.to_abbreviated_hex() if me else "you")
        return _message(("p", next(self._unsent_seq)), time, text, name, bytes(me or b""), pending=True)

    def call_done(self, reducer: str, args: Sequence[Any], failure: str | None, unsent: LogEntry | None,
                  time: int) -> list[LogEntry]:
        """A call ended, with ``failure`` saying why it failed (None: it succeeded). The caller
        removes ``unsent`` (its optimistic entry) from the log, then shows the entries returned:
        none on success (the row arrives as a change), else a failed copy of the message and
        the line saying why."""
        if failure is None:
            return []
        what = "set name to" if reducer == "set_name" else "send message"
        out = [] if unsent is None else [dataclasses.replace(unsent, key=("f", unsent.key), pending=False,
                                                             failed=True)]
        out.append(self.error_entry(time, f"Failed to {what} {quoted(args[0])}: {failure}"))
        return out

    # -- history ----------------------------------------------------------------------
    def older(self, since: int | None, rows: Iterable[Any]) -> list[LogEntry]:
        """A page of older messages arrived, sent from ``since`` on (None: the very first message
        is in it): the caller shows the entries and tells the log whether more are older."""
        self.history_floor = since
        return self.messages(rows)

    def keep(self, shown: int) -> int | None:
        """With ``shown`` entries in the log, how many to keep (None: all): the caller trims the
        log to that and hands the dropped entries to ``trimmed``."""
        return LOG_KEEP if shown > LOG_MAX else None

    def trimmed(self, dropped: Iterable[LogEntry]) -> int | None:
        """The log dropped these (oldest first): if they come again (an older page), they are shown
        again. Returns the new ``history_floor`` if messages went (the caller drops what is older
        from the connection too, and tells the log older history exists), else None."""
        dropped = list(dropped)
        self.seen.difference_update(e.key for e in dropped)
        times = [e.time for e in dropped if e.kind is EntryKind.MESSAGE]
        if not times:
            return None
        self.history_floor = max(times) + 1
        return self.history_floor

    def _user_lines(self, time: int, old: ChatUser | None, new: ChatUser) -> list[LogEntry]:
        out: list[LogEntry] = []
        before = self.display_name(new.identity) if old is not None else None
        if old is not None and old.name != new.name and new.name:
            out.append(self.system_entry(time, f"{before} renamed to {new.name}.", EntryKind.PRESENCE))
        if (old is None or not old.online) and new.online:
            out.append(self.system_entry(time, f"{new.name or new.identity.to_abbreviated_hex()} connected.",
                                         EntryKind.PRESENCE))
        elif old is not None and old.online and not new.online:
            out.append(self.system_entry(time, f"{new.name or before} disconnected.", EntryKind.PRESENCE))
        return out


def _message(key: Hashable, time: int, text: str, name: str, sender: bytes, *, mention: str = "",
             pending: bool = False) -> LogEntry:
    """The one way a message entry is made, sent or not yet; ``/me waves`` is an action."""
    action = text.startswith(ACTION_PREFIX) and bool(text[len(ACTION_PREFIX):].strip())
    return LogEntry(key=key, time=time, kind=EntryKind.MESSAGE, text=text, sender=sender, name=name,
                    highlight=bool(mention), mention=mention, pending=pending, action=action)
