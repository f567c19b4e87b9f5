"""The async SDK: what a client hears when the server ends a live subscription."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chat_server.client import Client, ClientError

from .server_harness import in_process_server, run

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


def test_a_subscription_the_new_module_cannot_answer_ends_the_event_stream(tmp_path: Path) -> None:
    async def main() -> None:
        async with in_process_server(tmp_path) as srv:
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
    run(main())
