"""SQL and subscription benchmark: db_core beside sqlite3 on the same data, and subscription cost per transaction.

Run: .venv/bin/python bench/sql_bench.py [--quick]

Part 1 runs the same queries through ``Database.sql`` and through ``sqlite3``
(in memory, same rows, same indexes) and prints per-query times and ratios.
Part 2 measures what one committed ``send_message`` costs the subscription
machinery (evaluation, encoding, frame assembly in the sans-I/O Host) with
1, 100 and 1,000 subscribers to one query, and with 1,000 distinct
``WHERE sender = 0x…`` queries.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import textwrap
import time
from pathlib import Path

import _calibration

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat_server.modules import QUICKSTART_CHAT  # noqa: E402
from db_core import Database, Identity  # noqa: E402
from db_core.host import Host  # noqa: E402

BENCH_MODULE = textwrap.dedent("""
    from typing import Annotated
    from db_core import table, reducer, ReducerContext, PrimaryKey, Index, Identity

    @table(name="item", public=True)
    class Item:
        id: Annotated[int, PrimaryKey]
        grp: Annotated[int, Index]
        price: int
        name: str

    @table(name="grp", public=True)
    class Grp:
        gid: Annotated[int, PrimaryKey]
        label: str

    @reducer
    def load(ctx: ReducerContext, start: int, n: int, groups: int) -> None:
        for i in range(start, start + n):
            ctx.db.item.insert(Item(i, i % groups, (i * 7919) % 1000, f"item{i}"))
        if start == 0:
            for g in range(groups):
                ctx.db.grp.insert(Grp(g, f"group{g}"))
""")


def timeit(fn, repeat: int) -> float:
    """Median seconds per call over ``repeat`` calls (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def sql_part(rows: int, tmp: Path) -> list[tuple[str, float, float]]:
    groups = 1000
    mod = tmp / "bench_items.py"
    mod.write_text(BENCH_MODULE)
    db = Database.open(None, mod)
    me = Identity.random()
    for start in range(0, rows, 10_000):
        assert db.call("load", start, min(10_000, rows - start), groups, sender=me).ok
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, price INTEGER NOT NULL,"
                " name TEXT NOT NULL)")
    con.execute("CREATE INDEX item_grp ON item (grp)")
    con.execute("CREATE TABLE grp (gid INTEGER PRIMARY KEY, label TEXT NOT NULL)")
    con.executemany("INSERT INTO item VALUES (?, ?, ?, ?)",
                    [(i, i % groups, (i * 7919) % 1000, f"item{i}") for i in range(rows)])
    con.executemany("INSERT INTO grp VALUES (?, ?)", [(g, f"group{g}") for g in range(groups)])
    con.commit()
    queries = [
        ("point lookup by primary key", f"SELECT * FROM item WHERE id = {rows // 2}", 2000),
        ("indexed equality (100 rows)", "SELECT * FROM item WHERE grp = 7", 300),
        ("indexed range (1,000 rows)", "SELECT * FROM item WHERE id >= 5000 AND id < 6000", 100),
        (f"full scan of {rows:,} rows with a filter", "SELECT * FROM item WHERE price = 3", 5),
        ("COUNT(*) full scan", "SELECT COUNT(*) AS n FROM item WHERE price < 500", 5),
        ("join on an indexed column (100 rows)",
         "SELECT item.* FROM item JOIN grp ON item.grp = grp.gid WHERE grp.gid = 7", 300),
    ]
    out = []
    for label, q, repeat in queries:
        ours_rows = db.sql(q).rows
        theirs_rows = con.execute(q).fetchall()
        assert len(ours_rows) == len(theirs_rows), (label, len(ours_rows), len(theirs_rows))
        ours = timeit(lambda q=q: db.sql(q), repeat)
        theirs = timeit(lambda q=q: con.execute(q).fetchall(), repeat)
        out.append((label, ours, theirs))
    db.close()
    return out


def subscription_part(repeat: int) -> list[tuple[str, float, float]]:
    """Seconds per committed send_message: (evaluate + encode at commit, deliver at durability)."""
    results = []
    for label, n_clients, distinct in (
        ("1 subscriber to SELECT * FROM message", 1, False),
        ("100 subscribers to SELECT * FROM message", 100, False),
        ("1,000 subscribers to SELECT * FROM message", 1000, False),
        ("1,000 distinct WHERE sender = 0x... queries", 1000, True),
    ):
        db = Database.open(None, QUICKSTART_CHAT)
        host = Host(db, "bench")
        sessions = []
        idents = [Identity.random() for _ in range(n_clients)]
        for i, ident in enumerate(idents):
            session, _, _ = host.connect(ident, "token")
            q = f"SELECT * FROM message WHERE sender = 0x{ident.hex()}" if distinct else "SELECT * FROM message"
            host.receive(session, _subscribe_frame(i + 1, q))
            sessions.append(session)
        host.on_durable(db.last_offset)
        sender, conn = idents[0], sessions[0].connection_id
        # Time only the subscription work: the commit listener (evaluate + encode) and delivery.
        samples = []
        for i in range(repeat):
            r = db.submit("send_message", f"hello {i}", sender=sender, connection_id=conn)
            t = time.perf_counter()
            out = host.on_durable(r.offset)
            samples.append(time.perf_counter() - t)
            assert out, "somebody should receive the message"
        listener_cost = _listener_cost(db, host, sender, conn, repeat)
        results.append((label, listener_cost, statistics.median(samples)))
        db.close()
    return results


def _listener_cost(db: Database, host: Host, sender: Identity, conn, repeat: int) -> float:
    """Median time of the host's commit listener alone (subscription evaluation + encoding)."""
    samples = []
    original = host._on_commit

    def timed(tx):
        t = time.perf_counter()
        original(tx)
        samples.append(time.perf_counter() - t)

    db.remove_commit_listener(original)
    db.add_commit_listener(timed)
    for i in range(repeat):
        r = db.submit("send_message", f"again {i}", sender=sender, connection_id=conn)
        host.on_durable(r.offset)
    db.remove_commit_listener(timed)
    db.add_commit_listener(original)
    return statistics.median(samples)


def _subscribe_frame(rid: int, query: str) -> bytes:
    from db_core.protocol import Subscribe, encode

    return encode(Subscribe(rid, [query]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run, not for the record)")
    args = parser.parse_args()
    rows = 20_000 if args.quick else 100_000
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(_calibration.line(Path(tmp)), flush=True)
        sql = sql_part(rows, Path(tmp))
    subs = subscription_part(50 if args.quick else 300)
    print(f"SQL and subscriptions (python {sys.version.split()[0]}, {os.cpu_count()} cores, {rows:,} rows)\n")
    print("| query | db_core | sqlite3 | ratio (db_core / sqlite3) |")
    print("|---|---|---|---|")
    for label, ours, theirs in sql:
        print(f"| {label} | {ours * 1e6:,.1f} us | {theirs * 1e6:,.1f} us | {ours / theirs:.2f}x |")
    print("\n| per committed send_message | evaluate + encode (at commit) | vs 1 subscriber"
          " | deliver: frames handed to sessions |")
    print("|---|---|---|---|")
    base = subs[0][1]
    for label, evaluate, deliver in subs:
        print(f"| {label} | {evaluate * 1e6:,.1f} us | {evaluate / base:.2f}x | {deliver * 1e6:,.1f} us |")


if __name__ == "__main__":
    main()
