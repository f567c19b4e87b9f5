"""The ``chat-tui`` command: its options, checked before the screen is taken (a bad value is
one line and exit status 2), the profile claimed, then the app run."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from chat_server.client import DEFAULT_SERVER, InvalidAddress, argument_type, check_database_name, parse_server
from chat_tui.profiles import ProfileBusy, claim_profile, validate_name
from chat_tui.unread import NotifyMode


LOCAL_SERVER_ENV = "QC_LOCAL_SERVER"
"""The environment variable naming the local server's address (default 127.0.0.1:3000): used, and
started if none answers, when there is no ``--server`` (tests use it to run on a free port)."""


def local_server() -> str:
    """The local server's address: ``$QC_LOCAL_SERVER`` or 127.0.0.1:3000. InvalidAddress unless it
    is a plain ``ws://`` or ``host:port`` address on this machine (a server is started there)."""
    text = os.environ.get(LOCAL_SERVER_ENV) or DEFAULT_SERVER
    address = parse_server(text)
    try:
        loopback = ipaddress.ip_address(address.host).is_loopback
    except ValueError:
        loopback = address.host == "localhost"
    if address.secure or address.prefix or not loopback:
        raise InvalidAddress(f"{text!r} is not a plain address on this machine, e.g. 127.0.0.1:3000")
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chat-tui",
        description="Chat in the terminal on a quickstart-chat server. With no --server it uses the "
                    f"local one ({DEFAULT_SERVER}), starting it in the background if none answers.",
        epilog="example: chat-tui --profile alice   |   chat-tui --server wss://chat.example.org",
    )
    parser.add_argument("--server", metavar="URL", type=argument_type(parse_server),
                        help="server to connect to (http(s)://, ws(s)://, or host:port); never starts one")
    parser.add_argument("--database", metavar="NAME", default="quickstart-chat",
                        type=argument_type(check_database_name),
                        help="database to chat in (default: quickstart-chat)")
    parser.add_argument("--profile", metavar="NAME", type=argument_type(validate_name),
                        help="whose identity to use (default: the first profile not in use by another chat-tui, "
                        "so each terminal is its own user)")
    parser.add_argument("--notify", choices=[mode.value for mode in NotifyMode], default=NotifyMode.BELL.value,
                        help="how a message that mentions you reaches you while the terminal is in the "
                        "background: the terminal bell (default), a desktop notification, or not at all")
    args = parser.parse_args(argv)
    if args.server is None:
        try:
            local_server()   # refused here, before the screen is taken, as a bad --server is
        except InvalidAddress as exc:
            parser.error(f"{LOCAL_SERVER_ENV}: {exc}")
    return args


def main(argv: list[str] | None = None) -> int:
    """The ``chat-tui`` command: claim a profile, run the app; the exit status."""
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
    from chat_tui.app import ChatApp   # here: the app module imports this one

    app = ChatApp(server=args.server or local_server(), database=args.database, profile=profile,
                  auto_start=args.server is None, tune_gc=True, notify=NotifyMode(args.notify))
    app.run()
    profile.release()
    return 0
