"""One attacker of bench/abuse_bench.py, in its own process: ``python _abuse_attacker.py SCENARIO HOST:PORT SECONDS``.

Prints one JSON line when done: what it sent and what came back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

from db_core.protocol import SUBPROTOCOL, CallReducer, OneOffQuery, Subscribe, decode_server, encode  # noqa: E402

DB = "quickstart-chat"
SELF_JOIN = "SELECT a.* FROM message AS a JOIN message AS b ON a.sender = b.sender"
# Reads every message and returns none: the costliest scan the row budget lets through.
NOWHERE = "SELECT * FROM message WHERE text = 'no such text'"


def url(server: str) -> str:
    return f"ws://{server}/v1/database/{DB}/subscribe"


async def pipelined(server: str, seconds: float, make: Any, in_flight: int) -> dict[str, Any]:
    """Keep ``in_flight`` requests ``make(i)`` outstanding for ``seconds``, reconnecting when closed."""
    stats: dict[str, Any] = {"sent": 0, "answers": 0, "errors": 0, "bytes": 0, "closed": 0, "refused": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            ws = await connect(url(server), subprotocols=[SUBPROTOCOL], max_size=None,
                               compression=None)
        except (InvalidStatus, OSError):
            stats["refused"] += 1
            await asyncio.sleep(0.05)
            continue
        outstanding = 0
        try:
            await ws.recv()
            while time.monotonic() < end:
                while outstanding < in_flight:
                    await ws.send(encode(make(stats["sent"])))
                    stats["sent"] += 1
                    outstanding += 1
                frame = await asyncio.wait_for(ws.recv(), max(0.01, end - time.monotonic()))
                stats["bytes"] += len(frame)
                msg = decode_server(frame) if len(frame) < 4096 else None
                if type(msg).__name__ in ("TransactionUpdate", "IdentityToken"):
                    continue
                outstanding -= 1
                stats["answers"] += 1
                error = getattr(msg, "error", None)
                if error:
                    stats["errors"] += 1
                    stats["last_error"] = error
        except (TimeoutError, asyncio.TimeoutError):
            pass
        except ConnectionClosed as exc:
            stats["closed"] += 1
            stats["close_reason"] = exc.rcvd.reason if exc.rcvd else "closed"
        await ws.close()
    return stats


async def ping_flood(server: str, seconds: float) -> dict[str, Any]:
    """Send masked ping frames as fast as the socket takes them and never read the pongs; when the
    server hangs up, connect again (with the same token: one identity)."""
    first = await connect(url(server), subprotocols=[SUBPROTOCOL], compression=None)
    token = decode_server(await first.recv()).token
    await first.close()
    host, port = server.rsplit(":", 1)
    payload = b"x" * 125
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = bytes((0x89, 0x80 | len(payload))) + mask + masked
    burst = frame * 256
    stats: dict[str, Any] = {"sent": 0, "connected": 0, "closed": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock = socket.create_connection((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /v1/database/{DB}/subscribe HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Authorization: Bearer {token}\r\n"
                      f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n").encode())
        if not sock.recv(4096).startswith(b"HTTP/1.1 101"):  # from now on, never read
            stats["refused"] = stats.get("refused", 0) + 1
            sock.close()
            await asyncio.sleep(0.05)
            continue
        stats["connected"] += 1
        sock.setblocking(False)
        while time.monotonic() < end:
            try:
                stats["sent"] += sock.send(burst) // len(frame)
            except BlockingIOError:
                await asyncio.sleep(0.001)
            except OSError:
                stats["closed"] += 1
                break
        sock.close()
    return stats


async def churn(server: str, seconds: float, parallel: int = 8) -> dict[str, Any]:
    """Connect anonymously (a new identity each time) and hang up, as fast as possible."""
    stats = {"connected": 0, "refused": 0}
    end = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < end:
            try:
                ws = await connect(url(server), subprotocols=[SUBPROTOCOL], compression=None)
                await ws.recv()
                await ws.close()
                stats["connected"] += 1
            except InvalidStatus:
                stats["refused"] += 1
            except (OSError, ConnectionClosed):
                stats["refused"] += 1

    await asyncio.gather(*(one() for _ in range(parallel)))
    return stats


def main() -> None:
    scenario, server, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if scenario == "scans":
        coro = pipelined(server, seconds, lambda i: OneOffQuery(i, "SELECT * FROM message"), 16)
    elif scenario == "filtered-scans":
        coro = pipelined(server, seconds, lambda i: OneOffQuery(i, NOWHERE), 16)
    elif scenario == "self-join":
        coro = pipelined(server, seconds, lambda i: OneOffQuery(i, SELF_JOIN), 16)
    elif scenario == "subscribe-64":
        coro = pipelined(server, seconds, lambda i: Subscribe(i, ["SELECT * FROM message"] * 64), 4)
    elif scenario == "subscribe-64-filtered":
        coro = pipelined(server, seconds,
                         lambda i: Subscribe(i, [f"{NOWHERE[:-1]}{i}-{q}'" for q in range(64)]), 4)
    elif scenario == "message-flood":
        coro = pipelined(server, seconds, lambda i: CallReducer(i, "send_message", [f"flood {i}"]), 256)
    elif scenario == "ping-flood":
        coro = ping_flood(server, seconds)
    elif scenario == "connect-churn":
        coro = churn(server, seconds)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    print(json.dumps(asyncio.run(coro)), flush=True)


if __name__ == "__main__":
    main()
