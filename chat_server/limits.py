"""Every limit the server enforces on its clients, as options of ``chat-server start``.

One table (``LIMITS``): the option, where the value lives in a ``ServerConfig`` (its defaults are
the dataclasses' own: ``ServerConfig``, ``db_core.session.Limits``, ``db_core.evaluation.Budget``,
``db_core.ratelimit.Rate``) and what it means. ``add_options`` puts them on a parser,
``apply`` builds the config from the parsed values; README's Security section lists them.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

from .server import ServerConfig

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_bytes(text: str) -> int:
    """``4096``, ``64KiB``, ``16MiB``, ``1.5GB``: a positive number of bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a size such as 65536, 64KiB or 16MiB, got {text!r}")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number per second (0: unlimited), got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number per second (0: unlimited), got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def show(value: Any, parse: Any) -> str:
    """A default as the option would take it: ``8MiB`` for sizes, ``2`` for ``2.0``."""
    if parse is parse_bytes:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value % size == 0:
                return f"{value // size}{unit}"
        return str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True)
class LimitOption:
    flag: str
    path: tuple[str, ...]     # attributes from a ServerConfig down to the value
    parse: Any
    help: str

    def default(self) -> Any:
        value: Any = ServerConfig(data_dir=None)  # type: ignore[arg-type]  # only the defaults are read
        for name in self.path:
            value = getattr(value, name)
        return value


LIMITS = [
    LimitOption("--max-message-bytes", ("max_frame_bytes",), parse_bytes,
                "the largest message a client may send; a larger one closes its connection (1009)"),
    LimitOption("--send-queue-bytes", ("send_buffer_bytes",), parse_bytes,
                "unsent bytes a client may have; the write that would pass it disconnects the client as too slow"),
    LimitOption("--requests-per-second", ("limits", "connection_requests", "per_second"), _rate,
                "requests (calls, queries, subscriptions) per second per connection; 0: unlimited"),
    LimitOption("--request-burst", ("limits", "connection_requests", "burst"), _count,
                "requests a connection may make at once before the rate applies"),
    LimitOption("--identity-requests-per-second", ("limits", "identity_requests", "per_second"), _rate,
                "requests per second per identity, over all its connections; 0: unlimited"),
    LimitOption("--identity-request-burst", ("limits", "identity_requests", "burst"), _count,
                "requests an identity may make at once before the rate applies"),
    LimitOption("--control-frames-per-second", ("control_frames", "per_second"), _rate,
                "pings and pongs a connection may send per second; past it the connection is closed (1008)"),
    LimitOption("--control-frame-burst", ("control_frames", "burst"), _count,
                "pings and pongs a connection may send at once before the rate applies"),
    LimitOption("--max-in-flight", ("limits", "max_in_flight",), _count,
                "requests a connection may have awaiting their replies"),
    LimitOption("--query-rows-scanned", ("limits", "budget", "rows_scanned"), _count,
                "rows a query (a one-off SELECT, or one subscribe) may read"),
    LimitOption("--query-rows-returned", ("limits", "budget", "rows_returned"), _count,
                "rows a query's answer may hold"),
    LimitOption("--query-seconds", ("limits", "budget", "seconds"), _seconds,
                "time a query may take to evaluate (it runs in slices: others are served meanwhile)"),
    LimitOption("--reply-bytes", ("limits", "budget", "reply_bytes"), parse_bytes,
                "the largest answer to a query or subscribe"),
    LimitOption("--running-queries", ("limits", "max_running_queries",), _count,
                "queries evaluated at once per database; more wait their turn"),
    LimitOption("--connections-per-address", ("connections_per_address",), _count,
                "connections open at once from one client address (IPv6: one /64)"),
    LimitOption("--connects-per-second", ("connects_per_address", "per_second"), _rate,
                "new connections per second from one address; 0: unlimited"),
    LimitOption("--connect-burst", ("connects_per_address", "burst"), _count,
                "new connections one address may open at once before the rate applies"),
    LimitOption("--new-identities-per-second", ("new_identities_per_address", "per_second"), _rate,
                "anonymous connections (each mints an identity, and a user row) per second per address; 0: unlimited"),
    LimitOption("--new-identity-burst", ("new_identities_per_address", "burst"), _count,
                "anonymous connections one address may open at once before the rate applies"),
]


def _dest(option: LimitOption) -> str:
    return "limit_" + option.flag.lstrip("-").replace("-", "_")


def add_options(parser: argparse.ArgumentParser) -> None:
    """The limit options of ``start``, in their own group of ``--help``, each with its default."""
    group = parser.add_argument_group("limits", "What one client may ask of the server (README: Security).")
    for option in LIMITS:
        group.add_argument(option.flag, type=option.parse, dest=_dest(option), metavar="N",
                           help=f"{option.help} (default {show(option.default(), option.parse)})")


def apply(config: ServerConfig, args: argparse.Namespace) -> ServerConfig:
    """``config`` with every limit option given on the command line; the rest keep their defaults."""
    for option in LIMITS:
        value = getattr(args, _dest(option), None)
        if value is not None:
            config = _replace(config, option.path, value)
    return config


def _replace(obj: Any, path: tuple[str, ...], value: Any) -> Any:
    head, *rest = path
    inner = value if not rest else _replace(getattr(obj, head), tuple(rest), value)
    return dataclasses.replace(obj, **{head: inner})
