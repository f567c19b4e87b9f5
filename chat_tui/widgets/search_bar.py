"""The search bar: one line above the composer, open while searching (ctrl+f, ``/search TEXT``).

``Search: [text        ] 3/17+`` — the text field, then ``status`` (the app's: counts and notes).
Keys in the field, all of which tmux passes on: Enter, Up and ctrl+f step to the older match, Down
to the newer (shift+Enter too, in a terminal that tells it from Enter); Escape closes the bar and
the view goes back to where it was; Tab closes it and the view stays at the match. What is typed
or pasted is made ``visible`` first, so the field never draws a control character or an escape
sequence: a pasted ``ESC`` shows as ``␛`` (and finds what the log draws as ``␛``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static

from chat_tui.search import Direction
from db_core.visible import visible

__all__ = ["SearchBar", "SearchField"]


class SearchField(Input):
    """The bar's text field: its keys step through the matches or close the bar (``SearchBar``'s
    messages); a paste is inserted ``visible``, on one line."""

    DEFAULT_CSS = """
    SearchField {
        border: none;
        height: 1;
        padding: 0;
        width: 1fr;
        background: $boost;
        &:focus { border: none; background: $boost; }
    }
    """

    # As the composer does: keys, not bindings, so they act in the order they were typed.
    KEYS: ClassVar[dict[str, tuple[str, Any]]] = {
        "enter": ("step", Direction.OLDER), "up": ("step", Direction.OLDER), "ctrl+f": ("step", Direction.OLDER),
        "down": ("step", Direction.NEWER), "shift+enter": ("step", Direction.NEWER),
        "escape": ("close", False), "tab": ("close", True),
    }

    async def _on_key(self, event: events.Key) -> None:
        what = self.KEYS.get(event.key)
        if what is None:
            return
        event.stop()
        event.prevent_default()
        kind, value = what
        self.post_message(SearchBar.Step(value) if kind == "step" else SearchBar.Closed(value))

    def _on_paste(self, event: events.Paste) -> None:
        # Input's own handler would insert the first line raw: control characters and all.
        event.stop()
        event.prevent_default()
        text = visible(event.text.replace("\r\n", "\n").strip("\n"))
        if self.selection.is_empty:
            self.insert_text_at_cursor(text)
        else:
            self.replace(text, *self.selection)


class SearchBar(Horizontal):
    """The search bar. Attributes down: ``status`` (shown after the field); ``open(text)`` shows it
    with ``text`` in the field, ``shut()`` hides it. Messages up: ``Edited`` (the text changed),
    ``Step`` (to the next match one way), ``Closed``."""

    DEFAULT_CSS = """
    SearchBar {
        height: 1;
        display: none;
        background: $boost;
        &.-open { display: block; }
        & > #search-label { width: auto; padding: 0 1; color: $text-accent; text-style: bold; }
        & > #search-status { width: auto; max-width: 60%; height: 1; padding: 0 1; color: $text-muted; }
    }
    """

    status: reactive[str] = reactive("", init=False)
    """The counts and notes after the field (``3/17+ · searching older history…``), drawn as plain text."""

    class Edited(Message):
        """The search text changed (``text``: as shown, ``visible``)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Step(Message):
        """Go to the next match ``direction``."""

        def __init__(self, direction: Direction) -> None:
            super().__init__()
            self.direction = direction

    class Closed(Message):
        """Escape (``stay`` False: the view goes back) or Tab (``stay``: it stays at the match)."""

        def __init__(self, stay: bool) -> None:
            super().__init__()
            self.stay = stay

    def compose(self) -> ComposeResult:
        yield Static("Search:", id="search-label")
        yield SearchField(id="search-field", placeholder="text in messages or names")
        yield Static(id="search-status")

    @property
    def field(self) -> SearchField:
        return self.query_one(SearchField)

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self, text: str | None = None) -> None:
        """Show the bar, focused; ``text`` (made visible) replaces the field's, else what the field
        holds from the last search is selected (typing replaces it, as in a browser's find bar)."""
        self.add_class("-open")
        field = self.field
        if text is not None:
            field.value = visible(text)
            field.cursor_position = len(field.value)
        else:
            field.select_all()
        field.focus()

    def shut(self) -> None:
        """Hide the bar (the field keeps its text for the next ``open``)."""
        self.remove_class("-open")

    def watch_status(self, status: str) -> None:
        self.query_one("#search-status", Static).update(Text(status, no_wrap=True, overflow="ellipsis"))

    @on(Input.Changed, "#search-field")
    def _edited(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(event.value))
