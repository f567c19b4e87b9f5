"""Every limit is an option of ``chat-server start``, takes effect, and is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from chat_server import limits
from chat_server.cli import build_parser
from chat_server.client import Client

from ..server_harness import ServerProcess, run

ROOT = Path(__file__).resolve().parents[2]


def test_every_limit_option_reaches_its_setting() -> None:
    parser = build_parser()
    for option in limits.LIMITS:
        value = "7" if option.parse is not limits.parse_bytes else "7KiB"
        args = parser.parse_args(["start", option.flag, value])
        config = limits.apply(limits.ServerConfig(data_dir=Path(".")), args)
        got = config
        for name in option.path:
            got = getattr(got, name)
        assert got == (7 * 1024 if option.parse is limits.parse_bytes else 7), option.flag
        assert option.flag in (ROOT / "README.md").read_text(), f"README does not document {option.flag}"


@pytest.mark.parametrize("text, expected", [("4096", 4096), ("64KiB", 65536), ("16MiB", 16 << 20), ("1.5kb", 1500)])
def test_sizes(text: str, expected: int) -> None:
    assert limits.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "-5", "0", "12 parsecs", "1e3"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        limits.parse_bytes(text)


def test_limits_given_to_start_apply(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, args=["--request-burst", "3", "--requests-per-second", "0.5",
                                           "--query-rows-returned", "2"]).start()
    try:
        async def main() -> None:
            clients = [await Client.connect(server.url, "quickstart-chat") for _ in range(3)]
            r = await clients[0].sql("SELECT * FROM user")
            assert r.error == "query exceeded its budget of 2 rows returned"
            statuses = [(await clients[0].call("send_message", "hi")).status for _ in range(3)]
            assert statuses == ["committed", "committed", "refused"]
            for c in clients:
                await c.close()

        run(main())
    finally:
        server.stop()
