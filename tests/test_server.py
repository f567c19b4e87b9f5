"""The networked host: real servers on 127.0.0.1, real websockets, real files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat_server.client import Client, ClientError, ConnectFailed, ws_url
from chat_server.server import ChatServer
from db_core.protocol import SUBPROTOCOL, ErrorMessage, ReducerResult, decode_server

from .server_harness import ServerProcess, in_process_server, run, wait_for

DB = "quickstart-chat"
ALL = ["SELECT * FROM user", "SELECT * FROM message"]


def names(client: Client) -> dict[bytes, tuple]:
    return {bytes(u.identity): (u.name, u.online) for u in client.rows("user")}


async def test_message_reaches_the_other_client(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    alice = await Client.connect(url, DB)
    bob = await Client.connect(url, DB)
    await alice.subscribe(ALL)
    await bob.subscribe(ALL)
    r = await alice.call("send_message", "Hello, Bob!")
    assert r.status == "committed"
    await wait_for(lambda: len(bob.rows("message")) == 1)
    (msg,) = bob.rows("message")
    assert (msg.sender, msg.text) == (alice.identity, "Hello, Bob!")
    assert names(bob) == {bytes(alice.identity): (None, True), bytes(bob.identity): (None, True)}
    await alice.close()
    await bob.close()


async def test_failed_set_name_reaches_the_caller_only(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    alice = await Client.connect(url, DB)
    bob = await Client.connect(url, DB)
    await alice.subscribe(ALL)
    await bob.subscribe(ALL)
    seen: list = []
    bob.listeners.append(seen.append)
    r = await alice.call("set_name", "")
    assert (r.status, r.error) == ("failed", "Names must not be empty")
    r = await alice.call("set_name", "Alice")
    assert r.status == "committed"
    await wait_for(lambda: names(bob)[bytes(alice.identity)] == ("Alice", True))
    # Bob heard exactly one transaction: the successful rename.
    assert [e.reducer for e in seen] == ["set_name"]
    await alice.close()
    await bob.close()


async def test_token_gives_the_same_identity_and_presence_flips(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    watcher = await Client.connect(url, DB)
    await watcher.subscribe(ALL)
    alice = await Client.connect(url, DB)
    await alice.call("set_name", "Alice")
    token, ident = alice.token, alice.identity
    await alice.close()
    await wait_for(lambda: names(watcher).get(bytes(ident)) == ("Alice", False))
    again = await Client.connect(url, DB, token=token)
    assert again.identity == ident and again.token == token
    await wait_for(lambda: names(watcher).get(bytes(ident)) == ("Alice", True))
    await again.close()
    await watcher.close()


async def test_forged_and_foreign_tokens_are_refused(tmp_path: Path) -> None:
    async with in_process_server(tmp_path / "a") as a, in_process_server(tmp_path / "b") as b:
        client = await Client.connect(f"127.0.0.1:{a.port}", DB)
        token = client.token
        await client.close()
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        for bad, server in ((forged, a), (token, b), ("garbage", a)):
            with pytest.raises(ConnectFailed, match="invalid token"):
                await Client.connect(f"127.0.0.1:{server.port}", DB, token=bad)
        ok = await Client.connect(f"127.0.0.1:{a.port}", DB, token=token)  # still serving
        await ok.close()


def test_kill_and_restart_keeps_acknowledged_messages(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        async def before() -> tuple[str, list[str]]:
            alice = await Client.connect(server.url, DB)
            await alice.call("set_name", "Alice")
            sent = []
            for i in range(30):
                r = await alice.call("send_message", f"m{i}")
                assert r.status == "committed"
                sent.append(f"m{i}")
            return alice.token, sent

        token, sent = run(before())
        server.kill()
        server = ServerProcess(tmp_path).start()

        async def after() -> None:
            watcher = await Client.connect(server.url, DB)
            await watcher.subscribe(ALL)
            assert [m.text for m in sorted(watcher.rows("message"), key=lambda m: m.sent)] == sent
            users = {u.name: u.online for u in watcher.rows("user")}
            assert users["Alice"] is False  # online before the crash, offline until she reconnects
            alice = await Client.connect(server.url, DB, token=token)
            await wait_for(lambda: {u.name: u.online for u in watcher.rows("user")}["Alice"] is True)
            await alice.close()
            await watcher.close()

        run(after())
    finally:
        server.stop()


async def raw(port: int) -> object:
    return await connect(ws_url(f"127.0.0.1:{port}", DB), subprotocols=[SUBPROTOCOL], compression=None)


async def test_malformed_input_gets_clear_errors_and_server_keeps_serving(srv: ChatServer) -> None:
    bystander = await Client.connect(f"127.0.0.1:{srv.port}", DB)
    ws = await raw(srv.port)
    await ws.recv()  # identity

    async def reply(frame: bytes) -> object:
        await ws.send(frame)
        return decode_server(await ws.recv())

    m = await reply(b"\xc1\xc1")
    assert isinstance(m, ErrorMessage) and m.error.startswith("malformed msgpack")
    m = await reply(msgpack.packb({"t": "dance", "id": 7}))
    assert isinstance(m, ErrorMessage) and m.id == 7 and "unknown message type 'dance'" in m.error
    m = await reply(msgpack.packb([1, 2]))
    assert isinstance(m, ErrorMessage) and "must be a msgpack map" in m.error
    m = await reply(msgpack.packb({"t": "call", "id": 8, "reducer": "send_message", "args": [1, 2]}))
    assert isinstance(m, ReducerResult) and m.status == "refused"
    assert "takes 1 argument (text: str), got 2" in m.error
    m = await reply(msgpack.packb({"t": "call", "id": 9, "reducer": "send_message", "args": [3]}))
    assert "argument `text` must be str" in m.error
    m = await reply(msgpack.packb({"t": "call", "id": 10, "reducer": "send_mesage", "args": ["x"]}))
    assert "A reducer with a similar name exists: `send_message`" in m.error
    m = await reply(msgpack.packb({"t": "call", "id": 11, "reducer": "identity_connected", "args": []}))
    assert m.status == "refused" and "lifecycle reducer" in m.error
    m = await reply(msgpack.packb({"t": "call", "id": 12, "reducer": "send_message", "args": ["x" * 70000]}))
    assert m.status == "refused" and "the limit is 65536" in m.error
    # the bystander is still served
    r = await bystander.call("send_message", "still here")
    assert r.status == "committed"
    await ws.close()
    await bystander.close()


async def test_oversized_frame_closes_with_reason(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, max_frame_bytes=4096) as srv:
        ws = await raw(srv.port)
        await ws.recv()
        await ws.send(msgpack.packb({"t": "call", "id": 1, "reducer": "send_message", "args": ["x" * 10000]}))
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        ok = await Client.connect(f"127.0.0.1:{srv.port}", DB)
        await ok.close()


async def test_unknown_database_and_wrong_subprotocol(srv: ChatServer) -> None:
    with pytest.raises(ConnectFailed, match="HTTP 404 no such database: nope"):
        await Client.connect(f"127.0.0.1:{srv.port}", "nope")
    with pytest.raises(InvalidStatus) as info:
        await connect(ws_url(f"127.0.0.1:{srv.port}", DB))
    assert info.value.response.status_code == 400
    assert b"missing subprotocol" in info.value.response.body


async def test_too_many_in_flight(tmp_path: Path) -> None:
    from db_core.session import Limits

    async with in_process_server(tmp_path, limits=Limits(max_in_flight=2)) as srv:
        ws = await raw(srv.port)
        await ws.recv()
        for i in range(6):
            await ws.send(msgpack.packb({"t": "call", "id": i, "reducer": "send_message", "args": [f"m{i}"]}))
        replies = [decode_server(await ws.recv()) for _ in range(6)]
        refused = [r for r in replies if isinstance(r, ReducerResult) and r.status == "refused"]
        assert refused and all("too many requests in flight (limit 2)" in r.error for r in refused)
        await ws.close()


PRIVATE_MODULE = '''
from typing import Annotated
from db_core import table, reducer, ReducerContext, PrimaryKey

@table(name="note", public=True)
class Note:
    id: Annotated[int, PrimaryKey]
    text: str

@table(name="secret")
class Secret:
    id: Annotated[int, PrimaryKey]
    text: str
'''


async def test_sql_dml_reaches_subscribers_and_private_tables_hide(srv: ChatServer) -> None:
    srv.publish("notes", PRIVATE_MODULE)
    url = f"127.0.0.1:{srv.port}"
    owner = await Client.connect(url, "notes", token=srv.owner_token)
    other = await Client.connect(url, "notes")
    await other.subscribe(["SELECT * FROM note"])
    r = await owner.sql("INSERT INTO note (id, text) VALUES (1, 'hello'), (2, 'world')")
    assert r.error is None and r.affected == 2
    await wait_for(lambda: sorted(n.text for n in other.rows("note")) == ["hello", "world"])
    r = await owner.sql("INSERT INTO secret VALUES (1, 'psst')")
    assert r.error is None
    r = await owner.sql("SELECT * FROM secret")
    assert r.rows == [[1, "psst"]]
    # a non-owner: private tables do not exist for it, and DML is refused
    r = await other.sql("SELECT * FROM secret")
    assert r.error == ("no such table: `secret`. If the table exists, it may be marked private."
                       " (at line 1, column 15)")
    with pytest.raises(ClientError, match="no such table: `secret`"):
        await other.subscribe(["SELECT * FROM secret"])
    r = await other.sql("DELETE FROM note")
    assert r.error == f"Identity 0x{other.identity.hex()} is not authorized to run SQL DML statements"
    assert len(other.rows("note")) == 2
    await owner.close()
    await other.close()


def test_sigterm_disconnects_clients_runs_hooks_and_exits_zero(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()

    async def hold() -> Client:
        client = await Client.connect(server.url, DB)
        await client.call("set_name", "Holder")
        return client

    async def scenario() -> str | None:
        client = await hold()
        assert server.proc is not None
        server.proc.terminate()
        await asyncio.wait_for(client.closed.wait(), 10)
        return client.close_reason

    reason = run(scenario())
    assert reason == "server shutting down"
    assert server.proc is not None and server.proc.wait(10) == 0
    server = ServerProcess(tmp_path).start()
    try:
        async def check() -> None:
            watcher = await Client.connect(server.url, DB)
            await watcher.subscribe(["SELECT * FROM user"])
            users = {u.name: u.online for u in watcher.rows("user")}
            assert users["Holder"] is False
            await watcher.close()

        run(check())
        log = (tmp_path / "databases" / DB / "data" / "module.log").read_text()
        assert "left open by the last run" not in log  # the hook ran at shutdown, not at the next start
    finally:
        server.stop()


async def test_publish_from_a_connection_opened_before_the_database_existed_is_refused(srv: ChatServer) -> None:
    from db_core.protocol import Done, Publish, encode

    cli_url = ws_url(f"127.0.0.1:{srv.port}", "fresh", "cli")
    early = await connect(cli_url, subprotocols=[SUBPROTOCOL], compression=None)
    await early.recv()  # identity (no such database yet)
    owner = await Client.connect(f"127.0.0.1:{srv.port}", "fresh", token=srv.owner_token, endpoint="cli")
    done = await owner.request(lambda rid: Publish(rid, PRIVATE_MODULE, "notes.py"))
    assert isinstance(done, Done)
    await early.send(encode(Publish(1, "x = 1\n", "evil.py")))
    reply = decode_server(await early.recv())
    assert isinstance(reply, ErrorMessage) and "exists now; reconnect" in reply.error
    assert "note" in srv.databases["fresh"].db.tables  # untouched
    await early.send("a text frame")
    reply = decode_server(await early.recv())
    assert isinstance(reply, ErrorMessage)
    await early.close()
    await owner.close()


async def test_text_frames_are_refused(srv: ChatServer) -> None:
    ws = await raw(srv.port)
    await ws.recv()
    await ws.send('{"t": "call"}')
    reply = decode_server(await ws.recv())
    assert isinstance(reply, ErrorMessage) and reply.error == "frames must be binary (msgpack), not text"
    await ws.close()


def test_frames_written_directly_match_websockets_own() -> None:
    from websockets.frames import Frame, Opcode

    from chat_server.frames import ws_header

    for n in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
        assert ws_header(n) + payload == Frame(Opcode.BINARY, payload).serialize(mask=False)


async def test_early_and_fragmented_requests_are_handled_in_order(srv: ChatServer) -> None:
    from db_core.protocol import CallReducer, Subscribe, TransactionUpdate, encode

    ws = await raw(srv.port)
    # Sent before reading anything: the server may not have a session for them yet.
    await ws.send(encode(Subscribe(1, ["SELECT * FROM message"])))
    call = encode(CallReducer(2, "send_message", ["in three pieces"]))
    await ws.send([call[:3], call[3:10], call[10:]])  # one message, three websocket frames
    await ws.send(encode(CallReducer(3, "send_message", ["whole"])))
    kinds: list[str] = []
    texts: list[str] = []
    results: list[int] = []
    while len(results) < 2:
        m = decode_server(await asyncio.wait_for(ws.recv(), 5))
        kinds.append(type(m).__name__)
        if isinstance(m, TransactionUpdate):
            texts += [u.inserts[0][2] for tx in m.txs for u in tx.updates]
        elif isinstance(m, ReducerResult):
            assert m.status == "committed"
            results.append(m.id)
    assert kinds[:2] == ["IdentityToken", "SubscribeApplied"]
    assert texts == ["in three pieces", "whole"] and results == [2, 3]
    await ws.close()


def test_second_server_on_the_same_data_dir_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        key, owner = (tmp_path / "auth.key").read_bytes(), (tmp_path / "owner.token").read_bytes()
        second = ServerProcess(tmp_path)
        with pytest.raises(AssertionError) as err:
            second.start()  # its output is in the error: it never said it was listening
        assert second.proc is not None and second.proc.wait(10) == 1
        said = str(err.value)
        assert f"error: data directory {tmp_path} is in use by another process (pid {server.proc.pid})" in said, said
        assert "Traceback" not in said
        # The key and owner token the running server minted with are untouched: its tokens stay valid.
        assert (tmp_path / "auth.key").read_bytes() == key and (tmp_path / "owner.token").read_bytes() == owner

        async def still_serving() -> None:
            client = await Client.connect(server.url, DB)
            await client.call("set_name", "Still")
            await client.close()

        run(still_serving())
    finally:
        server.stop()


async def test_any_framing_and_chunking_of_requests_is_understood_in_order(srv: ChatServer) -> None:
    """Whole frames, 16-bit lengths, fragments, pings between them and text frames, cut into
    arbitrary TCP chunks: the server answers every call, in order, as if each had come alone."""
    import os
    import random

    from websockets.frames import BINARY as OP_BINARY
    from websockets.frames import CONT as OP_CONT
    from websockets.frames import PING as OP_PING
    from websockets.frames import TEXT as OP_TEXT
    from websockets.frames import Frame

    from db_core.protocol import CallReducer, TransactionUpdate, encode

    def frames_of(payload: bytes, rng: random.Random) -> list[Frame]:
        if rng.random() < 0.6 or len(payload) < 4:
            return [Frame(OP_BINARY, payload)]
        cut = sorted(rng.sample(range(1, len(payload)), 2))
        parts = [payload[: cut[0]], payload[cut[0]: cut[1]], payload[cut[1]:]]
        return [Frame(OP_BINARY, parts[0], fin=False), Frame(OP_CONT, parts[1], fin=False), Frame(OP_CONT, parts[2])]

    for seed in range(12):
        rng = random.Random(seed)
        ws = await raw(srv.port)
        await ws.recv()  # identity
        wire: list[bytes] = []  # serialized frames
        expected: list[tuple[int, str]] = []
        for i in range(rng.randint(5, 25)):
            if rng.random() < 0.15:
                wire.append(Frame(OP_PING, os.urandom(4)).serialize(mask=True, extensions=[]))
            rid = 1000 * seed + i
            if rng.random() < 0.1:  # a text frame: refused, with the reason, never run
                wire.append(Frame(OP_TEXT, b"{}").serialize(mask=True, extensions=[]))
                expected.append((-1, "error"))
                continue
            # < 126 and 16-bit lengths (the bundled module takes messages up to 4,000 characters)
            text = f"s{seed} m{i} " + "x" * rng.choice([0, 10, 200, 3_900])
            for frame in frames_of(encode(CallReducer(rid, "send_message", [text])), rng):
                wire.append(frame.serialize(mask=True, extensions=[]))
            expected.append((rid, "committed"))
        if seed % 2:
            stream = b"".join(wire)
            chunks, pos = [], 0
            while pos < len(stream):  # arbitrary chunks
                n = rng.choice([1, 2, 5, 7, 64, 1000, 100_000])
                chunks.append(stream[pos: pos + n])
                pos += n
        else:  # each frame cut once, anywhere from its 1st to its last byte
            chunks = []
            for f in wire:
                cut = rng.choice([1, 2, 6, 8, len(f) - 1, rng.randint(1, len(f) - 1)])
                chunks += [f[:cut], f[cut:]]
        for chunk in chunks:  # each its own write (and mostly its own read)
            ws.transport.write(chunk)
            if rng.random() < 0.3:
                await asyncio.sleep(0.002)
        got: list[tuple[int, str]] = []
        while len(got) < len(expected):
            m = decode_server(await asyncio.wait_for(ws.recv(), 10))
            if isinstance(m, ReducerResult):
                got.append((m.id, m.status))
            elif isinstance(m, ErrorMessage):
                assert "binary" in m.error, m.error
                got.append((-1, "error"))
            else:
                assert isinstance(m, TransactionUpdate), m
        # Refusals go out at once, results once durable: each kind in request order.
        assert [g for g in got if g[0] >= 0] == [e for e in expected if e[0] >= 0], seed
        assert got.count((-1, "error")) == expected.count((-1, "error")), seed
        await ws.close()


async def test_the_switch_interval_is_the_servers_while_it_runs_and_the_processs_after(tmp_path: Path) -> None:
    """Process-wide state: the server shortens it (the log thread hands out results after each
    fsync) and gives it back; opening a database as a library leaves it alone."""
    import sys

    from db_core import Database
    from db_core.durability import SWITCH_INTERVAL

    from .conftest import QUICKSTART_CHAT

    before = sys.getswitchinterval()
    with Database.open(tmp_path / "lib", QUICKSTART_CHAT):
        assert sys.getswitchinterval() == before

    async with in_process_server(tmp_path / "srv"):
        running = sys.getswitchinterval()
    assert running == pytest.approx(min(before, SWITCH_INTERVAL))
    assert sys.getswitchinterval() == before
