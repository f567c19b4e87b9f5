"""Server behaviours beyond the basics: slow clients, TLS, shared identities, refused connections."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat_server.client import Client, ConnectFailed, ws_url
from chat_server.server import ChatServer
from db_core.protocol import SUBPROTOCOL

from .server_harness import in_process_server, wait_for

DB = "quickstart-chat"

# The bundled module takes messages of at most 4,000 characters; a slow reader is shown big ones.
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


async def test_a_client_that_stops_reading_is_disconnected_and_others_are_not_delayed(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, send_buffer_bytes=64 * 1024) as srv:
        srv.publish("big", BIG_MESSAGES)
        url = f"127.0.0.1:{srv.port}"
        slow = await connect(ws_url(url, "big"), subprotocols=[SUBPROTOCOL], compression=None, max_queue=1)
        await slow.recv()  # identity
        await slow.send(msgpack.packb({"t": "subscribe", "id": 1, "queries": ["SELECT * FROM message"]}))
        await asyncio.sleep(0.2)
        fast = await Client.connect(url, "big")
        await fast.subscribe(["SELECT * FROM message"])
        sender = await Client.connect(url, "big")
        big = "x" * 60_000
        for _ in range(300):  # ~18 MB for the slow reader: far past any socket buffer
            r = await sender.call("send_message", big)
            assert r.status == "committed"
        await wait_for(lambda: len(fast.rows("message")) == 300, timeout=20)
        reason = None
        try:
            while True:
                await asyncio.wait_for(slow.recv(), 10)
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd else None
        assert reason is not None and reason.startswith("send queue overflow: the client is too slow reading")
        await fast.close()
        await sender.close()


async def test_several_connections_share_one_identity(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    watcher = await Client.connect(url, DB)
    await watcher.subscribe(["SELECT * FROM user"])
    first = await Client.connect(url, DB)
    second = await Client.connect(url, DB, token=first.token)
    assert second.identity == first.identity and second.connection_id != first.connection_id
    await first.close()
    # The bundled module follows the reference: any disconnect marks the user offline.
    await wait_for(lambda: {u.identity: u.online for u in watcher.rows("user")}[first.identity] is False)
    r = await second.call("send_message", "still connected")
    assert r.status == "committed"
    await second.close()
    await watcher.close()


REJECTING = '''
from db_core import client_connected, ReducerError, table, ReducerContext

@table(name="seen", public=True)
class Seen:
    n: int

@client_connected
def gate(ctx: ReducerContext) -> None:
    raise ReducerError("the doors are closed")
'''


async def test_client_connected_failure_rejects_with_the_module_message(srv: ChatServer) -> None:
    srv.publish("gated", REJECTING)
    with pytest.raises(ConnectFailed, match="the server refused the connection: the doors are closed"):
        await Client.connect(f"127.0.0.1:{srv.port}", "gated")
    assert srv.databases["gated"].db.connections() == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
async def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)

    async with in_process_server(tmp_path / "d", tls_cert=cert, tls_key=key) as srv:
        ctx = ssl.create_default_context(cafile=str(cert))
        client = await Client.connect(f"wss://127.0.0.1:{srv.port}", DB, ssl_context=ctx)
        r = await client.call("send_message", "over TLS")
        assert r.status == "committed"
        await client.close()
        with pytest.raises(ConnectFailed):
            await Client.connect(f"ws://127.0.0.1:{srv.port}", DB, open_timeout=3)
