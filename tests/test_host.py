"""The sans-I/O host: no sockets, just frames in and (session, frame) pairs out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from db_core import Database, Identity
from db_core.host import Host
from db_core.protocol import (CallReducer, IdentityToken, ReducerResult, Subscribe, SubscribeApplied,
                              TransactionUpdate, decode_server, encode)


def frames_for(out, session):
    return [decode_server(f) for s, f in out if s is session]


def subscribed_to_messages(host: Host, db: Database, count: int) -> list:
    """``count`` connected sessions subscribed to every message, their answers already out."""
    sessions = []
    for _ in range(count):
        s, _, _ = host.connect(Identity.random(), "tok")
        host.receive(s, encode(Subscribe(1, ["SELECT * FROM message"])))
        sessions.append(s)
    host.on_durable(db.last_offset)
    return sessions


def test_nothing_goes_out_before_the_log_is_durable(tmp_path: Path, quickstart_path: Path) -> None:
    with Database.open(tmp_path / "d", quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        alice, _, out = host.connect(Identity.random(), "tok")
        assert alice is not None and out == []  # even the identity message waits for the connect's commit
        out = host.on_durable(db.last_offset)
        assert isinstance(frames_for(out, alice)[0], IdentityToken)
        out = host.receive(alice, encode(CallReducer(1, "send_message", ["hi"])))
        assert out == []
        db.wait_durable(db.last_offset)
        out = host.on_durable(db.last_offset)
        (result,) = frames_for(out, alice)
        assert isinstance(result, ReducerResult) and result.status == "committed"


def test_same_bytes_to_every_subscriber_and_one_frame_per_batch(quickstart_path: Path) -> None:
    with Database.open(None, quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        sessions = subscribed_to_messages(host, db, 5)
        sender = sessions[0]
        for text in ("one", "two", "three"):
            host.receive(sender, encode(CallReducer(10, "send_message", [text])))
        out = host.on_durable(db.last_offset)
        tx_frames = {s: f for s, f in out if isinstance(decode_server(f), TransactionUpdate)}
        assert set(tx_frames) == set(sessions)
        # the listeners got the very same bytes object, built once
        assert len({id(f) for s, f in tx_frames.items() if s is not sender}) == 1
        update = decode_server(tx_frames[sessions[1]])
        assert [tx.updates[0].inserts[0][2] for tx in update.txs] == ["one", "two", "three"]
        # the caller's results come after the frame that carries their changes
        mine = [decode_server(f) for s, f in out if s is sender]
        assert isinstance(mine[0], TransactionUpdate) and all(isinstance(m, ReducerResult) for m in mine[1:])


def test_failed_call_reaches_only_its_caller(quickstart_path: Path) -> None:
    with Database.open(None, quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        a, _, _ = host.connect(Identity.random(), "tok")
        b, _, _ = host.connect(Identity.random(), "tok")
        for s in (a, b):
            host.receive(s, encode(Subscribe(1, ["SELECT * FROM user"])))
        host.on_durable(db.last_offset)
        out = host.receive(a, encode(CallReducer(2, "set_name", [""])))
        out += host.on_durable(db.last_offset)
        assert [s for s, _ in out] == [a]
        (result,) = frames_for(out, a)
        assert (result.status, result.error) == ("failed", "Names must not be empty")


def test_subscribe_answer_precedes_its_updates(quickstart_path: Path) -> None:
    with Database.open(None, quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        a, _, _ = host.connect(Identity.random(), "tok")
        host.on_durable(db.last_offset)
        # Subscribe and call in the same batch: the answer comes first, then the update.
        out = host.receive(a, encode(Subscribe(1, ["SELECT * FROM message"])))
        out += host.receive(a, encode(CallReducer(2, "send_message", ["x"])))
        out += host.on_durable(db.last_offset)
        kinds = [type(m).__name__ for m in frames_for(out, a)]
        assert kinds == ["SubscribeApplied", "TransactionUpdate", "ReducerResult"]
        assert isinstance(frames_for(out, a)[0], SubscribeApplied)


# -- holding commits: what the server does while it handles one turn's requests ----------------------
def test_held_commits_wait_and_then_share_one_fsync(tmp_path: Path, quickstart_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from db_core.commitlog import flusher as commitlog_flusher

    with Database.open(tmp_path / "d", quickstart_path) as db:
        alice = Identity.random()
        db.call("send_message", "warm-up", sender=alice)
        syncs: list[int] = []
        real = commitlog_flusher.datasync
        monkeypatch.setattr(commitlog_flusher, "datasync", lambda fd: (syncs.append(fd), real(fd))[1])
        before = db.durable_offset
        db.hold_commits()
        offsets = [db.submit("send_message", f"m{i}", sender=alice).offset for i in range(5)]
        time.sleep(0.05)
        assert db.durable_offset == before and syncs == []  # nothing goes to disk while held
        db.release_commits()
        assert db.wait_durable(offsets[-1], timeout=5)
        assert len(syncs) == 1  # the five commits shared one fsync


def test_waiting_for_a_held_commit_releases_the_hold(tmp_path: Path, quickstart_path: Path) -> None:
    with Database.open(tmp_path / "d", quickstart_path) as db:
        db.hold_commits()
        r = db.submit("send_message", "hi", sender=Identity.random())
        assert db.wait_durable(r.offset, timeout=5)  # no deadlock: the waiter lifts the hold
        db.hold_commits()
        db.submit("send_message", "on close", sender=Identity.random())
    # closing while held still makes everything durable
    with Database.open(tmp_path / "d", quickstart_path) as db:
        assert sorted(m.text for m in db.tables["message"].rows.values()) == ["hi", "on close"]


def test_callers_are_answered_after_everyone_else_got_the_batch(quickstart_path: Path) -> None:
    with Database.open(None, quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        sessions = subscribed_to_messages(host, db, 4)
        callers = sessions[:2]
        for i, s in enumerate(callers):
            host.receive(s, encode(CallReducer(5, "send_message", [f"m{i}"])))
        order = [s for s, _ in host.on_durable(db.last_offset)]
        assert set(order[:2]) == set(sessions[2:]) and set(order[2:]) == set(callers)


def test_callers_share_the_batch_frame_and_get_their_results_after_it(quickstart_path: Path) -> None:
    with Database.open(None, quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        sessions = subscribed_to_messages(host, db, 3)
        for round_ in range(2):  # the second round runs on settled subscriptions
            for i, s in enumerate(sessions):
                host.receive(s, encode(CallReducer(10 + i, "send_message", [f"r{round_} m{i}"])))
            assert all(s.in_flight == 1 for s in sessions)
            out = host.on_durable(db.last_offset)
            assert all(s.in_flight == 0 for s in sessions)  # every answered call leaves the in-flight count
            per = {s: [f for t, f in out if t is s] for s in sessions}
            assert len({id(frames[0]) for frames in per.values()}) == 1  # the same update bytes for all
            for i, s in enumerate(sessions):
                update, result = (decode_server(f) for f in per[s])
                assert [tx.updates[0].inserts[0][2] for tx in update.txs] == [f"r{round_} m{j}" for j in range(3)]
                assert isinstance(result, ReducerResult) and result.id == 10 + i


@pytest.mark.parametrize("durable", [True, False], ids=["log-encoded rows", "in-memory"])
def test_update_rows_equal_what_a_fresh_subscription_sends(tmp_path: Path, quickstart_path: Path,
                                                             durable: bool) -> None:
    """Whole-table subscribers get the rows the commit log already encoded, filtered ones rows
    encoded for them: either way, the same values a new subscription's initial rows carry."""
    with Database.open(tmp_path / "d" if durable else None, quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        alice, _, _ = host.connect(Identity.random(), "tok")
        queries = ["SELECT * FROM message", "SELECT * FROM message WHERE text = 'b'", "SELECT * FROM user"]
        host.receive(alice, encode(Subscribe(1, queries)))
        db.wait_durable(db.last_offset)
        host.on_durable(db.last_offset)
        for frame in [CallReducer(2, "send_message", ["a"]), CallReducer(3, "send_message", ["b"]),
                      CallReducer(4, "set_name", ["Alice"])]:
            host.receive(alice, encode(frame))
        db.wait_durable(db.last_offset)
        (update, *_results) = frames_for(host.on_durable(db.last_offset), alice)
        assert isinstance(update, TransactionUpdate)
        got: dict[str, list] = {}
        for tx in update.txs:
            for q in tx.updates:
                got.setdefault(q.table, []).extend(("+", r) for r in q.inserts)
                got.setdefault(q.table, []).extend(("-", r) for r in q.deletes)
        bob, _, _ = host.connect(Identity.random(), "tok")
        host.receive(bob, encode(Subscribe(1, queries)))
        db.wait_durable(db.last_offset)
        fresh = next(m for m in frames_for(host.on_durable(db.last_offset), bob) if isinstance(m, SubscribeApplied))
        messages = fresh.queries[0].inserts
        assert [r for _, r in got["message"]] == [messages[0], messages[1], messages[1]]  # "b" twice: two queries
        named = next(r for r in fresh.queries[2].inserts if r[1] == "Alice")
        assert ("+", named) in got["user"] and any(sign == "-" and r[0] == named[0] for sign, r in got["user"])


def test_a_subscribe_of_new_queries_is_checked_in_slices(quickstart_path: Path) -> None:
    """Each new query costs a parse and a check (~65 us): 64 of them are checked a slice at a time,
    so another client's call is answered in between; a bad one fails the subscribe, named."""
    with Database.open(None, quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        attacker, _, _ = host.connect(Identity.random(), "tok")
        victim, _, _ = host.connect(Identity.random(), "tok")
        host.on_durable(db.last_offset)
        queries = [f"SELECT * FROM message WHERE text = 'new {i}'" for i in range(64)]
        assert frames_for(host.receive(attacker, encode(Subscribe(1, queries))), attacker) == []
        assert host.busy  # not all checked in its first slice
        host.receive(victim, encode(CallReducer(2, "send_message", ["between"])))
        (result,) = frames_for(host.on_durable(db.last_offset), victim)
        assert isinstance(result, ReducerResult) and result.status == "committed"
        while host.busy:
            host.work()
        host.on_durable(db.last_offset)
        assert host.sessions[attacker.connection_id].subs[1].queries == queries
        bad = queries[:40] + ["SELECT * FROM nowhere"] + [q + " " for q in queries[:20]]
        out = host.receive(attacker, encode(Subscribe(3, bad)))
        while host.busy:
            out += host.work()
        (error,) = frames_for(out, attacker)
        assert error.error.endswith("in query: SELECT * FROM nowhere"), error
        assert 3 not in attacker.subs


def test_a_read_arriving_while_a_long_one_runs_takes_its_turn_in_the_next_slice(quickstart_path: Path) -> None:
    """Its first slice would stack on the turn's others (an attacker's pipelined reads each had one):
    it waits for ``work`` and ends in its turn there; with nothing under way it ends on arrival."""
    with Database.open(None, quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        attacker, _, _ = host.connect(Identity.random(), "tok")
        other, _, _ = host.connect(Identity.random(), "tok")
        host.on_durable(db.last_offset)
        host.receive(attacker, encode(Subscribe(1, [f"SELECT * FROM message WHERE text = 'x{i}'" for i in range(64)])))
        assert host.busy
        assert host.receive(other, encode(Subscribe(2, ["SELECT * FROM user"]))) == []
        out = host.work() + host.work()  # the long one's slice, then its (the turns rotate)
        assert host.busy  # the long one goes on
        assert any(isinstance(m, SubscribeApplied) for m in frames_for(out + host.on_durable(db.last_offset), other))
        while host.busy:
            host.work()
        out = host.receive(other, encode(Subscribe(3, ["SELECT * FROM message"])))
        assert not host.busy  # alone, it ended in its first slice
        assert any(isinstance(m, SubscribeApplied) for m in frames_for(out + host.on_durable(db.last_offset), other))


def test_rows_are_encoded_once_for_the_log_and_every_subscriber(tmp_path: Path, quickstart_path: Path) -> None:
    """The commit log's encoding of a whole-table update is what subscribers get (nothing rides on
    the TxData): one encode per row however many watch the table."""
    with Database.open(tmp_path / "d", quickstart_path) as db:
        host = Host(db, "quickstart-chat")
        sessions = subscribed_to_messages(host, db, 3)
        codec = db.codecs["message"]
        encoded = []
        plain = codec.encode

        def counting(row: object) -> object:
            encoded.append(row)
            return plain(row)

        codec.encode = counting
        host.receive(sessions[0], encode(CallReducer(2, "send_message", ["once"])))
        db.wait_durable(db.last_offset)
        out = host.on_durable(db.last_offset)
        updates = [m for s in sessions for m in frames_for(out, s) if isinstance(m, TransactionUpdate)]
        assert len(updates) == 3 and len(encoded) == 1


def test_one_owner_check_for_logs_publish_and_delete() -> None:
    from db_core.authority import Action, refusal

    owner, publisher, stranger = Identity.random(), Identity.random(), Identity.random()
    mine = frozenset({publisher})
    assert refusal(owner, Action.READ_LOGS, "db", owner) is None
    assert refusal(stranger, Action.READ_LOGS, "db", owner) == (
        f"Identity 0x{stranger.hex()} is not authorized to read the logs of database `db`")
    assert refusal(publisher, Action.CREATE, "new", None, exists=False, server_owner=owner, publishers=mine) is None
    assert refusal(publisher, Action.PUBLISH_OVER, "db", owner, server_owner=owner, publishers=mine) is not None
    assert refusal(publisher, Action.DELETE, "p", publisher, server_owner=owner, publishers=mine) is None
    assert refusal(owner, Action.DELETE, "p", publisher, server_owner=owner, publishers=mine) is None
    why = refusal(stranger, Action.CREATE, "new", None, exists=False, server_owner=owner, publishers=mine)
    assert why is not None and why.endswith("(see `chat-server start --publisher`)")
