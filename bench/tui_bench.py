"""chat-tui benchmark: start-up with 0 / 10,000 / 100,000 messages stored, key-to-echo under 50 and 200 msg/s, memory.

Run: .venv/bin/python bench/tui_bench.py [--quick]

Everything runs in one go against real ``chat-server start`` processes on 127.0.0.1
(ephemeral ports), one per history size, whose data directories are seeded through
the embedded database API (``_tui_bench_seed.py``: 5 users, messages spread over the
last 7 days, the newest one ``#N-1 newest seeded``). Each measurement is repeated and
the median is printed (the machine is shared; the spread is shown too).

1. Start-up, real process: ``chat-tui --server 127.0.0.1:PORT`` launched in a
   ``tmux new-session -d -x 120 -y 40`` pane (a fresh XDG_CONFIG_HOME each run, so a
   new profile and identity), the pane read with ``capture-pane -p`` in a loop.
   From just before ``tmux new-session`` to
   - first full paint: the log's frame (top and bottom border) and the status bar
     are on screen;
   - interactive: the status bar says "Connected" and the newest seeded message is
     on screen; then a key is typed (``send-keys``) and the time until it shows in the
     composer is reported as well.
   The capture loop's period is printed; it is the resolution of these figures.
   Then VmRSS of the chat-tui process (/proc/PID/status) 1 s after interactive and,
   in the last run per size, after 120 PageUp presses (25 ms apart) that page older
   history in from the server (500 messages a page), with how far back that reached.
2. Start-up, in-process: ``ChatApp.run_test(size=(120, 40))`` in a fresh child
   process, timed from constructing the app (imports done) to the first rendered
   compositor update that shows the newest seeded message with the status online
   (``_tui_bench_inproc.py``: Textual's ``_display`` is hooked; headless, so the
   terminal write itself is not included). The gap between "launch" in 1. and this
   is Python start-up and imports plus the terminal.
3. Key-to-echo while another client (``_tui_bench_load.py``, its own process) sends
   50 messages/s, then 200 messages/s (a very busy room), that the app receives and
   shows, against the 100,000-message server:
   a) real process in a pty (``_tui_bench_term.py``): from writing the key's byte to
      the pty master to the moment the app's output, parsed by a minimal terminal
      emulator, has put the typed text on the composer's row (no polling: a reader
      thread parses each write as it arrives);
   b) in-process: from handing a Key event to the headless driver to the first
      rendered compositor update after which the composer's value ends with it.
   Keys are typed one at a time (the next after the echo plus a random 20-60 ms),
   the composer cleared (unmeasured) every 40 characters.
4. Search, in-process, against the 100,000-message server (``_tui_bench_inproc.py search``):
   from a key (or the text set in the bar) to the rendered update that shows its result: each
   key of a query matched over the messages loaded at start; a text no message holds searched
   through all the older history on the server; the messages 50,000 and 100,000 back found,
   loaded with everything after them and scrolled into view; then each key again, matched over
   all 100,000 messages in the log. ``--reps`` runs, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
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

from _tui_bench_seed import newest_text  # noqa: E402
from _tui_bench_term import PtyApp  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent
COLS, ROWS = 120, 40
SIZES = (0, 10_000, 100_000)
LOAD_RATES = (50.0, 200.0)   # msg/s arriving while keys are typed
TARGET_INTERACTIVE_S = 1.0
TARGET_P99_MS = 50.0
TARGET_SEARCH_MS = 200.0
TMUX_SOCKET = f"tui-bench-{os.getpid()}"


def tool(name: str) -> list[str]:
    exe = BIN / name
    module = {"chat-server": "chat_server.cli", "chat-tui": "chat_tui.app"}[name]
    return [str(exe)] if exe.exists() else [PY, "-m", module]


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


def rss_kib(pid: int) -> int | None:
    try:
        m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# -- servers ------------------------------------------------------------------------------------
class Server:
    """``chat-server start`` on a data directory, logging to a file."""

    def __init__(self, data_dir: Path, log: Path, env: dict[str, str]) -> None:
        self.data_dir, self.log, self.env = data_dir, log, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 60) -> "Server":
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(tool("chat-server") + ["start", "--listen", "127.0.0.1:0", "--data-dir",
                                                                str(self.data_dir)],
                                         stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**self.env, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(r"listening on wss?://[^:\s]+:(\d+)", self.log.read_text(errors="replace"))
            if found:
                self.port = int(found[-1])
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"chat-server did not start:\n{self.log.read_text(errors='replace')[-2000:]}")

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def prepare(tmp: Path, env: dict[str, str], sizes: tuple[int, ...]) -> dict[int, Path]:
    """One data directory per size: the server's layout (made by starting it once), then seeded."""
    base = tmp / "data-base"
    srv = Server(base, tmp / "server-base.log", env).start()
    srv.stop()
    dirs: dict[int, Path] = {}
    for n in sizes:
        d = tmp / f"data-{n}"
        shutil.copytree(base, d)
        if n:
            t = time.perf_counter()
            out = subprocess.run([PY, str(HERE / "_tui_bench_seed.py"), str(d), str(n)], capture_output=True,
                                 text=True, check=True, env=env)
            print(f"  seeded {n:,} messages in {time.perf_counter() - t:.1f} s ({out.stdout.strip()})",
                  file=sys.stderr, flush=True)
        dirs[n] = d
    return dirs


