"""Server benchmark: chat-server beside the hand-rolled websockets + group-commit server, and 1,000-subscriber fan-out.

Run: .venv/bin/python bench/server_bench.py [--quick]

Everything runs in one go on this machine, servers and clients in separate
processes, all on 127.0.0.1 with ephemeral ports, and is printed as one
Markdown table with ratios (absolute numbers on a shared machine are noisy):

1. ``chat-server start`` (fresh data dir per scenario): 10 senders each calling
   ``send_message`` in a closed loop (send, await the result) while subscribed
   to ``SELECT * FROM message``; 10 clients in all, then 100 (90 subscribed
   listeners). Committed calls/s, call-to-result p50/p99, and send-to-delivery
   p50/p99 at every other subscribed client (the send time, time.time_ns(), is
   in the message text).
   With 10 and with 100 clients, chat-server and baseline (b) below run in
   alternating rounds (``--rounds``, default 5) and the table shows each one's
   median round, so that a slow spell of this shared machine hits both.
2. The same workload against the server a user might write instead
   (``_server_bench_baseline.py``): websockets, an append-only log file with
   group commit (reply after fdatasync), websockets.broadcast to all clients,
   (a) one frame per message, (b) one frame per commit batch. Plus the raw
   websockets echo rate (ping-pong, no disk, 10 connections in one process):
   the ceiling.
3. 1,000 subscribers to chat-server (4 processes) and one paced sender:
   p99 from send to delivery at all 1,000.

Clients speak the wire format directly over a lean websocket client
(``_server_bench_worker.py``; ``--client websockets`` uses websockets' own);
the baselines speak the same frames, so the client work is the same. No
per-message deflate anywhere. A reference row runs the fan-out against
baseline (b) too. The CPU column is CPU time during the window (server
process, all client processes, whole machine) in % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _calibration

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _server_bench_common import merge, percentile, raise_file_limit  # noqa: E402

PY = sys.executable
WORKER = HERE / "_server_bench_worker.py"
BASELINE = HERE / "_server_bench_baseline.py"
DB = "quickstart-chat"
TICK = os.sysconf("SC_CLK_TCK")
CLIENT = "raw"  # the workers' websocket client: "raw" (lean asyncio Protocol) or "websockets"


@dataclasses.dataclass
class Timing:
    warm: float      # seconds of load before the window
    dur: float       # the measurement window
    drain: float     # listeners keep reading this long after the window


@dataclasses.dataclass
class Row:
    server: str
    clients: str
    calls_s: float | None = None
    call_p50: float | None = None
    call_p99: float | None = None
    deliv_p50: float | None = None
    deliv_p99: float | None = None
    deliv_s: float | None = None
    delivered_pct: float | None = None
    server_cpu: float | None = None
    clients_cpu: float | None = None
    box_cpu: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    key: str = ""
    rounds: list[float | None] = dataclasses.field(default_factory=list)  # calls/s of each round (median rows)


# -- servers ------------------------------------------------------------------------------------
class ServerProc:
    """A server child process logging to a file; ``listening on ws://HOST:PORT`` tells its port."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    async def start(self, timeout: float = 30) -> "ServerProc":
        fh = open(self.log, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**(self.env or os.environ), "PYTHONUNBUFFERED": "1"})
        fh.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"listening on wss?://[^:\s]+:(\d+)", self.log.read_text(errors="replace"))
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def cpu_s(self) -> float:
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, IndexError, ValueError):
            return 0.0

    async def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.05)
        self.kill()
        return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def problems(self) -> list[str]:
        """Warning, error and traceback lines of the server's log."""
        text = self.log.read_text(errors="replace")
        return [line for line in text.splitlines()
                if re.search(r"WARNING|ERROR|CRITICAL|Traceback|Exception", line)]


def our_server(tmp: Path, tag: str) -> ServerProc:
    exe = Path(PY).parent / "chat-server"
    cmd = [str(exe)] if exe.exists() else [PY, "-m", "chat_server.cli"]
    home = tmp / f"{tag}-home"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}
    return ServerProc("chat-server", cmd + ["start", "--listen", "127.0.0.1:0", "--data-dir", str(tmp / f"{tag}-data")],
                      tmp / f"{tag}.log", env)


def baseline_server(tmp: Path, tag: str, mode: str) -> ServerProc:
    return ServerProc(f"baseline {mode}", [PY, str(BASELINE), "--mode", mode, "--listen", "127.0.0.1:0",
                                           "--data-dir", str(tmp / f"{tag}-data")], tmp / f"{tag}.log")


