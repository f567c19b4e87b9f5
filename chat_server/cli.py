"""The ``chat-server`` command line."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import resource
import signal
import socket
import sys
from pathlib import Path

from db_core import DbError, Identity

from . import limits
from .address import DEFAULT_SERVER, join_host_port, split_host_port
from .commands import add_client_commands, add_command
from .errors import InvalidAddress
from .server import ChatServer, ListenError, ServerConfig
from .tokens import default_data_dir, remember_owner


def parse_listen(text: str) -> tuple[str, int]:
    """``--listen HOST:PORT`` (``[::1]:3000`` for IPv6; port 0 picks a free one) as (host, port)."""
    try:
        return split_host_port(text.strip(), lowest_port=0)
    except InvalidAddress as exc:
        raise argparse.ArgumentTypeError(f"invalid address {text!r}: {exc}") from None


def _unresolvable(host: str, port: int) -> str | None:
    """Why ``host`` cannot be listened on if its name does not resolve, else None."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return exc.strerror or str(exc)
    return None


def parse_identity(text: str) -> Identity:
    """``--publisher IDENTITY`` (argparse type): 0x and 64 hex digits."""
    try:
        return Identity.from_hex(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _raise_file_limit() -> None:
    # A thousand clients need more than the usual 1,024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


async def _serve(config: ServerConfig) -> int:
    server = ChatServer(config)
    await server.start()
    address = join_host_port(config.host, server.port)
    remember_owner(address, server.owner_token)
    scheme = "wss" if config.tls_cert else "ws"
    logging.getLogger("chat_server").info(
        "listening on %s://%s (databases: %s; data in %s)", scheme, address,
        ", ".join(sorted(server.databases)), config.data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("chat_server").info("stopping: disconnecting clients and flushing the log")
    await server.stop()
    for line in server.failures:
        print(f"error: {line} (everything acknowledged before that is saved)", file=sys.stderr)
    return 1 if server.failures else 0


def cmd_start(args: argparse.Namespace) -> int:
    """run the server in the foreground

    Run the server headless in the foreground; Ctrl-C stops it cleanly.

    example: chat-server start --listen 127.0.0.1:3000 --data-dir ./chat-data
    """
    host, port = args.listen
    reason = _unresolvable(host, port)
    if reason is not None:
        print(f"error: cannot listen on {join_host_port(host, port)}: {reason}", file=sys.stderr)
        return 1
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = host == "localhost"
    if not is_loopback:
        print(f"warning: listening on {host}: anyone on the network can connect to this server", file=sys.stderr)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    _raise_file_limit()
    config = limits.apply(ServerConfig(data_dir=Path(args.data_dir) if args.data_dir else default_data_dir(), host=host,
                                       port=port, tls_cert=args.tls_cert, tls_key=args.tls_key,
                                       publishers=frozenset(args.publisher)), args)
    if config.limits.budget.reply_bytes > config.send_buffer_bytes:
        print(f"error: --reply-bytes ({config.limits.budget.reply_bytes}) must not exceed --send-queue-bytes"
              f" ({config.send_buffer_bytes}): the largest reply could never be sent", file=sys.stderr)
        return 2
    if not args.no_uvloop:
        try:
            import uvloop  # optional: pip install 'quickstart-chat[fast]'

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            logging.getLogger("chat_server").info("using uvloop")
        except ImportError:
            pass
    try:
        return asyncio.run(_serve(config))
    except (DbError, ListenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the data directory (or a TLS file) cannot be used
        print(f"error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: ``start`` and the client verbs (``chat_server.commands``)."""
    parser = argparse.ArgumentParser(
        prog="chat-server",
        description="Host quickstart-chat databases over websockets, and talk to them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    start = add_command(sub, cmd_start)
    start.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 3000), metavar="HOST:PORT",
                       help="address to listen on, [::1]:PORT for IPv6, port 0 for any free one"
                            " (default 127.0.0.1:3000)")
    start.add_argument("--data-dir", metavar="DIR", help=f"where databases live (default {default_data_dir()})")
    start.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve wss:// with this certificate (PEM)")
    start.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's private key (PEM)")
    start.add_argument("--publisher", type=parse_identity, action="append", default=[], metavar="IDENTITY",
                       help="also let this identity (0x + 64 hex digits) create databases, and update or delete"
                            " its own; repeatable. Modules run with the server's rights: only trusted people."
                            " Default: the server's owner alone")
    limits.add_options(start)
    start.add_argument("--no-uvloop", action="store_true",
                       help="use the plain asyncio loop even if uvloop is installed")
    start.set_defaults(func=cmd_start)
    add_client_commands(sub, DEFAULT_SERVER)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``chat-server`` with ``argv`` (the process's own if None); returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per connection is noise
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
