"""The SDK's Reconnector against a real server: reconnect with the same identity after a
restart, calls made while offline go out in order once back, unfixable refusals end it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chat_server.client import Client
from chat_server.reconnect import Reconnector, Refused
from chat_server.server import ChatServer, ServerConfig

from .server_harness import wait_for

DB = "quickstart-chat"


async def test_reconnects_and_sends_the_outbox_in_order(tmp_path: Path) -> None:
    srv = ChatServer(ServerConfig(data_dir=tmp_path, port=0))
    await srv.start()
    port = srv.port
    url = f"127.0.0.1:{port}"
    states: list[str] = []
    tokens: list[str] = []
    identities: list[bytes] = []

    async def session(client: Client) -> None:
        identities.append(bytes(client.identity))
        await client.subscribe(["SELECT * FROM message"])
        link.ready(client)
        async for _ in client.events():
            pass

    link = Reconnector(url, DB, on_token=tokens.append, on_status=lambda s, *_: states.append(s),
                       first_delay=0.05, max_delay=0.2)
    runner = asyncio.create_task(link.run(session))
    try:
        await wait_for(lambda: link.online)
        first = link.call("send_message", "while online")
        assert (await first.future).status == "committed"
        await srv.stop()
        await wait_for(lambda: "offline" in states)
        queued = [link.call("send_message", f"queued {i}") for i in range(3)]
        await asyncio.sleep(0.3)
        assert all(not p.future.done() for p in queued) and len(link.outbox) == 3
        srv = ChatServer(ServerConfig(data_dir=tmp_path, port=port))
        await srv.start()
        results = await asyncio.wait_for(asyncio.gather(*(p.future for p in queued)), 10)
        assert [r.status for r in results] == ["committed"] * 3
        assert link.outbox == []
        assert len(tokens) == 1 and len(set(identities)) == 1 and len(identities) >= 2
        checker = await Client.connect(url, DB)
        rows = (await checker.sql("SELECT text FROM message")).rows
        await checker.close()
        # One transaction each, in the order they were made; sent timestamps follow it.
        assert [r[0] for r in rows] == ["while online", "queued 0", "queued 1", "queued 2"]
        assert states[:2] == ["connecting", "online"] and states[-1] == "online"
    finally:
        await link.close()
        await asyncio.wait_for(runner, 5)
        await srv.stop()


async def test_unknown_database_and_forged_token_are_refused(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"

    async def session(client: Client) -> None:  # never reached
        raise AssertionError("connected")

    with pytest.raises(Refused, match="no database named 'nope'"):
        await Reconnector(url, "nope").run(session)
    with pytest.raises(Refused, match="refused the saved identity"):
        await Reconnector(url, DB, token="qc1.00.forged").run(session)