# -- client workers -------------------------------------------------------------------------------
class Worker:
    def __init__(self, cfg: dict[str, Any], log: Path) -> None:
        self.cfg = cfg
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}
        self.result: dict[str, Any] | None = None

    async def start(self) -> None:
        with open(self.log, "wb") as fh:
            self.proc = await asyncio.create_subprocess_exec(
                PY, str(WORKER), json.dumps(self.cfg), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=fh)

    async def line(self, prefix: str, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for _ in range(1000):  # bounded: skip stray output
            left = deadline - time.monotonic()
            if left <= 0:
                break
            raw = await asyncio.wait_for(self.proc.stdout.readline(), left)
            if not raw:
                break
            text = raw.decode(errors="replace")
            if text.startswith(prefix + " "):
                return json.loads(text[len(prefix) + 1:])
        raise RuntimeError(f"worker gave no {prefix} line; its stderr:\n{self.log.read_text(errors='replace')[-2000:]}")

    def send(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode())

    async def finish(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def run_load(server: ServerProc, path: str, layout: list[dict[str, Any]], timing: Timing, tmp: Path,
                   tag: str, connect_timeout: float = 120) -> dict[str, Any]:
    """Start the workers, wait until all are connected, run the window, gather their results."""
    url = f"ws://127.0.0.1:{server.port}{path}"
    workers: list[Worker] = []
    gid = 1
    for i, spec in enumerate(layout):
        cfg = {"url": url, "gid_base": gid, "client": CLIENT, **spec}
        gid += spec["senders"] + spec["listeners"]
        workers.append(Worker(cfg, tmp / f"{tag}-worker{i}.log"))
    try:
        await asyncio.gather(*(w.start() for w in workers))
        t = time.perf_counter()
        readies = await asyncio.gather(*(w.line("READY", connect_timeout) for w in workers))
        connect_s = time.perf_counter() - t
        start = time.time_ns() + 300_000_000
        ms = start + int(timing.warm * 1e9)
        end = ms + int(timing.dur * 1e9)
        stop = end + int(timing.drain * 1e9)
        for w in workers:
            w.send(f"GO {start} {ms} {end} {stop}\n")
        await asyncio.sleep(max(0.0, (ms - time.time_ns()) / 1e9))
        cpu0, box0 = server.cpu_s(), box_cpu()
        await asyncio.sleep(max(0.0, (end - time.time_ns()) / 1e9))
        cpu1, box1 = server.cpu_s(), box_cpu()
        results = await asyncio.gather(*(w.line("RESULT", (stop - time.time_ns()) / 1e9 + 60) for w in workers))
        await asyncio.gather(*(w.finish() for w in workers))
    finally:
        for w in workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.kill()
                await w.proc.wait()
    return {"results": results, "readies": readies, "connect_s": connect_s, "server_cpu": (cpu1 - cpu0) / timing.dur,
            "box_cpu": (box1[0] - box0[0]) / max(1e-9, box1[1] - box0[1]) * (os.cpu_count() or 1),
            "clients_cpu": sum(r.get("window_cpu_s") or 0.0 for r in results) / timing.dur, "dur": timing.dur}


def box_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return (0.0, 1.0)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (float(sum(fields) - idle), float(sum(fields)))


def summarize(row: Row, run: dict[str, Any], recipients_per_msg: int, server: ServerProc) -> Row:
    res = run["results"]
    dur = run["dur"]
    committed = sum(r["committed"] for r in res)
    delivered = sum(r["delivered"] for r in res)
    chist = merge(r["call_hist"] for r in res)
    dhist = merge(r["deliv_hist"] for r in res)
    row.calls_s = committed / dur
    row.call_p50, row.call_p99 = percentile(chist, 0.5), percentile(chist, 0.99)
    if recipients_per_msg:
        row.deliv_p50, row.deliv_p99 = percentile(dhist, 0.5), percentile(dhist, 0.99)
        row.deliv_s = delivered / dur
        expected = committed * recipients_per_msg
        row.delivered_pct = 100.0 * delivered / expected if expected else None
    row.server_cpu = 100.0 * run["server_cpu"]
    row.clients_cpu = 100.0 * run["clients_cpu"]
    row.box_cpu = 100.0 * run["box_cpu"]
    other = row.box_cpu - row.server_cpu - row.clients_cpu
    if other > 20:  # kernel work is a few %; more means something else ran on the machine
        row.notes.append(f"WARNING: {other:.0f}% of a core used outside this benchmark during the window")
    connected = sum(r["connected"] for r in res)
    wanted = sum(int(r.get("want", 0)) for r in res)
    if wanted and connected < wanted:
        row.notes.append(f"only {connected}/{wanted} clients connected")
    frames = sum(r["frames"] for r in res)
    if frames and recipients_per_msg:
        row.notes.append(f"{sum(r['delivered_all'] for r in res) / frames:.1f} msgs/frame")
    statuses: dict[str, int] = {}
    for r in res:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    if statuses:
        row.notes.append("non-committed: " + ", ".join(f"{k} x{v}" for k, v in statuses.items()))
    closed = sum(r["closed_early"] for r in res)
    if closed:
        row.notes.append(f"{closed} connections closed during the run")
    timeouts = sum(r["timeouts"] for r in res)
    if timeouts:
        row.notes.append(f"{timeouts} calls timed out")
    errors = [e for r in res for e in r["errors"]]
    row.notes.extend(f"client: {e}" for e in errors[:3])
    problems = server.problems()
    if problems:
        row.notes.append(f"{len(problems)} server warning/error lines, e.g. {problems[0][-160:]!r}")
    row.notes.append(f"connect {run['connect_s']:.1f} s")
    return row


def throughput_layout(n_clients: int, senders: int = 10) -> list[dict[str, Any]]:
    """Senders in two processes of their own; listeners in two more (one per core)."""
    layout = [{"senders": senders // 2, "listeners": 0}, {"senders": senders - senders // 2, "listeners": 0}]
    listeners = n_clients - senders
    if listeners > 0:
        layout += [{"senders": 0, "listeners": listeners // 2}, {"senders": 0, "listeners": listeners - listeners // 2}]
    for spec in layout:
        spec["want"] = spec["senders"] + spec["listeners"]
    return layout


async def scenario_throughput(kind: str, n_clients: int, timing: Timing, tmp: Path, tag_suffix: str = "") -> Row:
    tag = f"{kind}-{n_clients}{tag_suffix}"
    if kind == "ours":
        server, path, label = our_server(tmp, tag), f"/v1/database/{DB}/subscribe", "chat-server"
    else:
        server, path = baseline_server(tmp, tag, kind), "/"
        label = {"per-message": "baseline (a): frame per message", "per-batch": "baseline (b): frame per batch"}[kind]
    row = Row(label, str(n_clients), key=f"{kind}-{n_clients}")
    await server.start()
    try:
        run = await run_load(server, path, throughput_layout(n_clients), timing, tmp, tag)
    finally:
        code = await server.stop()
    if code not in (0, -signal.SIGTERM):
        row.notes.append(f"server exit code {code}")
    for r, spec in zip(run["results"], throughput_layout(n_clients), strict=False):
        r["want"] = spec["want"]
    return summarize(row, run, n_clients - 1, server)


async def scenario_echo(timing: Timing, tmp: Path) -> Row:
    server = baseline_server(tmp, "echo", "echo")
    row = Row("websockets echo (ceiling, no disk)", "10", key="echo")
    await server.start()
    try:
        layout = [{"senders": 10, "listeners": 0, "echo": True, "want": 10}]
        run = await run_load(server, "/", layout, timing, tmp, "echo")
    finally:
        await server.stop()
    return summarize(row, run, 0, server)


async def scenario_fanout(kind: str, n_subs: int, procs: int, messages: int, interval: float, tmp: Path) -> Row:
    tag = f"fanout-{kind}-{n_subs}"
    if kind == "ours":
        server, path, label = our_server(tmp, tag), f"/v1/database/{DB}/subscribe", "chat-server fan-out"
    else:
        letter = "a" if kind == "per-message" else "b"
        server, path, label = baseline_server(tmp, tag, kind), "/", f"baseline ({letter}) fan-out (reference)"
    row = Row(label, f"{n_subs:,} subscribers + 1 sender", key=tag)
    layout: list[dict[str, Any]] = [{"senders": 1, "listeners": 0, "sender_subscribes": False, "want": 1,
                                     "pace": {"interval": interval, "count": messages}}]
    for i in range(procs):
        n = n_subs // procs + (1 if i < n_subs % procs else 0)
        layout.append({"senders": 0, "listeners": n, "want": n, "connect_concurrency": 25, "connect_timeout": 150,
                       "track_messages": True})
    timing = Timing(warm=1.0, dur=messages * interval, drain=2.0)
    await server.start()
    try:
        run = await run_load(server, path, layout, timing, tmp, tag, connect_timeout=180)
    finally:
        code = await server.stop(60)
    if code not in (0, -signal.SIGTERM):
        row.notes.append(f"server exit code {code}")
    for r, spec in zip(run["results"], layout, strict=False):
        r["want"] = spec["want"]
    row = summarize(row, run, n_subs, server)
    row.notes.insert(0, f"{messages} msgs, 1 per {interval * 1000:.0f} ms")
    last: dict[str, float] = {}
    for r in run["results"]:
        for text, us in (r.get("per_message_max") or {}).items():
            last[text] = max(last.get(text, 0.0), us)
    if last:
        worst = sorted(last.values())
        row.notes.insert(1, f"last recipient per message: median {worst[len(worst) // 2] / 1000:.1f} ms, "
                            f"max {worst[-1] / 1000:.1f} ms")
    return row


def median_row(rounds: list[Row], key: str) -> Row:
    """One row of several rounds of a scenario: each figure is the median of the rounds' (the
    rounds' calls/s are listed in the notes)."""
    def med(values: list[float | None]) -> float | None:
        vals = sorted(v for v in values if v is not None)
        if not vals:
            return None
        mid = len(vals) // 2
        return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2

    first = rounds[0]
    row = Row(first.server, first.clients, key=key)
    for field in ("calls_s", "call_p50", "call_p99", "deliv_p50", "deliv_p99", "deliv_s", "delivered_pct",
                  "server_cpu", "clients_cpu", "box_cpu"):
        setattr(row, field, med([getattr(r, field) for r in rounds]))
    if len(rounds) > 1:
        row.notes.append(f"median of {len(rounds)} rounds; calls/s per round: "
                         + ", ".join(num(r.calls_s) for r in rounds))
    per_frame = [n for r in rounds for n in r.notes if n.endswith(" msgs/frame")]
    if per_frame:
        row.notes.append("msgs/frame per round: " + ", ".join(n.split()[0] for n in per_frame))
    seen: set[str] = set()
    for r in rounds:  # warnings of any round, each once (e.g. load from outside the benchmark)
        for note in r.notes:
            head = note.split(":")[0]
            if head not in seen and not note.startswith("connect ") and not note.endswith(" msgs/frame"):
                seen.add(head)
                row.notes.append(note)
    row.rounds = [r.calls_s for r in rounds]
    return row


# -- report -----------------------------------------------------------------------------------
def ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f} ms"


def num(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def report(rows: list[Row], elapsed: float, args: argparse.Namespace) -> None:
    print(f"\nserver benchmark (python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{'--quick' if args.quick else 'full'} run, {args.dur:g} s windows, {elapsed:.0f} s in all)\n")
    print("| server | clients | committed calls/s | call p50 | call p99 | delivery p50 | delivery p99 "
          f"| deliveries/s | delivered | CPU server / clients / box (of {100 * (os.cpu_count() or 1)}%) | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.server} | {r.clients} | {num(r.calls_s)} | {ms(r.call_p50)} | {ms(r.call_p99)} "
              f"| {ms(r.deliv_p50)} | {ms(r.deliv_p99)} | {num(r.deliv_s)} "
              f"| {num(r.delivered_pct, '.1f') + '%' if r.delivered_pct is not None else '-'} "
              f"| {num(r.server_cpu, '.0f')}% / {num(r.clients_cpu, '.0f')}% / {num(r.box_cpu, '.0f')}% "
              f"| {'; '.join(r.notes)} |")
    by = {r.key: r for r in rows}
    print("\n| comparison | chat-server | stronger baseline | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for n in (10, 100):
        ours = by.get(f"ours-{n}")
        bases = [b for b in (by.get(f"per-message-{n}"), by.get(f"per-batch-{n}")) if b is not None and b.calls_s]
        if ours is None or not bases:
            continue
        base = max(bases, key=lambda b: b.calls_s or 0)
        which = "(a)" if "(a)" in base.server else "(b)"
        rc = (ours.calls_s or 0) / base.calls_s if base.calls_s else 0
        paired = [a / b for a, b in zip(ours.rounds, base.rounds, strict=False) if a and b] if which == "(b)" else []
        each = f" (round by round: {', '.join(f'{x:.2f}x' for x in paired)})" if len(paired) > 1 else ""
        print(f"| calls/s, {n} clients | {num(ours.calls_s)} | {num(base.calls_s)} {which} | {rc:.2f}x{each} "
              f"| >= 1.00x | {'yes' if rc >= 1.0 else 'NO'} |")
        pairs = (("call p99", ours.call_p99, base.call_p99), ("delivery p99", ours.deliv_p99, base.deliv_p99))
        for what, a, b in pairs:
            ok = a is not None and b is not None and a <= 1.2 * b
            print(f"| {what}, {n} clients | {ms(a)} | {ms(b)} {which} | {ratio(a, b)} | <= 1.20x"
                  f" | {'yes' if ok else 'NO'} |")
    echo = by.get("echo")
    if echo is not None and echo.calls_s:
        for n in (10, 100):
            ours = by.get(f"ours-{n}")
            if ours is not None:
                print(f"| calls/s vs echo ceiling, {n} clients | {num(ours.calls_s)} | {num(echo.calls_s)} (echo) "
                      f"| {ratio(ours.calls_s, echo.calls_s)} | | |")
    fan = next((r for r in rows if r.key.startswith("fanout-ours")), None)
    if fan is not None:
        ok = fan.deliv_p99 is not None and fan.deliv_p99 < 50_000 and (fan.delivered_pct or 0) >= 99.9
        print(f"| delivery p99 to {fan.clients.split(' ')[0]} subscribers | {ms(fan.deliv_p99)} | | "
              f"| < 50 ms | {'yes' if ok else 'NO'} |")


async def amain(args: argparse.Namespace) -> list[Row]:
    raise_file_limit()
    tmp = Path(tempfile.mkdtemp(prefix="server_bench-"))
    timing = Timing(warm=args.warm, dur=args.dur, drain=1.0 if args.quick else 1.5)
    rows: list[Row] = []

    async def step(what: str, coro: Any) -> None:
        t = time.perf_counter()
        print(f"  {what} ...", end="", file=sys.stderr, flush=True)
        try:
            row = await coro
        except Exception as exc:  # report and go on: one failed scenario must not hide the others
            print(f" FAILED: {exc}", file=sys.stderr, flush=True)
            rows.append(Row(what, "-", notes=[f"FAILED: {str(exc).splitlines()[0] if str(exc) else repr(exc)}"],
                            key=what))
            return
        print(f" {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        rows.append(row)

    try:
        for n in (10, 100):
            await step(f"per-message with {n} clients", scenario_throughput("per-message", n, timing, tmp))
            # Ours and the stronger baseline alternate, round by round, so that a slow spell of the
            # machine hits both; the table shows each one's median round.
            rounds: dict[str, list[Row]] = {"ours": [], "per-batch": []}
            for r in range(args.rounds):
                for kind in ("ours", "per-batch"):
                    before = len(rows)
                    await step(f"{kind} with {n} clients (round {r + 1}/{args.rounds})",
                               scenario_throughput(kind, n, timing, tmp, tag_suffix=f"-r{r}"))
                    if len(rows) > before and rows[-1].calls_s:
                        rounds[kind].append(rows.pop())
            for kind, done in rounds.items():
                if done:
                    rows.append(median_row(done, key=f"{kind}-{n}"))
        await step("websockets echo", scenario_echo(timing, tmp))
        for kind in ("ours", "per-batch"):
            await step(f"{kind} fan-out to {args.subscribers} subscribers",
                       scenario_fanout(kind, args.subscribers, 4, args.fanout_messages, args.fanout_interval, tmp))
    finally:
        if args.keep:
            print(f"logs and data kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short windows (a smoke run, under a minute; not for the record)")
    parser.add_argument("--dur", type=float, help="seconds measured per throughput scenario (default 12, quick 2.5)")
    parser.add_argument("--warm", type=float, help="seconds of load before each window (default 2, quick 1)")
    parser.add_argument("--subscribers", type=int, default=1000,
                        help="subscribers in the fan-out scenario (default 1000)")
    parser.add_argument("--fanout-messages", type=int,
                        help="messages sent in the fan-out scenario (default 100, quick 25)")
    parser.add_argument("--fanout-interval", type=float, default=0.1,
                        help="seconds between fan-out messages (default 0.1)")
    parser.add_argument("--client", choices=["raw", "websockets"], default="raw",
                        help="the load generator's websocket client: a lean asyncio Protocol (default)"
                             " or websockets' own")
    parser.add_argument("--rounds", type=int, help="alternating rounds of chat-server and baseline (b) per client "
                        "count; the table shows medians (default 5, quick 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server and worker logs)")
    args = parser.parse_args()
    if args.dur is None:
        args.dur = 2.5 if args.quick else 12.0
    if args.warm is None:
        args.warm = 1.0 if args.quick else 2.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.fanout_messages is None:
        args.fanout_messages = 25 if args.quick else 100
    global CLIENT
    CLIENT = args.client
    print(_calibration.line(), flush=True)
    t = time.perf_counter()
    rows = asyncio.run(amain(args))
    report(rows, time.perf_counter() - t, args)


if __name__ == "__main__":
    main()
