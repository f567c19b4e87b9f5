"""Who is here: online users first with a marker, offline dimmed, yourself marked, a count.

One line per user, whatever their name: it is drawn ``visible`` and cut with ``…`` at the edge.
Its width is a fifth of the screen, 18 to 32 columns (the app hides it on narrow screens)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from chat_tui.entries import UserLine, nick_style
from db_core.visible import visible


class UserList(OptionList):
    """Renders line by line (an ``OptionList``), so thousands of users stay cheap."""

    DEFAULT_CSS = """
    UserList {
        width: 20%;
        min-width: 18;
        max-width: 32;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        border: round $primary 40%;
        border-title-color: $text;
        padding: 0;
        scrollbar-size-vertical: 1;
    }
    UserList:focus {
        border: round $primary;
    }
    UserList .user-list--offline {
        color: $text-muted;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Users"
        self.lines: list[UserLine] = []

    def show(self, lines: list[UserLine]) -> None:
        """Replace the list: online first, then by name; the title counts who is online."""
        ordered = sorted(lines, key=lambda u: (not u.online, not u.me, u.name.casefold()))
        if ordered == self.lines:
            return
        self.lines = ordered
        online = sum(1 for u in ordered if u.online)
        self.border_title = f"Online {online}/{len(ordered)}"
        highlighted = self.highlighted_option.id if self.highlighted_option is not None else None
        self.clear_options()
        dark = self.app.current_theme.dark
        self.add_options([Option(self._prompt(u, dark), id=u.key) for u in ordered])
        if highlighted is not None:
            try:
                self.highlighted = self.get_option_index(highlighted)
            except Exception:
                pass

    @staticmethod
    def _prompt(user: UserLine, dark: bool) -> Text:
        if user.online:
            text = Text("● ", style="green")
            text.append(visible(user.name), style=nick_style(bytes.fromhex(user.key), dark=dark))
        else:
            text = Text("○ ", style="dim")
            text.append(visible(user.name), style="dim")
        if user.me:
            text.append(" (you)", style="italic dim")
        return text
