"""Rate limits: per connection, per identity, per client address; against a real server.

A refused request gets a clear ``rate limited`` error with ``retry_after``; the SDK's outbox sends
it again later, before anything sent after it, so nothing is lost or reordered.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chat_server.client import Client, ConnectFailed, ws_url
from chat_server.reconnect import Reconnector
from chat_server.server import ChatServer
from db_core.session import Limits
from db_core.protocol import SUBPROTOCOL, ErrorMessage, ReducerResult
from db_core.ratelimit import KeyedBuckets, Rate, TokenBucket

from ..server_harness import in_process_server, wait_for

DB = "quickstart-chat"


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(Rate(10, 3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.05) == pytest.approx(0.05)  # half a token refilled
    assert bucket.take(0.1) == 0.0
    assert TokenBucket(Rate(0, 0)).take(0.0) == 0.0  # 0 per second: unlimited
    keyed = KeyedBuckets(Rate(1, 1), prune_above=2)
    assert keyed.take("a", 0.0) == 0.0 and keyed.take("b", 0.0) == 0.0
    assert keyed.take("a", 0.0) > 0
    keyed.take("c", 5.0)  # a third key prunes the full ones
    assert len(keyed) == 1


NONE_ALLOWED = Rate(0, 0)


def limited(requests: Rate = NONE_ALLOWED, identity: Rate = NONE_ALLOWED, **more: object) -> Limits:
    return dataclasses.replace(Limits(), connection_requests=requests, identity_requests=identity, **more)


async def test_calls_over_the_connection_rate_are_refused_with_retry_after(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, limits=limited(Rate(20, 20))) as srv:
        client = await Client.connect(f"127.0.0.1:{srv.port}", DB)
        results = await asyncio.gather(*(client.call("send_message", f"m{i}") for i in range(60)))
        statuses = [r.status for r in results]
        assert statuses[:20] == ["committed"] * 20
        refused = results[20:]
        assert all(r.status == "refused" and r.retry_after is not None and 0 < r.retry_after <= 0.25
                   for r in refused), statuses
        assert refused[0].error is not None and refused[0].error.startswith(
            "rate limited: too many requests from this connection; retry in")
        await asyncio.sleep(max(r.retry_after or 0 for r in refused))
        # refused means nothing ran: 20 messages, not 60
        count = await client.sql("SELECT COUNT(*) AS n FROM message")
        assert count.rows == [[20]]
        assert (await client.call("send_message", "later")).status == "committed"
        await client.close()


async def test_other_requests_are_limited_too_with_an_error(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, limits=limited(Rate(5, 5))) as srv:
        client = await Client.connect(f"127.0.0.1:{srv.port}", DB)
        replies = await asyncio.gather(*(client.sql("SELECT * FROM user") for _ in range(8)))
        errors = [r for r in replies if isinstance(r, ErrorMessage)]
        assert len(errors) == 3 and all(e.retry_after and e.error.startswith("rate limited") for e in errors)
        await client.close()


async def test_connections_of_one_identity_share_its_rate(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, limits=limited(identity=Rate(10, 10))) as srv:
        url = f"127.0.0.1:{srv.port}"
        first = await Client.connect(url, DB)
        second = await Client.connect(url, DB, token=first.token)
        other = await Client.connect(url, DB)
        one = await asyncio.gather(*(first.call("send_message", f"a{i}") for i in range(6)))
        two = await asyncio.gather(*(second.call("send_message", f"b{i}") for i in range(6)))
        assert [r.status for r in one] == ["committed"] * 6
        assert [r.status for r in two] == ["committed"] * 4 + ["refused"] * 2
        assert "too many requests from this identity" in (two[-1].error or "")
        # another identity has a bucket of its own
        assert (await other.call("send_message", "c")).status == "committed"
        for c in (first, second, other):
            await c.close()


async def test_the_sdk_outbox_resends_rate_limited_calls_in_order(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, limits=limited(Rate(30, 10))) as srv:
        url = f"127.0.0.1:{srv.port}"
        link = Reconnector(url, DB)

        async def session(client: Client) -> None:
            await client.subscribe(["SELECT * FROM message"])
            link.ready(client)
            await client.closed.wait()

        runner = asyncio.create_task(link.run(session))
        await wait_for(lambda: link.online)
        calls = [link.call("send_message", f"{i:03d}") for i in range(60)]
        results = await asyncio.wait_for(asyncio.gather(*(p.future for p in calls)), 30)
        assert [r.status for r in results] == ["committed"] * 60
        assert link.client is not None
        stored = sorted(link.client.rows("message"), key=lambda m: m.sent)
        assert [m.text for m in stored] == [f"{i:03d}" for i in range(60)]  # commit order = call order
        await link.close()
        await runner


async def test_a_connection_that_ignores_refusals_is_closed(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, limits=limited(Rate(10, 10), max_refused_in_a_row=100)) as srv:
        client = await Client.connect(f"127.0.0.1:{srv.port}", DB)
        results = await asyncio.gather(*(client.call("send_message", "x") for _ in range(200)),
                                       return_exceptions=True)
        assert any(isinstance(r, ReducerResult) and r.status == "refused" for r in results)
        await asyncio.wait_for(client.closed.wait(), 5)
        assert client.close_reason == "rate limit: the connection went on sending while refused"


async def http_status(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        ws = await connect(url, subprotocols=[SUBPROTOCOL], additional_headers=headers)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_new_anonymous_identities_per_address_are_limited(tmp_path: Path) -> None:
    """Connect churn: every anonymous connection mints an identity, and the module a user row."""
    async with in_process_server(tmp_path, new_identities_per_address=Rate(0.001, 5)) as srv:
        url = ws_url(f"127.0.0.1:{srv.port}", DB)
        statuses = [await http_status(url) for _ in range(8)]
        assert statuses == [101] * 5 + [429] * 3
        with pytest.raises(ConnectFailed, match="HTTP 429 too many new identities from 127.0.0.1; "
                                                "connect with your saved token"):
            await Client.connect(f"127.0.0.1:{srv.port}", DB)
        # a saved identity still gets in, and the user table stopped growing
        assert await http_status(url, srv.owner_token) == 101
        assert len(srv.databases[DB].db.tables["user"]) == 5 + 1


async def test_open_connections_and_connects_per_address_are_limited(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, connections_per_address=3) as srv:
        url = f"127.0.0.1:{srv.port}"
        held = [await Client.connect(url, DB, token=srv.owner_token) for _ in range(3)]
        with pytest.raises(ConnectFailed, match=r"HTTP 429 too many open connections from 127.0.0.1 \(limit 3\)"):
            await Client.connect(url, DB, token=srv.owner_token)
        await held.pop().close()
        await wait_for(lambda: len(srv.clients) == 2)
        held.append(await Client.connect(url, DB, token=srv.owner_token))
        for c in held:
            await c.close()
    async with in_process_server(tmp_path / "b", connects_per_address=Rate(0.001, 4)) as srv:
        url = ws_url(f"127.0.0.1:{srv.port}", DB)
        statuses = [await http_status(url, srv.owner_token) for _ in range(6)]
        assert statuses == [101] * 4 + [429] * 2


async def test_a_pipelined_flood_takes_turns_with_everyone_else(srv: ChatServer) -> None:
    """256 calls sent at once are handled a few per turn of the server's loop, so another client's
    call sent after them commits long before the last of them (before: after all of them)."""
    from db_core.protocol import CallReducer, decode_server, encode

    url = f"127.0.0.1:{srv.port}"
    flood = await connect(ws_url(url, DB), subprotocols=[SUBPROTOCOL])
    await flood.recv()
    victim = await Client.connect(url, DB)
    for i in range(256):
        await flood.send(encode(CallReducer(i, "send_message", [f"flood {i}"])))
    call = asyncio.ensure_future(victim.call("send_message", "me"))
    offsets = []
    while len(offsets) < 256:
        msg = decode_server(await flood.recv())
        if isinstance(msg, ReducerResult):
            offsets.append(msg.offset)
    answer = await call
    assert answer.status == "committed"
    # Commit order, not the order this one loop happens to read the replies in: the
    # flood's replies are already buffered, and reading them need not yield to the victim's.
    before = sum(1 for offset in offsets if offset < answer.offset)
    assert before < 128, f"the victim's call committed after {before} of the flood's 256"
    await flood.close()
    await victim.close()


async def test_a_refused_handshake_holds_nothing_while_its_client_stays(tmp_path: Path) -> None:
    """An HTTP answer that is not an upgrade (a 429, /health) is written and the socket closed at
    once: the server does not wait up to the close timeout (10 s) for a client that never hangs
    up, so refusals cannot pile up connections (connect churn made ~1,000 live at a time)."""

    async with in_process_server(tmp_path, new_identities_per_address=Rate(0.001, 1)) as srv:
        assert srv._server is not None
        tasks = srv._server.handler_tasks
        url = f"127.0.0.1:{srv.port}"
        first = await Client.connect(url, DB)  # the address's one new identity
        held = []
        for path in ("/health", f"/v1/database/{DB}/subscribe", f"/v1/database/{DB}/subscribe"):
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                         f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n".encode())
            status = (await reader.readline()).split()[1]
            assert status == (b"200" if path == "/health" else b"429"), (path, status)
            held.append(writer)  # and never closed by this client
        await wait_for(lambda: len(tasks) == 1, timeout=1.0)  # only the first client's
        await first.close()
        for writer in held:
            writer.close()
