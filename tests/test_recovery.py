"""Recovery through the embedded API: torn or corrupt tails at every byte, and SIGKILL at random moments."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from db_core import Database, Identity, RecoveryWarning

from .conftest import ROOT, record_spans, write_module

PAIRS = textwrap.dedent("""
    from db_core import table, reducer, ReducerContext
    @table(name="half", public=True)
    class Half:
        n: int
        side: str
    @reducer
    def pair(ctx: ReducerContext, n: int) -> None:
        # Two rows per transaction: a partial commit would show one without the other.
        ctx.db.half.insert(Half(n, "a"))
        ctx.db.half.insert(Half(n, "b"))
""")



def committed_pairs(db: Database) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for row in db.tables["half"]:
        out.setdefault(row.n, set()).add(row.side)
    return out


def crash_after(db: Database) -> None:
    db.durability.log.flush()
    db._release()


@pytest.fixture(scope="module")
def torn_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    base = tmp_path_factory.mktemp("torn")
    mod = write_module(base, PAIRS)
    data = base / "data"
    db = Database.open(data, mod)
    me = Identity.random()
    n = 8
    for i in range(n):
        assert db.call("pair", i, sender=me).ok
    crash_after(db)
    return mod, data, n


def reopen_damaged(mod: Path, src: Path, dst: Path, damage) -> tuple[dict[int, set[str]], list[str]]:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    (segment,) = sorted((dst / "log").glob("*.log"))
    damage(segment)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Database.open(dst, mod) as db:
            pairs = committed_pairs(db)
            repairs = list(db.repairs)
    assert any(issubclass(w.category, RecoveryWarning) for w in caught)
    return pairs, repairs


def test_cut_at_every_byte_of_last_record(torn_source: tuple[Path, Path, int], tmp_path: Path) -> None:
    mod, data, n = torn_source
    (segment,) = sorted((data / "log").glob("*.log"))
    start, end = record_spans(segment)[-1]
    for cut in range(start + 1, end):
        pairs, repairs = reopen_damaged(mod, data, tmp_path / "x", lambda seg, cut=cut: _truncate(seg, cut))
        assert pairs == {i: {"a", "b"} for i in range(n - 1)}, cut
        assert repairs and "cut" in repairs[0], repairs


def test_flip_every_byte_of_last_record(torn_source: tuple[Path, Path, int], tmp_path: Path) -> None:
    mod, data, n = torn_source
    (segment,) = sorted((data / "log").glob("*.log"))
    start, end = record_spans(segment)[-1]
    for pos in range(start, end):
        pairs, repairs = reopen_damaged(mod, data, tmp_path / "x", lambda seg, pos=pos: _flip(seg, pos))
        assert pairs == {i: {"a", "b"} for i in range(n - 1)}, pos
        assert repairs, pos


def test_reopened_after_cut_keeps_working(torn_source: tuple[Path, Path, int], tmp_path: Path) -> None:
    mod, data, n = torn_source
    (segment,) = sorted((data / "log").glob("*.log"))
    start, end = record_spans(segment)[-1]
    reopen_damaged(mod, data, tmp_path / "x", lambda seg: _truncate(seg, start + 3))
    with Database.open(tmp_path / "x", mod) as db:  # the cut is not reported twice, and new commits stick
        assert db.repairs == []
        db.call("pair", 100, sender=Identity.random())
    with Database.open(tmp_path / "x", mod) as db:
        assert committed_pairs(db)[100] == {"a", "b"}


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)


def _flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))


CHILD = textwrap.dedent("""
    import sys, threading
    from db_core import Database, Identity
    data, mod, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    db = Database.open(data, mod)
    me = Identity.random()
    pending = []
    lock = threading.Lock()
    def durable(offset):
        with lock:
            done = [n for off, n in pending if off <= offset]
            pending[:] = [(off, n) for off, n in pending if off > offset]
        if done:
            sys.stdout.write("".join(f"{n}\\n" for n in done))
            sys.stdout.flush()
    db.add_durable_listener(durable)
    n = start
    print("ready", flush=True)
    while True:
        r = db.submit("pair", n, sender=me)
        with lock:
            pending.append((r.offset, n))
        n += 1
        if n % 64 == 0:
            db.wait_durable(r.offset)
""")


def test_sigkill_never_loses_acknowledged_or_leaves_partial(tmp_path: Path) -> None:
    mod = write_module(tmp_path, PAIRS)
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    data = tmp_path / "data"
    rng = random.Random(1234)
    acked: set[int] = set()
    next_n = 0
    kills = 0
    while kills < 20:
        proc = subprocess.Popen([sys.executable, str(child), str(data), str(mod), str(next_n)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        kills += 1
        acked.update(int(line) for line in out.split())
        with Database.open(data, mod) as db:
            pairs = committed_pairs(db)
        assert acked <= set(pairs), sorted(acked - set(pairs))[:5]
        partial = {n: sides for n, sides in pairs.items() if sides != {"a", "b"}}
        assert not partial
        next_n = max(pairs, default=-1) + 1
    assert len(acked) > 100  # the child really was committing when killed
