"""Who may install code: only the server's owner (and publishers it names) may publish or delete.

A module runs inside the server with its rights (it could read ``auth.key`` and forge the owner's
token), so every other publish or delete is refused before any uploaded byte is imported. And a
module that raises ``SystemExit`` or ``KeyboardInterrupt`` fails on its own: the server keeps going.
"""

from __future__ import annotations

from pathlib import Path

from chat_server.client import Client
from chat_server.server import ChatServer
from db_core.protocol import DeleteDatabase, Done, ErrorMessage, Publish

from ..server_harness import ServerProcess, in_process_server, run

NOTES = '''
from typing import Annotated
from db_core import table, reducer, ReducerContext, PrimaryKey

@table(name="note", public=True)
class Note:
    id: Annotated[int, PrimaryKey]
    text: str

@reducer
def add(ctx: ReducerContext, id: int, text: str) -> None:
    ctx.db.note.insert(Note(id, text))
'''


def marker_module(marker: Path) -> str:
    """A module whose import leaves a file behind: proof that the server ran it."""
    return f"open({str(marker)!r}, 'w').write('imported')\n" + NOTES


async def publish(url: str, name: str, source: str, token: str | None) -> Done | ErrorMessage:
    client = await Client.connect(url, name, token=token, endpoint="cli")
    try:
        return await client.request(lambda rid: Publish(rid, source, "notes.py"))
    finally:
        await client.close()


async def delete(url: str, name: str, token: str | None) -> Done | ErrorMessage:
    client = await Client.connect(url, name, token=token, endpoint="cli")
    try:
        return await client.request(lambda rid: DeleteDatabase(rid))
    finally:
        await client.close()


async def test_anonymous_and_non_owner_publish_is_refused_before_the_module_is_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"

    async with in_process_server(tmp_path / "data") as srv:
        url = f"127.0.0.1:{srv.port}"
        _, stranger = srv.auth.mint()
        for token in (None, stranger):
            reply = await publish(url, "evil", marker_module(marker), token)
            assert isinstance(reply, ErrorMessage)
            assert "is not authorized to create database `evil`" in reply.error
            assert "only the server's owner may publish" in reply.error
            # over the bundled database too, and from a client connection rather than the CLI's
            reply = await publish(url, "quickstart-chat", marker_module(marker), token)
            assert isinstance(reply, ErrorMessage)
            assert "is not authorized to publish over database `quickstart-chat`" in reply.error
            reply = await delete(url, "quickstart-chat", token)
            assert isinstance(reply, ErrorMessage)
            assert "is not authorized to delete database `quickstart-chat`" in reply.error
        assert not marker.exists()
        assert "evil" not in srv.databases and not (tmp_path / "data" / "databases" / "evil").exists()
        assert "quickstart-chat" in srv.databases
        # the owner may
        reply = await publish(url, "notes", NOTES, srv.owner_token)
        assert isinstance(reply, Done) and reply.detail == ["created database `notes`"]
        reply = await delete(url, "notes", srv.owner_token)
        assert isinstance(reply, Done)


async def test_a_named_publisher_may_create_and_manage_only_its_own_databases(srv: ChatServer) -> None:
    publisher, token = srv.auth.mint()
    srv.config.publishers = frozenset({publisher})
    url = f"127.0.0.1:{srv.port}"
    reply = await publish(url, "notes", NOTES, token)
    assert isinstance(reply, Done)
    assert srv.databases["notes"].db.owner == publisher
    reply = await publish(url, "notes", NOTES + "\n# v2\n", token)
    assert isinstance(reply, Done) and reply.detail[0] == "updated database `notes`"
    reply = await publish(url, "quickstart-chat", NOTES, token)
    assert isinstance(reply, ErrorMessage) and "not authorized to publish over" in reply.error
    reply = await delete(url, "quickstart-chat", token)
    assert isinstance(reply, ErrorMessage) and "not authorized to delete" in reply.error
    reply = await delete(url, "notes", token)
    assert isinstance(reply, Done)


