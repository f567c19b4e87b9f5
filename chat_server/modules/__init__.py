"""Modules bundled with the server."""

from pathlib import Path

QUICKSTART_CHAT = Path(__file__).with_name("quickstart_chat.py")
