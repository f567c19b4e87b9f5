"""The sans-I/O hosting controller: publish, delete and owner checks, without a socket."""

from __future__ import annotations

from pathlib import Path

from db_core import Identity
from db_core.hosting import Hosting, Module
from db_core.protocol import (DeleteDatabase, Done, ErrorMessage, IdentityToken, Publish, Subscribe, SubscribeApplied,
                              decode_server, encode)
from db_core.session import Session


def valid(name: str) -> str:
    if not name.isidentifier() and "-" not in name:
        raise ValueError(f"invalid database name {name!r}")
    return name


def frames_for(out: list, session: Session) -> list:
    return [decode_server(f) for s, f in out if s is session]


def durable(hosting: Hosting, name: str) -> list:
    hosted = hosting.databases[name]
    hosted.db.wait_durable(hosted.db.last_offset)
    return hosting.on_durable(hosted)


def test_publishing_over_a_database_carries_its_live_sessions_over(tmp_path: Path, quickstart_path: Path) -> None:
    owner = Identity.random()
    admin_asked = []
    hosting = Hosting(tmp_path / "databases", owner, check_name=valid, wake_admin=lambda: admin_asked.append(1))
    source = quickstart_path.read_text()
    hosting.open_all(("chat", Module(source, quickstart_path.name)))
    try:
        alice, _, _ = hosting.connect("chat", Identity.random(), "tok")
        assert alice is not None
        hosting.receive(alice, encode(Subscribe(1, ["SELECT * FROM message"])))
        hosting.release_commits()
        durable(hosting, "chat")
        old = hosting.databases["chat"]

        # A stranger may not publish over it: refused, nothing changes.
        hosting.receive(alice, encode(Publish(2, source + "\n# v2\n", "quickstart_chat.py")))
        assert admin_asked == [1]  # run later, not from inside the host's own call
        effects = hosting.run_admin()
        (refusal,) = frames_for(effects.out, alice)
        assert isinstance(refusal, ErrorMessage) and "is not authorized to publish over" in refusal.error
        assert hosting.databases["chat"] is old

        # The owner may: alice stays connected, on the new version, subscribed again.
        assert hosting.publish("chat", source + "\n# v2\n", filename="quickstart_chat.py") == []
        out = hosting.effects().out + durable(hosting, "chat")
        new = hosting.databases["chat"]
        assert new is not old and alice in hosting and alice in new.host.sessions.values()
        kinds = [type(m) for m in frames_for(out, alice)]
        assert kinds[:2] == [IdentityToken, SubscribeApplied]
    finally:
        hosting.close()


def test_deleting_a_database_closes_its_sessions_after_answering(tmp_path: Path, quickstart_path: Path) -> None:
    owner = Identity.random()
    hosting = Hosting(tmp_path / "databases", owner, check_name=valid)
    hosting.open_all(("chat", Module(quickstart_path.read_text(), quickstart_path.name)))
    try:
        me, _, _ = hosting.connect("chat", owner, "tok", hooks=False)
        other, _, _ = hosting.connect("chat", Identity.random(), "tok")
        assert me is not None and other is not None
        hosting.receive(me, encode(DeleteDatabase(5)))
        effects = hosting.run_admin()
        (done,) = frames_for(effects.out, me)
        assert isinstance(done, Done) and done.id == 5
        assert {s for s, _ in effects.closed} == {me, other}
        assert "chat" not in hosting.databases and me not in hosting
        assert hosting.receive(other, encode(Subscribe(1, ["SELECT * FROM message"]))) == []
        assert not (tmp_path / "databases" / "chat").exists()
    finally:
        hosting.close()
