"""The hand-rolled chat server a user might write instead (a baseline for server_bench.py).

    python _server_bench_baseline.py --mode per-message|per-batch|echo --data-dir DIR [--listen 127.0.0.1:0]

``per-message`` / ``per-batch``: a ``websockets`` server and an append-only log
file with group commit. Calls go into a pending list; one writer task takes
everything pending, writes it and fdatasyncs it on a thread (so the next
batch accumulates meanwhile), then broadcasts the batch with
``websockets.broadcast`` to every subscribed connection (``per-message``: one
frame per message; ``per-batch``: one frame for the whole batch) and only then
writes each caller its reply. It speaks the same frames as the real server
(identity, subscribe -> subscribed, call -> result, tx updates) so the benchmark
clients do identical work. No per-message deflate, like the real server.

``echo``: a websockets server that sends every frame back (no disk): the ceiling.

Logs ``listening on ws://HOST:PORT`` on stderr once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
from websockets.asyncio.server import ServerConnection, broadcast, serve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _server_bench_common import SUBPROTOCOL, raise_file_limit  # noqa: E402

packb = msgpack.packb


class Committer:
    """Group commit: whatever arrived while the previous batch was syncing is the next batch."""

    def __init__(self, path: Path, per_batch: bool, clients: set[ServerConnection]) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.per_batch = per_batch
        self.clients = clients
        self.pending: list[tuple[ServerConnection, int, bytes, str]] = []
        self.wake = asyncio.Event()
        self.offset = 0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="log")
        self.batches = 0

    def append(self, ws: ServerConnection, rid: int, sender: bytes, text: str) -> None:
        self.pending.append((ws, rid, sender, text))
        self.wake.set()

    def _write(self, data: bytes) -> None:
        os.write(self.fd, data)
        os.fdatasync(self.fd)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            if not batch:
                continue
            ts = time.time_ns() // 1000
            first = self.offset + 1
            self.offset += len(batch)
            data = b"".join(packb([first + i, ts, sender, text]) for i, (_, _, sender, text) in enumerate(batch))
            await loop.run_in_executor(self.pool, self._write, data)
            self.batches += 1
            txs = [{"offset": first + i, "timestamp": ts, "reducer": "send_message", "caller": sender,
                    "updates": [[1, "message", [[sender, ts, text]], []]]}
                   for i, (_, _, sender, text) in enumerate(batch)]
            if self.per_batch:
                broadcast(self.clients, packb({"t": "tx", "txs": txs}))
            else:
                for tx in txs:
                    broadcast(self.clients, packb({"t": "tx", "txs": [tx]}))
            for i, (ws, rid, _, _) in enumerate(batch):
                broadcast((ws,), packb({"t": "result", "id": rid, "status": "committed", "error": None,
                                        "offset": first + i, "timestamp": ts}))


async def serve_log(host: str, port: int, data_dir: Path, per_batch: bool) -> None:
    clients: set[ServerConnection] = set()
    data_dir.mkdir(parents=True, exist_ok=True)
    committer = Committer(data_dir / "messages.log", per_batch, clients)

    async def handler(ws: ServerConnection) -> None:
        sender = os.urandom(32)
        await ws.send(packb({"t": "identity", "identity": sender, "token": "", "connection_id": os.urandom(16),
                             "database": "baseline", "schema": {}}))
        try:
            async for frame in ws:
                m = msgpack.unpackb(frame, raw=False)
                t = m.get("t")
                if t == "call":
                    args = m.get("args")
                    if m.get("reducer") == "send_message" and isinstance(args, list) and len(args) == 1 \
                            and isinstance(args[0], str) and args[0]:
                        committer.append(ws, m["id"], sender, args[0])
                    else:
                        await ws.send(packb({"t": "result", "id": m.get("id"), "status": "failed",
                                             "error": "bad call", "offset": -1, "timestamp": 0}))
                elif t == "subscribe":
                    clients.add(ws)
                    await ws.send(packb({"t": "subscribed", "id": m["id"], "queries": []}))
                else:
                    await ws.send(packb({"t": "error", "id": m.get("id"), "error": f"unsupported: {t}"}))
        finally:
            clients.discard(ws)

    writer = asyncio.create_task(committer.run())
    await run_server(handler, host, port)
    writer.cancel()
    os.close(committer.fd)


async def serve_echo(host: str, port: int) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(packb({"t": "identity"}))
        async for frame in ws:
            await ws.send(frame)

    await run_server(handler, host, port)


async def run_server(handler, host: str, port: int) -> None:
    async with serve(handler, host, port, subprotocols=[SUBPROTOCOL], compression=None,
                     max_size=1 << 20) as server:
        sock = next(iter(server.sockets))
        print(f"listening on ws://{host}:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["per-message", "per-batch", "echo"], required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--switch-interval", type=float, default=50e-6,
                        help="sys.setswitchinterval (the real server's database sets 50 us; same here for fairness)")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    raise_file_limit()
    sys.setswitchinterval(args.switch_interval)
    if args.mode == "echo":
        asyncio.run(serve_echo(host, int(port)))
    else:
        assert args.data_dir is not None, "--data-dir is needed for the log"
        asyncio.run(serve_log(host, int(port), args.data_dir, args.mode == "per-batch"))


if __name__ == "__main__":
    main()
