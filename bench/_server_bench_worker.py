"""One client process of server_bench.py: several raw-protocol websocket clients on one asyncio loop.

Run by server_bench.py only:  python _server_bench_worker.py '<json config>'

Protocol with the orchestrator (one line each):
    worker -> stdout  READY {"connected": n, ...}   every client connected (and subscribed)
    stdin  -> worker  GO <start_ns> <measure_ns> <end_ns> <stop_ns>   (time.time_ns() values)
    worker -> stdout  RESULT {...}                   after stop_ns, the counts and histograms

Clients speak the qc.msgpack.v1 wire format directly (db_core/protocol.py), without
the SDK's row decoding and cache, over a lean websocket client (``RawWebSocket``:
frames parsed in ``data_received``, no task switch per frame) unless the config
says ``"client": "websockets"``; the client side shares the machine's cores with
the server, so it must cost as little as possible. The baseline servers speak the
same frames, so the client work is identical for every server.

A sender calls ``send_message`` with the text ``<time_ns>:<client id>:<seq>`` and
waits for its result (closed loop), or sends one every ``interval`` seconds
(paced). Every subscribed client decodes each ``tx`` frame and, for messages from
another client sent inside the measurement window, records time.time_ns() minus
the embedded send time (one machine, one realtime clock for all processes).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import msgpack
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _server_bench_common import SUBPROTOCOL, bucket, raise_file_limit  # noqa: E402

packb = msgpack.packb
unpackb = msgpack.unpackb


class Stats:
    def __init__(self) -> None:
        self.call_hist: dict[int, int] = {}
        self.deliv_hist: dict[int, int] = {}
        self.committed = 0          # committed calls sent inside the window
        self.calls_total = 0        # every call answered, any time
        self.statuses: dict[str, int] = {}   # non-committed answers
        self.delivered = 0          # deliveries of in-window messages from other clients
        self.delivered_all = 0      # all message rows seen
        self.frames = 0             # tx frames received
        self.timeouts = 0
        self.errors: list[str] = []
        self.closed_early = 0
        self.last_delivery_ns = 0   # when the last in-window delivery arrived (for drain checks)


class RawWebSocket(asyncio.Protocol):
    """A minimal websocket client on a plain asyncio Protocol, to keep the load generator cheap.

    Frames are parsed straight from ``data_received`` and handed to ``on_frame``
    synchronously (no task switch per frame, unlike a websockets client's
    ``recv``); pings are answered; outgoing frames are masked (RFC 6455).
    Only what these servers send is handled: unfragmented binary frames mostly.
    """

    def __init__(self, host: str, port: int, path: str) -> None:
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n").encode()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.inbox: list[bytes] = []            # frames before on_frame is set
        self.on_frame: Any = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:buf.find(b"\r\n")]).decode(errors="replace")
            del buf[:end + 4]
            if " 101 " not in status + " ":
                self.opened.set_exception(ConnectionError(f"no websocket upgrade: {status}"))
                self.transport.close()
                return
            self.upgraded = True
            self.opened.set_result(None)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if n - pos < head + length:
                break
            payload = bytes(buf[pos + head:pos + head + length])
            pos += head + length
            op = b0 & 0x0F
            if op in (1, 2) or op == 0:
                if not b0 & 0x80:
                    self.fragments.append(payload)
                    continue
                if self.fragments:
                    payload = b"".join(self.fragments) + payload
                    self.fragments = []
                if self.on_frame is None:
                    self.inbox.append(payload)
                else:
                    self.on_frame(payload)
            elif op == 9:
                self._write(0xA, payload)
            elif op == 8:
                if len(payload) >= 2:
                    self.close_code = int.from_bytes(payload[:2], "big")
                    self.close_reason = payload[2:].decode(errors="replace")
                self._write(0x8, payload[:2])
                self.transport.close()
                break
        del buf[:pos]

    def _write(self, op: int, payload: bytes) -> None:
        n = len(payload)
        key = os.urandom(4)
        if n < 126:
            head = bytes((0x80 | op, 0x80 | n))
        elif n < 1 << 16:
            head = bytes((0x80 | op, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | op, 0x80 | 127)) + n.to_bytes(8, "big")
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + key + masked)

    # The subset of a websockets connection the bench uses.
    async def send(self, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self._write(0x2, payload)

    async def recv(self) -> bytes:
        for _ in range(3000):  # bounded wait for the handshake-phase frames
            if self.inbox:
                return self.inbox.pop(0)
            if self.lost.done():
                raise ConnectionError(f"connection closed: {self.close_code} {self.close_reason}")
            await asyncio.sleep(0.01)
        raise asyncio.TimeoutError

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write(0x8, (1000).to_bytes(2, "big"))
            try:
                await asyncio.wait_for(asyncio.shield(self.lost), 3)
            except asyncio.TimeoutError:
                self.transport.abort()


async def raw_connect(url: str) -> RawWebSocket:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: RawWebSocket(host, port, u.path or "/"), host, port), 30)
    await asyncio.wait_for(asyncio.shield(proto.opened), 30)
    return proto


class BenchClient:
    __slots__ = ("gid", "sgid", "ws", "waiter", "stats", "ms", "end", "stop_ns", "reader", "per_message")

    def __init__(self, gid: int, ws: Any, stats: Stats) -> None:
        self.gid = gid
        self.sgid = str(gid)
        self.ws = ws
        self.waiter: tuple[int, asyncio.Future[Any]] | None = None
        self.stats = stats
        self.ms = self.end = self.stop_ns = 0
        self.reader: asyncio.Task[None] | None = None
        self.per_message: dict[str, int] | None = None

    def start(self, ms: int, end: int, stop: int, per_message: dict[str, int] | None) -> None:
        self.ms, self.end, self.stop_ns, self.per_message = ms, end, stop, per_message
        if isinstance(self.ws, RawWebSocket):
            for frame in self.ws.inbox:
                self.handle(frame)
            self.ws.inbox.clear()
            self.ws.on_frame = self.handle_safe
            self.reader = asyncio.create_task(self.watch_raw())
        else:
            self.reader = asyncio.create_task(self.read_ws())

    def handle_safe(self, frame: bytes) -> None:
        try:
            self.handle(frame)
        except Exception as exc:  # a bad frame: report it, keep reading
            if len(self.stats.errors) < 100:
                self.stats.errors.append(f"client {self.gid}: bad frame: {exc!r}")

    def handle(self, frame: bytes) -> None:
        m = unpackb(frame, raw=False)
        t = m.get("t")
        stats = self.stats
        if t == "tx":
            now = time.time_ns()
            stats.frames += 1
            hist = stats.deliv_hist
            for tx in m["txs"]:
                for upd in tx["updates"]:
                    for row in upd[2]:
                        stats.delivered_all += 1
                        text = row[2]
                        ts, who, _ = text.split(":", 2)
                        if who == self.sgid:
                            continue
                        ts = int(ts)
                        if self.ms <= ts < self.end:
                            us = (now - ts) / 1000
                            k = bucket(us)
                            hist[k] = hist.get(k, 0) + 1
                            stats.delivered += 1
                            stats.last_delivery_ns = now
                            pm = self.per_message
                            if pm is not None and pm.get(text, 0) < us:
                                pm[text] = us
        elif t in ("result", "call"):  # "call": the echo server sends the request back
            w = self.waiter
            if w is not None and w[0] == m.get("id") and not w[1].done():
                w[1].set_result(m)
        elif t == "error":
            stats.errors.append(f"client {self.gid}: server error: {m.get('error')}")

    def _closed(self, code: Any, reason: str) -> None:
        if time.time_ns() < self.stop_ns:
            self.stats.closed_early += 1
            self.stats.errors.append(f"client {self.gid}: connection closed during the run: {code} {reason}")
        w = self.waiter
        if w is not None and not w[1].done():
            w[1].set_exception(ConnectionError("connection closed"))

    async def watch_raw(self) -> None:
        await self.ws.lost
        self._closed(self.ws.close_code, self.ws.close_reason or "no close frame")

    async def read_ws(self) -> None:
        try:
            async for frame in self.ws:
                self.handle(frame)
            self._closed(self.ws.close_code, self.ws.close_reason or "")
        except ConnectionClosed as exc:
            self._closed(exc.rcvd.code if exc.rcvd else "", exc.rcvd.reason if exc.rcvd else "no close frame")
        except Exception as exc:  # a bad frame: report, do not hang
            self.stats.errors.append(f"client {self.gid}: reader failed: {exc!r}")
            self._closed("", "reader failed")

    async def call(self, rid: int, text: str, timeout: float) -> dict[str, Any] | None:
        fut = asyncio.get_running_loop().create_future()
        self.waiter = (rid, fut)
        await self.ws.send(packb({"t": "call", "id": rid, "reducer": "send_message", "args": [text]}))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.waiter = None


async def open_client(url: str, gid: int, subscribe: bool, stats: Stats, sem: asyncio.Semaphore,
                      deadline: float, raw: bool) -> BenchClient | None:
    async with sem:
        for attempt in range(3):
            if time.monotonic() > deadline:
                break
            try:
                if raw:
                    ws: Any = await raw_connect(url)
                else:
                    ws = await connect(url, subprotocols=[SUBPROTOCOL], compression=None, max_size=None,
                                       ping_interval=None, open_timeout=30, close_timeout=2)
            except Exception as exc:
                if attempt == 2:
                    stats.errors.append(f"client {gid}: connect failed: {exc!r}")
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            try:
                hello = unpackb(await asyncio.wait_for(ws.recv(), 30), raw=False)
                if hello.get("t") != "identity":
                    raise RuntimeError(f"first frame is {hello.get('t')!r}, not identity")
                if subscribe:
                    await ws.send(packb({"t": "subscribe", "id": 1, "queries": ["SELECT * FROM message"]}))
                    for _ in range(100):  # bounded: skip anything that precedes the answer
                        m = unpackb(await asyncio.wait_for(ws.recv(), 30), raw=False)
                        if m.get("t") == "subscribed" and m.get("id") == 1:
                            break
                        if m.get("t") in ("subscription_error", "error"):
                            raise RuntimeError(f"subscribe refused: {m.get('error')}")
                    else:
                        raise RuntimeError("no subscribe answer")
                return BenchClient(gid, ws, stats)
            except Exception as exc:
                stats.errors.append(f"client {gid}: handshake failed: {exc!r}")
                await ws.close()
                return None
        return None


async def closed_loop(c: BenchClient, start: int, ms: int, end: int, timeout: float) -> None:
    stats = c.stats
    await asyncio.sleep(max(0.0, (start - time.time_ns()) / 1e9))
    rid = 1000
    perf = time.perf_counter_ns
    chist = stats.call_hist
    while True:
        sent = time.time_ns()
        if sent >= end:
            return
        rid += 1
        t0 = perf()
        try:
            res = await c.call(rid, f"{sent}:{c.gid}:{rid}", timeout)
        except asyncio.TimeoutError:
            stats.timeouts += 1
            stats.errors.append(f"client {c.gid}: no result within {timeout} s")
            return
        except (ConnectionError, ConnectionClosed):
            return
        dt = (perf() - t0) / 1000
        stats.calls_total += 1
        status = res.get("status") if res else None
        if sent >= ms:
            if status == "committed" or res.get("t") == "call":
                stats.committed += 1
                k = bucket(dt)
                chist[k] = chist.get(k, 0) + 1
            else:
                stats.statuses[str(status)] = stats.statuses.get(str(status), 0) + 1
                if len(stats.errors) < 20:
                    stats.errors.append(f"client {c.gid}: call answered {status}: {res.get('error')}")


async def paced(c: BenchClient, ms: int, interval: float, n: int, timeout: float) -> None:
    """One call every ``interval`` seconds from ``ms`` (a late result delays the next send, never overlaps)."""
    stats = c.stats
    perf = time.perf_counter_ns
    for i in range(n):
        due = ms + int(i * interval * 1e9)
        await asyncio.sleep(max(0.0, (due - time.time_ns()) / 1e9))
        sent = time.time_ns()
        t0 = perf()
        try:
            res = await c.call(10_000 + i, f"{sent}:{c.gid}:{i}", timeout)
        except asyncio.TimeoutError:
            stats.timeouts += 1
            stats.errors.append(f"client {c.gid}: no result within {timeout} s")
            return
        except (ConnectionError, ConnectionClosed):
            return
        dt = (perf() - t0) / 1000
        stats.calls_total += 1
        if res.get("status") == "committed":
            stats.committed += 1
            k = bucket(dt)
            stats.call_hist[k] = stats.call_hist.get(k, 0) + 1
        else:
            stats.statuses[str(res.get("status"))] = stats.statuses.get(str(res.get("status")), 0) + 1


async def main(cfg: dict[str, Any]) -> None:
    nofile = raise_file_limit()
    stats = Stats()
    url = cfg["url"]
    n_send, n_listen, base = cfg["senders"], cfg["listeners"], cfg["gid_base"]
    sem = asyncio.Semaphore(cfg.get("connect_concurrency", 25))
    deadline = time.monotonic() + cfg.get("connect_timeout", 90)
    t_conn = time.perf_counter()
    raw = cfg.get("client", "raw") == "raw"
    tasks = [open_client(url, base + i, (i >= n_send or cfg.get("sender_subscribes", True)) and not cfg.get("echo"),
                         stats, sem, deadline, raw)
             for i in range(n_send + n_listen)]
    opened = await asyncio.gather(*tasks)
    clients = [c for c in opened if c is not None]
    senders = [c for c in opened[:n_send] if c is not None]
    connect_s = time.perf_counter() - t_conn
    print("READY " + json.dumps({"connected": len(clients), "connect_s": connect_s, "nofile": nofile}), flush=True)

    line = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline), 300)
    parts = line.split()
    if not parts or parts[0] != "GO":
        for c in clients:
            await c.ws.close()
        return
    start, ms, end, stop = (int(p) for p in parts[1:5])
    per_message: dict[str, int] | None = {} if cfg.get("track_messages") else None
    for c in clients:
        c.start(ms, end, stop, per_message)
    timeout = cfg.get("call_timeout", 10.0)
    pace = cfg.get("pace")
    if pace:
        jobs = [paced(c, ms, pace["interval"], pace["count"], timeout) for c in senders]
    else:
        jobs = [closed_loop(c, start, ms, end, timeout) for c in senders]
    cpu: list[float] = []

    async def sample_cpu() -> None:
        for at in (ms, end):
            await asyncio.sleep(max(0.0, (at - time.time_ns()) / 1e9))
            cpu.append(sum(os.times()[:2]))

    cpu_task = asyncio.create_task(sample_cpu())
    run = asyncio.gather(*jobs)
    try:
        await asyncio.wait_for(run, max(1.0, (stop - time.time_ns()) / 1e9 + timeout))
    except asyncio.TimeoutError:
        stats.errors.append("senders did not finish in time")
    # Drain: listeners keep reading until stop_ns.
    await asyncio.sleep(max(0.0, (stop - time.time_ns()) / 1e9))
    cpu_task.cancel()
    result = {
        "connected": len(clients), "connect_s": connect_s,
        "call_hist": stats.call_hist, "deliv_hist": stats.deliv_hist, "committed": stats.committed,
        "calls_total": stats.calls_total, "statuses": stats.statuses, "delivered": stats.delivered,
        "delivered_all": stats.delivered_all, "frames": stats.frames, "timeouts": stats.timeouts,
        "errors": stats.errors[:20], "n_errors": len(stats.errors), "closed_early": stats.closed_early,
        "last_delivery_ns": stats.last_delivery_ns,
        "per_message_max": per_message,
        "window_cpu_s": cpu[1] - cpu[0] if len(cpu) == 2 else None,
    }
    print("RESULT " + json.dumps(result), flush=True)

    async def close(c: BenchClient) -> None:
        try:
            await c.ws.close()
        except Exception:
            pass
        if c.reader is not None:
            c.reader.cancel()

    try:
        await asyncio.wait_for(asyncio.gather(*(close(c) for c in clients)), 15)
    except asyncio.TimeoutError:
        pass


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
