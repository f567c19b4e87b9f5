"""Modal screens: the help, the confirmation for a paste (of several lines, or of one that holds
characters the terminal would act on or hide), and the question before quitting with unsent messages."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

from chat_tui.commands import COMMANDS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS
from db_core.visible import visible

KEYS: list[tuple[str, str]] = [
    ("Enter", "send the line (or run the /command)"),
    ("Up / Down", "recall earlier lines (kept across runs)"),
    ("Tab", "complete a name (@Bo too) or /command; again for the next"),
    ("F2", "hide or show presence lines (also /filter presence)"),
    ("ctrl+f", "search: Enter/Up older, Down newer, Esc back, Tab stay"),
    ("PageUp / PageDown", "scroll the messages"),
    ("ctrl+End", "jump to the newest message"),
    ("F1", "this help; Escape closes it, and the Keys panel of ctrl+p"),
    ("ctrl+p", "command palette (themes, keys, screenshot)"),
    ("ctrl+c", "copy the selected text (drag over the log to select), or quit if none"),
    ("ctrl+q", "quit"),
]


def help_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, synopsis, what in COMMANDS:
        table.add_row(f"{name} {synopsis}".strip(), what)
    table.add_row("//text", "send a message that begins with /")
    table.add_row("", "")
    for key, what in KEYS:
        table.add_row(key, what)
    table.add_row("", "")
    table.add_row("Limits", f"messages up to {MAX_MESSAGE_CHARS:,} characters; names up to {MAX_NAME_CHARS}")
    return table


class HelpScreen(ModalScreen[None]):
    """Commands and keys; any of Escape, q, F1 closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 84; max-width: 95%; height: auto; max-height: 95%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    HelpScreen #help-title { text-style: bold; margin-bottom: 1; }
    HelpScreen #help-foot { color: $text-muted; margin-top: 1; }
    """

    BINDINGS = [Binding("escape,q,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("quickstart-chat: commands and keys", id="help-title")
            yield Static(help_table(), id="help-table")
            yield Static("Escape closes this help.", id="help-foot")


class PasteScreen(ModalScreen[str | None]):
    """Asks whether to send a paste as one message, in an editor that shows it ``visible``; dismisses
    with the text to send (as edited) or None. ``refusal(text)`` says why a text would be refused (or
    None): a refused text is not sent, the dialog stays open with the reason and the text to edit."""

    DEFAULT_CSS = """
    PasteScreen { align: center middle; }
    PasteScreen > Vertical {
        width: 80%; max-width: 100; height: auto; max-height: 90%;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    PasteScreen #paste-text { height: auto; max-height: 12; margin: 1 0 0 0; }
    PasteScreen #paste-problem { height: auto; color: $text-error; margin-top: 1; }
    PasteScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    PasteScreen Button { margin-left: 2; }
    """

    AUTO_FOCUS = "#paste-text"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "send", "Send", priority=True)]

    def __init__(self, text: str, refusal: Callable[[str], str | None], note: str | None = None) -> None:
        super().__init__()
        self.text = text
        # A clipboard can hold anything (an escape sequence from a web page): shown, never acted on.
        self._as_shown = visible(text, multiline=True)
        self._refusal, self._note = refusal, note

    def compose(self) -> ComposeResult:
        lines = self.text.count("\n") + 1
        question = (f"You pasted {lines} lines ({len(self.text):,} characters). Send them as one message?"
                    if lines > 1 else
                    f"You pasted a line with characters shown below as codes ({len(self.text):,} characters). "
                    "Send it?")
        with Vertical():
            yield Static(Text(f"{question} {self._note}" if self._note else question, style="bold"))
            yield TextArea(self._as_shown, id="paste-text")
            yield Static(id="paste-problem")
            with Horizontal():
                yield Button("Send (Enter)", variant="primary", id="send")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self._show_problem()

    @on(TextArea.Changed)
    def _edited(self) -> None:
        self._show_problem()

    @property
    def edited_text(self) -> str:
        """What Send would send: the paste itself while the editor shows it unchanged, else the edit."""
        value = self.query_one("#paste-text", TextArea).text
        return self.text if value == self._as_shown else value

    def _show_problem(self) -> str | None:
        problem = self._refusal(self.edited_text)
        self.query_one("#paste-problem", Static).update(
            Text(f"{problem} Edit it above, or cancel." if problem else ""))
        return problem

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_send()
        else:
            self.dismiss(None)

    def action_send(self) -> None:
        if self._show_problem() is None:
            self.dismiss(self.edited_text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QuitScreen(ModalScreen[bool]):
    """Asks before quitting with calls still waiting for the connection; True quits."""

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical {
        width: 64; max-width: 95%; height: auto;
        border: thick $error; background: $surface; padding: 1 2;
    }
    QuitScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    QuitScreen Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape,n", "stay", "Stay"), Binding("y", "quit", "Quit")]

    def __init__(self, waiting: int) -> None:
        super().__init__()
        self.waiting = waiting

    def compose(self) -> ComposeResult:
        what = "1 message is" if self.waiting == 1 else f"{self.waiting} messages are"
        with Vertical():
            yield Static(Text(f"{what} still waiting for the connection and will be lost. Quit anyway?",
                              style="bold"))
            with Horizontal():
                yield Button("Quit (y)", variant="error", id="quit")
                yield Button("Stay (n)", variant="primary", id="stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit")

    def action_quit(self) -> None:
        self.dismiss(True)

    def action_stay(self) -> None:
        self.dismiss(False)