# -- 1. start-up in tmux --------------------------------------------------------------------------
def tmux(*args: str, check: bool = True) -> str:
    return subprocess.run(["tmux", "-L", TMUX_SOCKET, *args], capture_output=True, text=True, check=check).stdout


def full_paint(lines: list[str]) -> bool:
    frame_top = any(line.startswith("╭") for line in lines[:4])
    frame_bottom = any(line.startswith("╰") for line in lines[-8:])
    status = bool(lines) and re.match(r"^ [◌●○✗] \S", lines[-1]) is not None
    return frame_top and frame_bottom and status


def startup_tmux(server: Server, n: int, tmp: Path, tag: str, env: dict[str, str], scroll: bool) -> dict[str, Any]:
    cfg = tmp / f"config-{tag}"
    cfg.mkdir()
    newest = newest_text(n) if n else None
    session = f"s{tag}"
    cmd = (f"exec env XDG_CONFIG_HOME={cfg} TERM=xterm-256color {' '.join(tool('chat-tui'))} "
           f"--server {server.url}")
    out: dict[str, Any] = {}
    polls = 0
    t0 = time.perf_counter()
    tmux("new-session", "-d", "-x", str(COLS), "-y", str(ROWS), "-s", session, cmd)
    try:
        pid = int(tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())
        deadline = t0 + 30
        screen = ""
        while time.perf_counter() < deadline:
            screen = tmux("capture-pane", "-p", "-t", session)
            now = time.perf_counter()
            polls += 1
            lines = screen.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            if "paint" not in out and full_paint(lines):
                out["paint"] = now - t0
            if "paint" in out and lines and "Connected" in lines[-1] and (newest is None or newest in screen):
                out["interactive"] = now - t0
                break
            time.sleep(0.003)
        else:
            raise RuntimeError(f"chat-tui not interactive within 30 s; screen:\n{screen}")
        out["poll_ms"] = (out["interactive"]) / polls * 1000
        # A typed key shows in the composer.
        t1 = time.perf_counter()
        tmux("send-keys", "-t", session, "-l", "q")
        while time.perf_counter() < t1 + 10:
            lines = tmux("capture-pane", "-p", "-t", session).split("\n")
            if any(re.match(r"^▊\s+q\s", line) for line in lines[-6:]):
                out["key_echo"] = time.perf_counter() - t1
                break
            time.sleep(0.003)
        tmux("send-keys", "-t", session, "BSpace")
        time.sleep(max(0.0, t0 + out["interactive"] + 1.0 - time.perf_counter()))
        out["rss"] = rss_kib(pid)
        if scroll and n:
            for _ in range(120):
                tmux("send-keys", "-t", session, "PageUp")
                time.sleep(0.025)
            time.sleep(1.5)
            out["rss_scrolled"] = rss_kib(pid)
            numbers = [int(x) for x in re.findall(r"│ #(\d+) ", tmux("capture-pane", "-p", "-t", session))]
            if numbers:
                out["scrolled_back"] = n - min(numbers)
        tmux("send-keys", "-t", session, "C-q")
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.02)
    finally:
        tmux("kill-session", "-t", session, check=False)
    return out


# -- 2. start-up in-process -----------------------------------------------------------------------
def startup_inproc(server: Server, n: int, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([PY, str(HERE / "_tui_bench_inproc.py"), "startup", server.url, newest_text(n) if n else ""],
                         capture_output=True, text=True, env=env, timeout=120)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"in-process start-up failed:\n{out.stderr[-2000:]}")


