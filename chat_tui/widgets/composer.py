"""The line the user types: an ``Input`` with history, Tab completion and deliberate paste.

Up/Down walk the history (the app hands it in and persists additions); Tab
completes ``/commands`` at the start of the line and user names anywhere,
cycling on repeated presses, as irssi and weechat do: a name at the start of
the line gets ": " after it, elsewhere a space; an ``@`` before the prefix is
kept (``@Bo`` Tab gives ``@Bob ``); a paste of several lines is not inserted (Input
would keep only its first line) but posted as ``MultilinePaste`` for the app
to confirm, and so is one line holding a character the terminal would act on
or hide (an escape sequence a web page put in the clipboard): the input would
draw it raw, the confirmation shows it ``visible``.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.message import Message
from textual.widgets import Input

from chat_tui.profiles import HISTORY_CAP
from db_core.visible import visible


class Composer(Input):
    """The message input. Attributes down: ``names`` (completion candidates, best first)
    and ``commands``; messages up: ``Input.Submitted`` and ``MultilinePaste``."""

    DEFAULT_CSS = """
    Composer {
        border: tall $primary 40%;
        height: 3;
    }
    Composer:focus {
        border: tall $primary;
    }
    """

    # Enter, Up, Down and Tab are handled as keys, not bindings: a binding runs only after the
    # key has bubbled to the app, by which time keys typed after it may already be in the line
    # (tmux send-keys "/name Bob" Enter "hi" Enter submitted "/name Bobhi").
    KEYS = {"enter": "submit_line", "up": "history_back", "down": "history_forward", "tab": "complete"}

    class MultilinePaste(Message):
        """Several lines (or one not drawn as it is) were pasted; ``text`` is the whole line as it would
        be after the paste."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, history: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history: list[str] = list(history or [])[-HISTORY_CAP:]
        self.names: list[str] = []
        self.commands: list[str] = []
        self._pos: int | None = None      # index into history while recalling
        self._draft = ""                   # what was typed before recalling started
        self._completion: tuple[int, list[str], int, str] | None = None  # start, candidates, index, value shown

    async def _on_key(self, event: events.Key) -> None:
        action = self.KEYS.get(event.key)
        if action is None:
            return
        event.stop()
        event.prevent_default()
        getattr(self, f"action_{action}")()

    def action_submit_line(self) -> None:
        """Hand the line up (``Input.Submitted``) and clear it at once, in key order."""
        line = self.value
        self._set("")
        self._pos = None
        self.post_message(self.Submitted(self, line))

    def action_history_back(self) -> None:
        self.action_history(-1)

    def action_history_forward(self) -> None:
        self.action_history(1)

    # -- history ----------------------------------------------------------------------
    def remember(self, line: str) -> None:
        """Add a sent line to the history (not a repeat of the last one); ends any recall."""
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[:-HISTORY_CAP]
        self._pos = None
        self._draft = ""

    def give_back(self, line: str) -> None:
        """A refused line comes back for editing; if something was typed since, it goes into the
        history instead (Up recalls it): refused text is never lost."""
        if self.value:
            self.remember(line)
        else:
            self._set(line)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._pos is None:
            if step > 0:
                return
            self._draft = self.value
            pos = len(self.history) - 1
        else:
            pos = self._pos + step
        if pos >= len(self.history):
            self._pos = None
            self._set(self._draft)
            return
        self._pos = max(0, pos)
        self._set(self.history[self._pos])

    def _set(self, value: str) -> None:
        self.value = value
        self.cursor_position = len(value)

    # -- completion -------------------------------------------------------------------
    def action_complete(self) -> None:
        state = self._completion
        if state is not None and state[3] == self.value:
            start, candidates, index, _ = state
            index = (index + 1) % len(candidates)
        else:
            before = self.value[: self.cursor_position]
            start = max(before.rfind(" "), before.rfind("\n")) + 1
            word = before[start:]
            mention = False
            if start == 0 and word.startswith("/"):
                pool = self.commands
            else:
                pool = self.names
                if word.startswith("@"):   # "@Bo": complete "Bo", keep the "@"
                    mention, word, start = True, word[1:], start + 1
            folded = word.casefold()
            candidates = ([c for c in pool if c.casefold().startswith(folded) and c != word]
                          if word or mention else [])
            if not candidates:
                self.app.bell()
                self._completion = None
                return
            index = 0
        choice = candidates[index]
        suffix = " " if choice.startswith("/") or start > 0 else ": "
        after = self.value[self.cursor_position:] if state is None or state[3] != self.value else ""
        value = self.value[:start] + choice + suffix + after
        self.value = value
        self.cursor_position = start + len(choice) + len(suffix)
        self._completion = (start, candidates, index, value)

    # -- paste ------------------------------------------------------------------------
    def _on_paste(self, event: events.Paste) -> None:
        # Input's own handler keeps only the first line and drops the rest: never let it run.
        event.stop()
        event.prevent_default()
        text = event.text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
        if "\n" not in text and visible(text) == text:
            # One line (perhaps with a trailing newline from the clipboard): insert it as typed.
            if self.selection.is_empty:
                self.insert_text_at_cursor(text)
            else:
                self.replace(text, *self.selection)
            return
        whole = self.value[: self.cursor_position] + text + self.value[self.cursor_position:]
        self.post_message(self.MultilinePaste(whole))
