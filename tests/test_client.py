"""The async SDK: one way for subscribed rows (events), a method per request, typed connect failures."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from chat_server.client import Client, ClientError, ConnectFailed, TableSchema
from chat_server.server import ChatServer

from .server_harness import in_process_server

MODULE = '''
from typing import Annotated
from db_core import table, PrimaryKey

@table(name="note", public=True)
class Note:
    id: Annotated[int, PrimaryKey]
    text: str
'''

WITHOUT_TEXT = '''
from typing import Annotated
from db_core import table, PrimaryKey

@table(name="note", public=True)
class Note:
    id: Annotated[int, PrimaryKey]
'''


async def test_a_subscription_the_new_module_cannot_answer_ends_the_event_stream(srv: ChatServer) -> None:
    srv.publish("notes", MODULE)
    url = f"127.0.0.1:{srv.port}"
    client = await Client.connect(url, "notes")
    await client.subscribe(["SELECT * FROM note WHERE text = 'x'"])
    srv.publish("notes", WITHOUT_TEXT, clear=True)

    async def drain() -> None:
        async for _ in client.events():
            pass

    with pytest.raises(ClientError, match="subscription ended by the server: .*text"):
        await asyncio.wait_for(drain(), 10)
    await client.close()


async def test_subscribed_rows_arrive_once_decoded_through_one_event_stream(srv: ChatServer,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``chat-server subscribe`` reads: each event carries what every query received, decoded
    once (the cache's row events are built from the same rows), and nothing else piles up."""
    decoded: list[Any] = []
    plain = TableSchema.decode

    def counting(self: TableSchema, values: list[Any]) -> Any:
        decoded.append(values)
        return plain(self, values)

    monkeypatch.setattr(TableSchema, "decode", counting)

    srv.publish("notes", MODULE)
    url = f"127.0.0.1:{srv.port}"
    writer = await Client.connect(url, "notes", token=srv.owner_token, endpoint="cli")
    assert (await writer.sql("INSERT INTO note (id, text) VALUES (1, 'x')")).error is None
    reader = await Client.connect(url, "notes")
    # Two overlapping queries: the row comes twice, the cache holds it once.
    await reader.subscribe(["SELECT * FROM note", "SELECT * FROM note WHERE text = 'x'"])
    events = reader.events()
    initial = await anext(events)
    assert initial.initial and initial.offset == -1
    assert [(d.table, d.inserts, d.deletes) for d in initial.updates] == [("note", [(1, "x")], [])] * 2
    assert [(e.kind, e.new) for e in initial.rows] == [("insert", (1, "x"))]
    decoded.clear()
    assert (await writer.sql("UPDATE note SET text = 'y' WHERE id = 1")).error is None
    event = await asyncio.wait_for(anext(events), 10)
    assert event.offset >= 0 and not event.initial
    deltas = sorted((d.query_id, d.inserts, d.deletes) for d in event.updates)
    assert [(ins, dels) for _, ins, dels in deltas] == [([(1, "y")], [(1, "x")]), ([], [(1, "x")])]
    # Applied query by query: the first brings y (x stays, the second still has it), the second drops x.
    assert [(e.kind, e.old, e.new) for e in event.rows] == [("insert", None, (1, "y")),
                                                             ("delete", (1, "x"), None)]
    assert reader.rows("note") == [(1, "y")]
    assert len(decoded) == 3  # each wire row once: no second decoding for the printed updates
    assert reader._events.empty()
    await reader.close()
    await writer.close()


async def test_logs_publish_and_delete_are_sdk_methods(srv: ChatServer) -> None:
    url = f"127.0.0.1:{srv.port}"
    owner = await Client.connect(url, "notes", token=srv.owner_token, endpoint="cli")
    assert await owner.publish(MODULE, "notes.py") == ["created database `notes`"]
    stranger = await Client.connect(url, "notes", endpoint="cli")
    with pytest.raises(ClientError, match="is not authorized to publish over database `notes`"):
        await stranger.publish(MODULE, "notes.py")
    with pytest.raises(ClientError, match="is not authorized to read the logs"):
        await stranger.logs()
    await stranger.close()
    owner = await Client.connect(url, "notes", token=srv.owner_token, endpoint="cli")
    lines = await owner.logs()
    assert any("Creating table `note`" in line for line in lines)
    assert await owner.logs(n=1) == lines[-1:]
    async with contextlib.aclosing(owner.follow_logs(n=1)) as follow:
        assert await anext(follow) == lines[-1:]
    assert not owner._follows
    assert await owner.delete() == ["deleted database `notes`"]
    await owner.close()


async def test_connect_failures_carry_what_refused_them(tmp_path: Path) -> None:
    async with in_process_server(tmp_path) as srv:
        url = f"127.0.0.1:{srv.port}"
        with pytest.raises(ConnectFailed) as refused:
            await Client.connect(url, "nope")
        assert (refused.value.status, refused.value.close_code, refused.value.no_database) == (404, None, True)
        with pytest.raises(ConnectFailed) as forged:
            await Client.connect(url, "quickstart-chat", token="qc1.00.forged")
        assert (forged.value.status, forged.value.close_code, forged.value.token_refused) == (None, 1008, True)
        assert forged.value.close_reason is not None and forged.value.close_reason.startswith("invalid token: ")
    with pytest.raises(ConnectFailed) as unreachable:
        await Client.connect(f"127.0.0.1:{srv.port}", "quickstart-chat", open_timeout=5)
    failure = unreachable.value
    assert (failure.status, failure.close_code, failure.no_database, failure.token_refused) == (None, None, False,
                                                                                                 False)