# -- 4. search ------------------------------------------------------------------------------------
def search_inproc(server: Server, n: int, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([PY, str(HERE / "_tui_bench_inproc.py"), "search", server.url, str(n)],
                         capture_output=True, text=True, env=env, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"in-process search failed:\n{out.stderr[-2000:]}")


# -- 3. key-to-echo under load --------------------------------------------------------------------
class Load:
    """The paced sender process."""

    def __init__(self, server: Server, env: dict[str, str], rate: float) -> None:
        self.proc = subprocess.Popen([PY, str(HERE / "_tui_bench_load.py"), server.url, str(rate)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"load sender did not start: {line!r}")

    def finish(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                self.proc.wait(30)
                return json.loads(line[7:])
        self.proc.wait(30)
        return {}


def keys_pty(server: Server, tmp: Path, env: dict[str, str], n_keys: int, rate: float) -> dict[str, Any]:
    cfg = tmp / f"config-keys-pty-{rate:g}"
    cfg.mkdir()
    import random
    rng = random.Random(3)
    app = PtyApp(tool("chat-tui") + ["--server", server.url],
                 {**env, "XDG_CONFIG_HOME": str(cfg), "TERM": "xterm-256color"}, COLS, ROWS)
    try:
        app.wait_for(lambda s: "Connected" in s.line(ROWS - 1) and any("Message, or /help" in s.line(y)
                                                                        for y in range(ROWS)), 30)
        row = next(y for y in range(ROWS) if "Message, or /help" in app.screen.line(y))
        load = Load(server, env, rate)
        try:
            time.sleep(1.0)
            cpu0 = proc_cpu_s(app.proc.pid)
            lat: list[float] = []
            typed = ""
            t_start = time.perf_counter()
            for i in range(n_keys):
                if len(typed) >= 40:
                    app.send_then_wait(b"\x15", lambda s: "Message, or /help" in s.line(row), 10)  # ctrl+u
                    typed = ""
                    time.sleep(0.05)
                ch = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]
                typed += ch
                want = "  " + typed + " "
                t0, t1 = app.send_then_wait(ch.encode(), lambda s, w=want: w in s.line(row), 10)
                lat.append((t1 - t0) * 1000)
                time.sleep(rng.uniform(0.02, 0.06))
            elapsed = time.perf_counter() - t_start
            cpu = proc_cpu_s(app.proc.pid) - cpu0
        finally:
            load_result = load.finish()
        shown = len(re.findall(r"load \d+:", app.screen.text()))
    finally:
        app.close()
    return {"latencies_ms": lat, "seconds": elapsed, "load": load_result, "load_lines_on_screen": shown,
            "cpu_pct": 100 * cpu / elapsed}


def keys_inproc(server: Server, env: dict[str, str], n_keys: int, rate: float) -> dict[str, Any]:
    load = Load(server, env, rate)
    try:
        out = subprocess.run([PY, str(HERE / "_tui_bench_inproc.py"), "keys", server.url, str(n_keys)],
                             capture_output=True, text=True, env=env, timeout=600)
    finally:
        load_result = load.finish()
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]) | {"load": load_result}
    raise RuntimeError(f"in-process keys failed:\n{out.stderr[-2000:]}")


