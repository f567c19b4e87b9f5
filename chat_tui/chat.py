"""The chat as the user sees it: users, and log entries made from row changes. No I/O.

``ChatState`` is fed the rows and row events the SDK delivers (``user`` and
``message`` rows of the quickstart-chat module) and answers with the log
entries to show: messages, presence lines (``Alice connected.``), rename lines
(``Alice renamed to Al.``). It also remembers who is who, so names are
resolved once, when an entry is made (as IRC clients do: a later rename does
not rewrite what was said before it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from chat_tui.widgets.message_log import LogEntry, nick_style
from db_core.cache import RowEvent
from db_core.types import Identity


@dataclasses.dataclass(frozen=True, slots=True)
class ChatUser:
    identity: Identity
    name: str | None
    online: bool


def message_key(row: Any) -> tuple[str, bytes, int, str]:
    """A message row's identity in the log (the table has set semantics, so the row is unique)."""
    return ("m", bytes(row.sender), int(row.sent), row.text)


class ChatState:
    """Who is here and what to show, from the subscription's rows."""

    def __init__(self) -> None:
        self.me: Identity | None = None
        self.users: dict[Identity, ChatUser] = {}
        self.seen: set[tuple[str, bytes, int, str]] = set()
        self._system_seq = 0

    # -- names ------------------------------------------------------------------------
    def display_name(self, identity: Identity) -> str:
        """The user's name, else the abbreviated identity; a name shared by several users
        gets a short identity suffix so they can be told apart."""
        user = self.users.get(identity)
        if user is None or not user.name:
            return Identity(identity).to_abbreviated_hex()
        if any(u.name == user.name and u.identity != identity for u in self.users.values()):
            return f"{user.name}#{Identity(identity).hex()[:4]}"
        return user.name

    @property
    def my_name(self) -> str | None:
        user = self.users.get(self.me) if self.me is not None else None
        return user.name if user is not None else None

    def mentions_me(self, text: str) -> bool:
        name = self.my_name
        if not name:
            return False
        return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None

    def online_users(self) -> list[ChatUser]:
        return [u for u in self.users.values() if u.online]

    # -- entries ----------------------------------------------------------------------
    def message_entry(self, row: Any) -> LogEntry:
        sender = Identity(row.sender)
        mine = self.me is not None and sender == self.me
        return LogEntry(
            key=message_key(row), time=int(row.sent), kind="message", text=row.text,
            name=self.display_name(sender), name_style=nick_style(bytes(sender)),
            highlight=not mine and self.mentions_me(row.text),
        )

    def system_entry(self, time: int, text: str, kind: str = "system") -> LogEntry:
        self._system_seq += 1
        return LogEntry(key=("s", self._system_seq), time=time, kind=kind, text=text)

    def messages(self, rows: Iterable[Any]) -> list[LogEntry]:
        """Entries for message rows not shown yet (a reconnect delivers them again)."""
        out = []
        for row in rows:
            key = message_key(row)
            if key not in self.seen:
                self.seen.add(key)
                out.append(self.message_entry(row))
        return out

    def forget(self, entries: Iterable[LogEntry]) -> None:
        """The log dropped these: if they come again (an older page), they are shown again."""
        self.seen.difference_update(e.key for e in entries)

    def load(self, users: Iterable[Any], messages: Iterable[Any], time: int) -> list[LogEntry]:
        """A (re)subscription's rows. The first load shows no presence lines; a later one
        (after a reconnect) shows what changed while we were away."""
        fresh = {Identity(u.identity): ChatUser(Identity(u.identity), u.name, u.online) for u in users}
        lines: list[LogEntry] = []
        if self.users:
            for identity, user in fresh.items():
                old = self.users.get(identity)
                lines += self._user_lines(time, old, user)
        self.users = fresh
        return lines + self.messages(messages)

    def apply(self, events: Iterable[RowEvent], time: int) -> list[LogEntry]:
        """One transaction's row events, in order."""
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

    def _user_lines(self, time: int, old: ChatUser | None, new: ChatUser) -> list[LogEntry]:
        out: list[LogEntry] = []
        before = self.display_name(new.identity) if old is not None else None
        if old is not None and old.name != new.name and new.name:
            out.append(self.system_entry(time, f"{before} renamed to {new.name}."))
        if (old is None or not old.online) and new.online:
            out.append(self.system_entry(time, f"{new.name or new.identity.to_abbreviated_hex()} connected."))
        elif old is not None and old.online and not new.online:
            out.append(self.system_entry(time, f"{new.name or before} disconnected."))
        return out
