"""The README documents every chat-tui option, command and key."""

from pathlib import Path

from chat_tui.cli import parse_args
from chat_tui.commands import COMMANDS
from chat_tui.screens import KEYS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_option_is_documented() -> None:
    parser_options = [a for a in vars(parse_args([])) if a]
    assert parser_options
    for option in parser_options:
        assert f"`--{option.replace('_', '-')} " in README, option


def test_every_command_and_key_is_documented() -> None:
    for name, _, _ in COMMANDS:
        assert f"`{name}" in README, name
    for key, _ in KEYS:
        for part in key.split(" / "):
            assert part in README, part
