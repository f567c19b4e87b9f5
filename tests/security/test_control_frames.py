"""Control-frame floods are bounded: too many pings close the connection, and pongs a client never
reads cannot pile up in the server (before: a ping flood that never read grew the server by 420 MiB)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat_server.client import ws_url
from db_core.protocol import SUBPROTOCOL
from db_core.ratelimit import Rate

from ..server_harness import in_process_server, wait_for

DB = "quickstart-chat"


async def test_a_ping_flood_is_closed(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, control_frames=Rate(10, 20)) as srv:
        ws = await connect(ws_url(f"127.0.0.1:{srv.port}", DB), subprotocols=[SUBPROTOCOL])
        await ws.recv()
        for _ in range(5):  # a few keepalives are fine
            await (await ws.ping())
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(100):
                await ws.ping()
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason == "too many control frames: at most 10 a second"


def masked_ping() -> bytes:
    payload = b"p" * 125
    mask = os.urandom(4)
    return bytes((0x89, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_pongs_a_client_never_reads_cannot_pile_up(tmp_path: Path) -> None:
    limit = 64 * 1024

    async with in_process_server(tmp_path, control_frames=Rate(0, 0), send_buffer_bytes=limit) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read: the kernel holds little
        sock.connect(("127.0.0.1", srv.port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /v1/database/{DB}/subscribe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n").encode())
        await wait_for(lambda: bool(srv.clients))
        (client,) = srv.clients.values()
        transport = client.ws.transport
        burst = masked_ping() * 200
        sock.setblocking(False)
        most, sent, aborted = 0, 0, False
        for _ in range(5000):  # ~130 MB of pongs if nothing stopped it
            try:
                sent += sock.send(burst)
            except BlockingIOError:
                pass
            except OSError:
                aborted = True
                break
            most = max(most, transport.get_write_buffer_size())
            if transport.is_closing():
                aborted = True
                break
            await asyncio.sleep(0)
        sock.close()
        assert aborted, f"sent {sent} bytes of pings and the server still holds their pongs"
        assert most <= limit + 64 * 1024, most  # at most one read's worth of pongs past the limit


async def test_a_ping_flooder_is_hung_up_on_not_read_until_the_close_timeout(tmp_path: Path) -> None:
    """After the 1008 the server stops reading at once: a flooder that never answers the close
    would otherwise be read (and its bytes thrown away) for the whole close timeout."""
    async with in_process_server(tmp_path, control_frames=Rate(10, 20)) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /v1/database/{DB}/subscribe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n").encode())
        await wait_for(lambda: bool(srv.clients))
        sock.setblocking(False)
        burst = masked_ping() * 64
        loop = asyncio.get_running_loop()
        end = loop.time() + 3  # well under the close timeout (10 s)
        hung_up = False
        while loop.time() < end and not hung_up:
            try:
                sock.send(burst)
            except BlockingIOError:
                pass
            except OSError:
                hung_up = True
            await asyncio.sleep(0.001)
        sock.close()
        assert hung_up, "the server kept reading a flooder it had closed"
        await wait_for(lambda: not srv.clients)
