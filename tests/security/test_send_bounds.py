"""Send queues are bounded in bytes, counted before the write that would pass the bound.

Before: the check looked at what was already unsent and then wrote a whole batch, so a client
that stopped reading held 17-58 MB in the server for an 8 MiB limit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat_server.client import Client, ws_url
from db_core.protocol import SUBPROTOCOL, Subscribe, encode

from ..server_harness import in_process_server

BIG_MESSAGES = '''
from db_core import Identity, ReducerContext, Timestamp, reducer, table

@table(name="message", public=True)
class Message:
    sender: Identity
    sent: Timestamp
    text: str

@reducer
def send_message(ctx: ReducerContext, text: str) -> None:
    ctx.db.message.insert(Message(ctx.sender, ctx.timestamp, text))
'''
LIMIT = 256 * 1024


async def test_a_non_reading_client_never_holds_more_than_the_bound(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, send_buffer_bytes=LIMIT) as srv:
        srv.publish("big", BIG_MESSAGES)
        url = f"127.0.0.1:{srv.port}"
        slow = await connect(ws_url(url, "big"), subprotocols=[SUBPROTOCOL], max_queue=1,
                             max_size=None)
        await slow.recv()
        await slow.send(encode(Subscribe(1, ["SELECT * FROM message"])))
        await slow.recv()
        slow.transport.pause_reading()  # and never reads again
        most = 0
        watching = True

        async def watch() -> None:
            nonlocal most
            while watching:
                for client in list(srv.clients.values()):
                    most = max(most, client.ws.transport.get_write_buffer_size())
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        sender = await Client.connect(url, "big")
        text = "x" * 50_000
        for _ in range(20):  # batches of 20 x 50 KB: each one more than the whole bound
            results = await asyncio.gather(*(sender.call("send_message", text) for _ in range(20)))
            assert {r.status for r in results} == {"committed"}
            await asyncio.sleep(0.01)
        watching = False
        await watcher
        assert most <= LIMIT, most
        slow.transport.resume_reading()
        reason = ""
        try:
            while True:
                await asyncio.wait_for(slow.recv(), 10)
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd else ""
        assert reason.startswith("send queue overflow: the client is too slow reading")
        await sender.close()
