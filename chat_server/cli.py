"""The ``chat-server`` command line."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import resource
import signal
import os
import socket
import sys
import time
from pathlib import Path

from db_core import DbError, Identity
from db_core.dirlock import HolderUnknown, lock_holder

from . import limits
from .address import DEFAULT_SERVER, join_host_port, split_host_port
from .commands import add_client_commands, add_command
from .errors import InvalidAddress
from .server import LOCK_NAME, ChatServer, ListenError, ServerConfig
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


STOP_POLL = 0.05  # seconds between looks at whether the server has gone


def _exited(pid: int) -> bool | None:
    """Whether process ``pid`` has exited (a zombie waiting for its parent counts); None if unknown."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, as another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # no /proc (not Linux): the released lock has to do
    state = stat.rpartition(")")[2].split()[:1]
    return state in (["Z"], ["X"])


def cmd_stop(args: argparse.Namespace) -> int:
    """stop the server running on a data directory

    Find the server that holds DIR (the pid its lock records), send it SIGTERM (it disconnects
    everyone, flushes the log and exits, as on Ctrl-C) and wait for it to exit. Exit status 0
    once it has stopped; 1 if no server runs on DIR or it did not stop in time.

    example: chat-server stop --data-dir ./chat-data
    """
    data = (Path(args.data_dir) if args.data_dir else default_data_dir()).expanduser().absolute()
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            pid = lock_holder(data, LOCK_NAME)
            break
        except HolderUnknown:  # a server starting this very moment: its pid is next
            if time.monotonic() >= deadline:
                print(f"error: the server on {data} has not written its pid to {data / LOCK_NAME}", file=sys.stderr)
                return 1
            time.sleep(STOP_POLL)
    if pid is None:
        print(f"error: no server is running on {data}", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # gone already: the loop below sees its lock released
    except PermissionError:
        print(f"error: cannot stop the server on {data} (pid {pid}): it belongs to another user", file=sys.stderr)
        return 1
    while True:
        try:
            holder = lock_holder(data, LOCK_NAME)
        except HolderUnknown:
            holder = -1  # a new server took it at once: ours released it
        if holder != pid and _exited(pid) is not False:
            print(f"stopped the server on {data} (pid {pid})")
            return 0
        if time.monotonic() >= deadline:
            print(f"error: the server on {data} (pid {pid}) did not stop within {args.timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(STOP_POLL)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < seconds < 1e6:
        raise argparse.ArgumentTypeError(f"must be more than 0 (and sensible), not {text}")
    return seconds


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
    stop = add_command(sub, cmd_stop)
    stop.add_argument("--data-dir", metavar="DIR", help=f"the server's data directory (default {default_data_dir()})")
    stop.add_argument("--timeout", type=_positive_seconds, default=30.0, metavar="SECONDS",
                      help="how long to wait for it to exit (default 30)")
    stop.set_defaults(func=cmd_stop)
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