def test_the_publisher_option_of_start(tmp_path: Path) -> None:
    """``chat-server start --publisher 0x...`` as a user runs it."""
    probe = ServerProcess(tmp_path / "probe").start()
    probe.stop()
    from chat_server.auth import TokenAuthority

    authority = TokenAuthority.load_or_create(tmp_path / "data" / "auth.key")
    publisher, token = authority.mint()
    _, stranger = authority.mint()
    server = ServerProcess(tmp_path / "data", args=["--publisher", "0x" + publisher.hex()]).start()
    try:
        async def main() -> None:
            assert isinstance(await publish(server.url, "mine", NOTES, token), Done)
            refused = await publish(server.url, "theirs", NOTES, stranger)
            assert isinstance(refused, ErrorMessage) and "not authorized to create" in refused.error

        run(main())
    finally:
        server.stop()


EXITING_AT_IMPORT = NOTES + "\nimport sys\nsys.exit(3)\n"
INTERRUPTING_AT_IMPORT = NOTES + "\nraise KeyboardInterrupt\n"
EXITING_REDUCERS = NOTES + '''
import sys
from db_core import client_connected

@reducer
def leave(ctx: ReducerContext) -> None:
    ctx.db.note.insert(Note(99, "half done"))
    sys.exit()

@reducer
def interrupt(ctx: ReducerContext) -> None:
    raise KeyboardInterrupt("stop")

@client_connected
def hello(ctx: ReducerContext) -> None:
    if ctx.db.note.id.find(7) is not None:
        raise SystemExit("no visitors")
'''


def test_a_module_that_exits_or_interrupts_fails_alone(tmp_path: Path) -> None:
    """A real server process: ``sys.exit()`` anywhere in a module never stops it."""
    server = ServerProcess(tmp_path).start()
    owner = (tmp_path / "owner.token").read_text().strip()
    try:
        async def main() -> None:
            for source, what in ((EXITING_AT_IMPORT, "SystemExit: 3"), (INTERRUPTING_AT_IMPORT, "KeyboardInterrupt")):
                reply = await publish(server.url, "notes", source, owner)
                assert isinstance(reply, ErrorMessage), reply
                assert "cannot import notes.py" in reply.error and what in reply.error
            assert isinstance(await publish(server.url, "notes", EXITING_REDUCERS, owner), Done)
            cli = await Client.connect(server.url, "notes", token=owner, endpoint="cli")
            r = await cli.call("leave")
            assert (r.status, r.error) == ("internal_error", "internal error: SystemExit")
            r = await cli.call("interrupt")
            assert (r.status, r.error) == ("internal_error", "internal error: KeyboardInterrupt: stop")
            assert (await cli.sql("SELECT * FROM note")).rows == []  # rolled back
            assert (await cli.call("add", 7, "closed")).status == "committed"
            try:
                await Client.connect(server.url, "notes")
                raise AssertionError("client_connected raised SystemExit: the connection must be refused")
            except Exception as exc:  # ConnectFailed with the module's reason
                assert "SystemExit: no visitors" in str(exc)
            assert (await cli.call("add", 8, "still here")).status == "committed"
            await cli.close()

        run(main())
        assert server.proc is not None and server.proc.poll() is None
        logs = (tmp_path / "databases" / "notes" / "data" / "module.log").read_text()
        assert "reducer `leave` panicked: SystemExit" in logs
    finally:
        out = server.stop()
    assert "Traceback" not in out


async def test_stop_closes_a_connection_waiting_on_a_database_that_does_not_exist(tmp_path: Path) -> None:
    async with in_process_server(tmp_path) as srv:
        waiting = await Client.connect(f"127.0.0.1:{srv.port}", "nothing-here", endpoint="cli")
    # leaving the block stopped the server: it must not wait for this client to hang up
    await waiting.closed.wait()