# -- report ---------------------------------------------------------------------------------------
def fmt_s(x: float | None) -> str:
    return "-" if x is None else (f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s")


def spread(xs: list[float]) -> str:
    return f"{fmt_s(min(xs))}-{fmt_s(max(xs))}" if len(xs) > 1 else ""


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and keys (about a minute; not for the record)")
    parser.add_argument("--reps", type=int, help="start-up runs per size and method (default 5, quick 2)")
    parser.add_argument("--keys", type=int, help="keys per key-to-echo run (default 400, quick 100)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    n_keys = args.keys or (100 if args.quick else 400)
    if shutil.which("tmux") is None:
        sys.exit("tui_bench: tmux is needed (apt-get install tmux)")
    began = time.perf_counter()
    load_before = Path("/proc/loadavg").read_text().split()[0]
    tmp = Path(tempfile.mkdtemp(prefix="tui_bench-"))
    print(_calibration.line(tmp), flush=True)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "xdg-data"), "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
           "PYTHONPATH": str(ROOT)}
    env.pop("TEXTUAL", None)
    rows: list[tuple[str, str, str, str, str]] = []   # measurement, result, spread / notes, target, verdict
    servers: dict[int, Server] = {}
    try:
        tmux("new-session", "-d", "-s", "keepalive", "sleep 100000")   # keep one tmux server for all runs
        print("  preparing data directories ...", file=sys.stderr, flush=True)
        dirs = prepare(tmp, env, SIZES)
        for n in SIZES:
            servers[n] = Server(dirs[n], tmp / f"server-{n}.log", env).start()

        # Python start-up + imports of the app module, for reference.
        imports = []
        for _ in range(reps):
            t = time.perf_counter()
            subprocess.run([PY, "-c", "import chat_tui.app"], check=True, env=env)
            imports.append(time.perf_counter() - t)

        results: dict[int, dict[str, list[Any]]] = {}
        for n in SIZES:
            res: dict[str, list[Any]] = {}
            for r in range(reps):   # interleave the two methods so machine load hits both alike
                t = time.perf_counter()
                tm = startup_tmux(servers[n], n, tmp, f"{n}-{r}", env, scroll=(r == reps - 1))
                ip = startup_inproc(servers[n], n, env)
                for k, v in tm.items():
                    res.setdefault("tmux_" + k, []).append(v)
                for k, v in ip.items():
                    res.setdefault("inproc_" + k, []).append(v)
                print(f"  start-up with {n:,} messages, run {r + 1}/{reps}: launch->interactive "
                      f"{fmt_s(tm.get('interactive'))}, in-process {fmt_s(ip.get('interactive'))} "
                      f"({time.perf_counter() - t:.1f} s)", file=sys.stderr, flush=True)
            results[n] = res

        keys: list[tuple[float, dict[str, Any], dict[str, Any]]] = []   # rate, pty, in-process
        for rate in LOAD_RATES:
            print(f"  key-to-echo, real process in a pty, {n_keys} keys under {rate:g} msg/s ...",
                  file=sys.stderr, flush=True)
            kp = keys_pty(servers[max(SIZES)], tmp, env, n_keys, rate)
            print(f"  key-to-echo, in-process, {n_keys} keys under {rate:g} msg/s ...", file=sys.stderr, flush=True)
            keys.append((rate, kp, keys_inproc(servers[max(SIZES)], env, n_keys, rate)))
        searches: list[dict[str, Any]] = []
        for r in range(reps):
            print(f"  search over {max(SIZES):,} messages, run {r + 1}/{reps} ...", file=sys.stderr, flush=True)
            searches.append(search_inproc(servers[max(SIZES)], max(SIZES), env))
    finally:
        for srv in servers.values():
            srv.stop()
        tmux("kill-server", check=False)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- the table
    for n in SIZES:
        r = results[n]
        label = f"{n:,} messages stored"
        paint, inter, echo = r.get("tmux_paint", []), r.get("tmux_interactive", []), r.get("tmux_key_echo", [])
        polls = r.get("tmux_poll_ms", [])
        rows.append((f"start-up, real process (tmux), {label}: launch -> first full paint", fmt_s(median(paint)),
                     spread(paint), "", ""))
        target = f"< {TARGET_INTERACTIVE_S:g} s" if n == max(SIZES) else ""
        verdict = met((median(inter) or 1e9) < TARGET_INTERACTIVE_S) if n == max(SIZES) else ""
        rows.append((f"start-up, real process (tmux), {label}: launch -> interactive", fmt_s(median(inter)),
                     f"{spread(inter)}; then a typed key showed after {fmt_s(median(echo))}; "
                     f"capture-pane every {median(polls) or 0:.1f} ms", target, verdict))
        ip_paint, ip_inter = r.get("inproc_paint", []), r.get("inproc_interactive", [])
        ip_welcome = r.get("inproc_welcome_posted", [])
        target = f"< {TARGET_INTERACTIVE_S:g} s" if n == max(SIZES) else ""
        verdict = met((median(ip_inter) or 1e9) < TARGET_INTERACTIVE_S) if n == max(SIZES) else ""
        rows.append((f"start-up, in-process (run_test), {label}: app created -> interactive", fmt_s(median(ip_inter)),
                     f"{spread(ip_inter)}; first paint {fmt_s(median(ip_paint))}, subscribed (Welcome posted) "
                     f"{fmt_s(median(ip_welcome))}, {int(median(r.get('inproc_entries', [0])) or 0)} log entries",
                     target, verdict))
    rows.append(("Python start-up + `import chat_tui.app` (fresh process, for reference)", fmt_s(median(imports)),
                 spread(imports), "", ""))
    for n in SIZES:
        r = results[n]
        rss = [x for x in r.get("tmux_rss", []) if x]
        rows.append((f"resident memory (VmRSS) after start-up, {n:,} messages stored", mib(median(rss)),
                     f"{mib(min(rss))}-{mib(max(rss))}" if len(rss) > 1 else "", "", ""))
        scrolled = [x for x in r.get("tmux_rss_scrolled", []) if x]
        if scrolled:
            back = r.get("tmux_scrolled_back", [None])[-1]
            rows.append((f"resident memory after 120 x PageUp, {n:,} messages stored", mib(scrolled[-1]),
                         f"the screen then showed messages back to {back:,} before the newest" if back else "",
                         "", ""))
    runs = [(f"{rate:g} msg/s, real process in a pty: key written -> echoed on the composer row", kp)
            for rate, kp, _ in keys]
    runs += [(f"{rate:g} msg/s, in-process: Key event -> rendered update with it", ki) for rate, _, ki in keys]
    for label, k in runs:
        lat = k["latencies_ms"]
        load = k.get("load", {})
        p50, p99 = percentile(lat, 0.50), percentile(lat, 0.99)
        note = (f"{len(lat)} keys in {k['seconds']:.0f} s, p90 {percentile(lat, 0.9):.1f} ms, max {max(lat):.1f} ms; "
                f"load {load.get('rate', 0):.1f} msg/s, {load.get('committed', 0)}/{load.get('sent', 0)} committed; "
                f"chat-tui CPU {k.get('cpu_pct', 0):.0f}% of a core")
        if "gc_full" in k:
            note += (f"; {k['gc_full']} full garbage collections, longest {k['gc_full_max_ms']:.0f} ms, "
                     f"{k['entries_added']} log entries added")
        rows.append((f"key-to-echo p50, {label}", f"{p50:.1f} ms", note, "", ""))
        rows.append((f"key-to-echo p99, {label}", f"{p99:.1f} ms", "", f"< {TARGET_P99_MS:g} ms",
                     met((p99 or 1e9) < TARGET_P99_MS)))

    rows += search_rows(searches, max(SIZES))

    print(f"\nchat-tui benchmark (python {sys.version.split()[0]}, textual {textual_version()},"
          f" {os.cpu_count()} cores, "
          f"{'--quick' if args.quick else 'full'} run: {reps} start-ups per size and method, {n_keys} keys, "
          f"{COLS}x{ROWS} terminal, {time.perf_counter() - began:.0f} s in all; load average "
          f"{load_before} before, {Path('/proc/loadavg').read_text().split()[0]} after)")
    print(f"command: .venv/bin/python bench/tui_bench.py{' --quick' if args.quick else ''}\n")
    print("| measurement | median | spread / notes | target | |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def search_rows(runs: list[dict[str, Any]], n: int) -> list[tuple[str, str, str, str, str]]:
    """The search table rows: per-key figures pooled over the runs, the others one per run."""
    rows = []
    target = f"< {TARGET_SEARCH_MS:g} ms"
    loaded = int(median([r["loaded_at_start"] for r in runs]) or 0)
    for key, label in (("typed_loaded_ms", f"search, each key of a query, matched over the {loaded:,} messages loaded "
                                           "at start -> bar and marks drawn"),
                       ("typed_all_ms", f"search, each key of a query, matched over all {n:,} messages in the log")):
        lat = [x for r in runs for x in r[key]]
        p99 = percentile(lat, 0.99) or 0.0
        rows.append((label + " (p50; p99 in notes)", f"{percentile(lat, 0.5):.1f} ms",
                     f"p99 {p99:.1f} ms, max {max(lat):.1f} ms over {len(lat)} keys", target,
                     met(p99 < TARGET_SEARCH_MS)))
    for key, label in (("none_older_ms", f"search, Enter on a text no message holds: {n:,} older messages searched "
                                         "on the server -> 'no match'"),
                       ("middle_ms", f"search, Enter on the text of the message {n // 2:,} back -> found, loaded, "
                                     "in view"),
                       ("oldest_ms", f"search, Enter on the text of the oldest message ({n:,} back) -> found, "
                                     "loaded, in view")):
        xs = [r[key] for r in runs]
        rows.append((label, f"{median(xs):.0f} ms", spread([x / 1000 for x in xs]), target,
                     met((median(xs) or 1e9) < TARGET_SEARCH_MS)))
    return rows


def textual_version() -> str:
    try:
        from importlib.metadata import version
        return version("textual")
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
