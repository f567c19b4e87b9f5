"""The ``chat-server`` command line."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import resource
import signal
import sys
from pathlib import Path

import platformdirs

from db_core import DbError

from .client import DEFAULT_SERVER
from .commands import add_client_commands
from .server import ChatServer, ListenError, ServerConfig
from .tokens import remember_owner

APP = "quickstart-chat"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:3000, got {text!r}")
    return host.strip("[]"), int(port)


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
    remember_owner(f"{config.host}:{server.port}", server.owner_token)
    scheme = "wss" if config.tls_cert else "ws"
    logging.getLogger("chat_server").info(
        "listening on %s://%s:%d (databases: %s; data in %s)", scheme, config.host, server.port,
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
    host, port = args.listen
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
    config = ServerConfig(data_dir=Path(args.data_dir) if args.data_dir else default_data_dir(), host=host, port=port,
                          tls_cert=args.tls_cert, tls_key=args.tls_key)
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
    parser = argparse.ArgumentParser(
        prog="chat-server",
        description="Host quickstart-chat databases over websockets, and talk to them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    start = sub.add_parser(
        "start", help="run the server in the foreground",
        description="Run the server headless in the foreground; Ctrl-C stops it cleanly.",
        epilog="example: chat-server start --listen 127.0.0.1:3000 --data-dir ./chat-data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    start.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 3000), metavar="HOST:PORT",
                       help="address to listen on (default 127.0.0.1:3000)")
    start.add_argument("--data-dir", metavar="DIR", help=f"where databases live (default {default_data_dir()})")
    start.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve wss:// with this certificate (PEM)")
    start.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's private key (PEM)")
    start.add_argument("--no-uvloop", action="store_true", help="use the plain asyncio loop even if uvloop is installed")
    start.set_defaults(func=cmd_start)
    add_client_commands(sub, DEFAULT_SERVER)
    return parser


def main(argv: list[str] | None = None) -> int:
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
