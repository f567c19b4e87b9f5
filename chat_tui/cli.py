"""The ``chat-tui`` command: its options, checked before the screen is taken (a bad value is
one line and exit status 2), the profile claimed, then the app run."""

from __future__ import annotations

import argparse
import sys

from chat_server.client import DEFAULT_SERVER, argument_type, check_database_name, parse_server
from chat_tui.profiles import ProfileBusy, claim_profile, validate_name


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
    return parser.parse_args(argv)


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
    server = args.server or DEFAULT_SERVER
    from chat_tui.app import ChatApp   # here: the app module imports this one

    app = ChatApp(server=server, database=args.database, profile=profile, auto_start=args.server is None,
                  tune_gc=True)
    app.run()
    profile.release()
    return 0
