"""No query can stall or exhaust the server: budgets, slices, cancellation; against a real server.

Before: 10 pipelined ``SELECT * FROM message`` on 120k rows stalled every other client 4 s, a
self-join of ``message`` blocked the server until it was killed, and a 1.4 KB subscribe (64 x
``SELECT * FROM message``) built a 699 MB reply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import time
from pathlib import Path

from websockets.asyncio.client import connect

from chat_server.client import Client, ClientError, ws_url
from db_core.evaluation import Budget
from db_core.session import Limits
from db_core.protocol import (
    SUBPROTOCOL,
    CallReducer,
    OneOffQuery,
    Subscribe,
    decode_server,
    encode,
)

from ..server_harness import in_process_server, seed_messages, wait_for

DB = "quickstart-chat"
SELF_JOIN = "SELECT a.* FROM message AS a JOIN message AS b ON a.sender = b.sender"


async def seeded(tmp_path: Path, n: int) -> Path:
    async with in_process_server(tmp_path):
        pass
    seed_messages(tmp_path, n)
    return tmp_path


def budget(**fields: float) -> Limits:
    return dataclasses.replace(Limits(), budget=dataclasses.replace(Budget(), **fields))


async def test_queries_past_their_budget_fail_with_a_clear_error(tmp_path: Path) -> None:
    data = await seeded(tmp_path, 30_000)

    async with in_process_server(data, limits=budget(rows_returned=10_000, rows_scanned=50_000)) as srv:
        client = await Client.connect(f"127.0.0.1:{srv.port}", DB)
        r = await client.sql("SELECT * FROM message")
        assert r.error == "query exceeded its budget of 10000 rows returned"
        r = await client.sql("SELECT COUNT(*) AS n FROM message WHERE text = 'nothing like it'")
        assert (r.error, r.rows) == (None, [[0]])  # 30,000 rows read: within 50,000
        r = await client.sql(SELF_JOIN.replace("a.*", "COUNT(*) AS n"))
        assert r.error == "query exceeded its budget of 50000 rows scanned"
        r = await client.sql(SELF_JOIN)
        assert r.error == "query exceeded its budget of 10000 rows returned"
        r = await client.sql("SELECT * FROM message LIMIT 5")
        assert r.error is None and len(r.rows) == 5
        await client.close()
    async with in_process_server(data, limits=budget(rows_scanned=10**12, seconds=0.3)) as srv:
        client = await Client.connect(f"127.0.0.1:{srv.port}", DB)
        started = time.monotonic()
        r = await client.sql(SELF_JOIN.replace("a.*", "COUNT(*) AS n"))
        assert r.error == "query exceeded its budget of 0.3 s"
        assert time.monotonic() - started < 5
        await client.close()
    async with in_process_server(data, limits=budget(reply_bytes=100_000)) as srv:
        client = await Client.connect(f"127.0.0.1:{srv.port}", DB)
        r = await client.sql("SELECT * FROM message")
        assert r.error == "reply exceeded its budget of 100000 bytes"
        await client.close()


async def test_a_subscribe_of_64_full_scans_is_refused_before_it_is_built(tmp_path: Path) -> None:
    data = await seeded(tmp_path, 30_000)

    async with in_process_server(data) as srv:
        client = await Client.connect(f"127.0.0.1:{srv.port}", DB)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            await client.subscribe(["SELECT * FROM message"] * 64)
            raise AssertionError("64 x 30,000 rows must not fit the budget")
        except ClientError as exc:
            assert str(exc) == "query exceeded its budget of 100000 rows returned; nothing was subscribed"
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
        assert grown < 50_000, f"{grown} KiB"  # the old code built 64 copies: ~175 MB here
        # nothing stays subscribed: the database's query registry is empty again
        assert len(srv.databases[DB].host.subscriptions) == 0
        sub = await client.subscribe(["SELECT * FROM message WHERE sent < 0"])
        assert sub and client.rows("message") == []
        await client.close()


async def test_long_queries_do_not_hold_up_other_clients(tmp_path: Path) -> None:
    data = await seeded(tmp_path, 60_000)

    async with in_process_server(data) as srv:
        url = f"127.0.0.1:{srv.port}"
        victim = await Client.connect(url, DB)
        # The attacker shares this process: it reads its replies as bytes, not decoding 60,000-row
        # answers on the loop the victim is timed on.
        attacker = await connect(ws_url(url, DB), subprotocols=[SUBPROTOCOL], max_size=None)
        await attacker.recv()
        idle = []
        for _ in range(20):
            t = time.perf_counter()
            assert (await victim.call("send_message", "idle")).status == "committed"
            idle.append(time.perf_counter() - t)
        for i in range(10):
            await attacker.send(encode(OneOffQuery(i, "SELECT * FROM message")))
        await attacker.send(encode(OneOffQuery(10, SELF_JOIN)))

        async def replies() -> list[bytes]:
            return [await attacker.recv() for _ in range(11)]

        answers = asyncio.create_task(replies())
        busy = []
        while not answers.done():
            t = time.perf_counter()
            assert (await victim.call("send_message", "busy")).status == "committed"
            busy.append(time.perf_counter() - t)
        frames = await answers
        assert all(len(f) > 60_000 * 50 for f in frames[:10])  # the full answers
        last = decode_server(frames[10])
        assert getattr(last, "error", None) == "query exceeded its budget of 100000 rows returned"
        assert len(busy) >= 10, busy
        # Before: the victim waited for all ten scans at once (seconds). Now: a slice at a time.
        assert max(busy) < 0.1, (max(idle), sorted(busy)[-5:])
        await victim.close()
        await attacker.close()


async def test_a_query_is_dropped_when_its_client_goes(tmp_path: Path) -> None:
    data = await seeded(tmp_path, 30_000)

    async with in_process_server(data, limits=budget(rows_scanned=10**12, rows_returned=10**9, seconds=60)) as srv:
        ws = await connect(ws_url(f"127.0.0.1:{srv.port}", DB), subprotocols=[SUBPROTOCOL])
        await ws.recv()
        await ws.send(encode(OneOffQuery(1, SELF_JOIN)))
        host = srv.databases[DB].host
        await wait_for(lambda: host.busy)
        await ws.close()
        await wait_for(lambda: not host.busy, timeout=2)


async def test_a_subscription_evaluated_in_slices_misses_no_change(tmp_path: Path) -> None:
    """Messages keep arriving while the subscribe's 60,000 rows are read and encoded a slice at a
    time; its rows plus the updates after it are exactly the table."""
    data = await seeded(tmp_path, 60_000)

    async with in_process_server(data) as srv:
        url = f"127.0.0.1:{srv.port}"
        writer = await Client.connect(url, DB)
        reader = await Client.connect(url, DB)
        stop = asyncio.Event()

        async def write() -> int:
            n = 0
            while not stop.is_set():
                await writer.call("send_message", f"during {n}")
                n += 1
            return n

        task = asyncio.create_task(write())
        await asyncio.sleep(0.05)
        await reader.subscribe(["SELECT * FROM message"])
        stop.set()
        written = await task
        assert written > 0
        await reader.sql("SELECT COUNT(*) AS n FROM message")  # every update is in before this reply
        everything = await writer.sql("SELECT * FROM message")
        assert everything.error is None
        expected = sorted(tuple(r) for r in reader.decode_rows("message", everything.rows))
        mine = sorted(tuple(r) for r in reader.rows("message"))
        assert len(mine) == 60_000 + written and mine == expected
        await writer.close()
        await reader.close()


async def test_a_connections_requests_are_answered_in_order(tmp_path: Path) -> None:
    """A call sent after a long query runs after it: the query does not see it, and answers first."""
    data = await seeded(tmp_path, 60_000)

    async with in_process_server(data) as srv:
        ws = await connect(ws_url(f"127.0.0.1:{srv.port}", DB), subprotocols=[SUBPROTOCOL],
                           max_size=None)
        await ws.recv()
        await ws.send(encode(OneOffQuery(1, "SELECT COUNT(*) AS n FROM message WHERE text != 'x'")))
        await ws.send(encode(CallReducer(2, "send_message", ["after the count"])))
        await ws.send(encode(Subscribe(3, ["SELECT * FROM message WHERE text = 'after the count'"])))
        replies = []
        while len(replies) < 3:
            msg = decode_server(await ws.recv())
            if getattr(msg, "id", None) in (1, 2, 3):
                replies.append(msg)
        assert [m.id for m in replies] == [1, 2, 3]
        assert replies[0].rows == [[60_000]]
        assert len(replies[2].queries[0].inserts) == 1
        await ws.close()


async def test_a_module_update_during_a_query_answers_it_from_the_new_module(tmp_path: Path) -> None:
    """The query under way, and a call waiting behind it, move with their client to the new module."""
    data = await seeded(tmp_path, 60_000)

    async with in_process_server(data) as srv:
        ws = await connect(ws_url(f"127.0.0.1:{srv.port}", DB), subprotocols=[SUBPROTOCOL],
                           max_size=None)
        await ws.recv()
        await ws.send(encode(OneOffQuery(1, "SELECT * FROM message")))
        await ws.send(encode(CallReducer(2, "send_message", ["after"])))
        host = srv.databases[DB].host
        while not host.busy:
            await asyncio.sleep(0)
        source = (data / "databases" / DB / "quickstart_chat.py").read_text()
        srv.publish(DB, source + "\n# v2\n", filename="quickstart_chat.py")
        replies = {}
        while 1 not in replies or 2 not in replies:
            msg = decode_server(await ws.recv())
            if getattr(msg, "id", None) in (1, 2):
                replies[msg.id] = msg
        assert len(replies[1].rows) == 60_000 and "after" not in {r[2] for r in replies[1].rows}
        assert replies[2].status == "committed"
        assert srv.databases[DB].host is not host  # it ran on the new module's host
        await ws.close()
