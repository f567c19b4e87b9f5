"""The server's GC policy: full collections skip what survived earlier ones, and leaked cycles come back."""

from __future__ import annotations

import gc
import weakref

import pytest

from chat_server.gc_policy import GcPolicy


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture
def policy():
    p = GcPolicy(reclaim_after=3, force_after=5)
    p.start()
    yield p
    p.stop()


def test_survivors_of_a_full_collection_are_not_scanned_again(policy: GcPolicy) -> None:
    rows = [Node() for _ in range(20_000)]  # long-lived, like a table's rows
    gc.collect()
    assert gc.get_freeze_count() >= len(rows)  # frozen by the callback at the end of the collection
    gc.collect(2)
    scanned = {id(o) for g in range(3) for o in gc.get_objects(generation=g)}  # what a full collection walks
    assert not scanned & {id(r) for r in rows}
    young = Node()  # the collector still runs: young cycles are collected as ever
    ref = weakref.ref(young)
    del young
    gc.collect()
    assert ref() is None
    del rows


def test_a_cycle_frozen_while_alive_is_reclaimed_after_enough_disconnects(policy: GcPolicy) -> None:
    node = Node()
    ref = weakref.ref(node)
    gc.collect()  # node is alive: frozen
    del node
    gc.collect()
    assert ref() is not None  # frozen garbage waits for a reclaim
    policy.disconnected()
    policy.disconnected()
    policy.idle()
    assert ref() is not None and policy.reclaims == 0  # not due yet
    policy.disconnected()  # the third: reclaim_after
    assert ref() is not None and policy.reclaims == 0  # due, but the server is busy
    policy.idle()  # a quiet moment
    assert ref() is None and policy.reclaims == 1 and policy.disconnects == 0


def test_a_server_that_is_never_idle_still_reclaims_past_force_after(policy: GcPolicy) -> None:
    node = Node()
    ref = weakref.ref(node)
    gc.collect()
    del node
    for _ in range(4):
        policy.disconnected()
    assert ref() is not None and policy.reclaims == 0
    policy.disconnected()  # the fifth: force_after
    assert ref() is None and policy.reclaims == 1


def test_stop_restores_the_default_policy() -> None:
    p = GcPolicy()
    p.start()
    p.stop()
    assert p._on_gc not in gc.callbacks and gc.get_freeze_count() == 0
    node = Node()
    ref = weakref.ref(node)
    gc.collect()
    del node
    gc.collect()
    assert ref() is None


async def test_a_closed_connection_leaves_the_collector_nothing_of_the_server(srv) -> None:  # noqa: ANN001
    """What a connection held (its session, its client, its websocket) is freed as soon as it ends,
    so the long pause of a reclaim is needed once per thousands of disconnects, not per hundreds."""
    import asyncio

    from websockets.asyncio.client import connect

    from chat_server.client import ws_url
    from chat_server.frames import FastConnection
    from chat_server.turns import Peer
    from db_core.session import Session
    from db_core.protocol import SUBPROTOCOL

    from .server_harness import wait_for

    def alive() -> int:
        return sum(1 for o in gc.get_objects() if type(o) in (Peer, Session, FastConnection))

    gc.collect()
    gc.disable()  # from here on, only reference counting frees anything
    try:
        before = alive()
        ws = await connect(ws_url(f"127.0.0.1:{srv.port}", "quickstart-chat"),
                           subprotocols=[SUBPROTOCOL])
        await ws.recv()
        assert alive() > before
        await ws.close()
        await wait_for(lambda: not srv.clients)
        await asyncio.sleep(0.05)
        after = alive()
    finally:
        gc.enable()
    assert after == before


async def test_a_closed_socket_leaves_the_collector_nothing_either(srv) -> None:  # noqa: ANN001
    """asyncio's transport holds a bound method of itself: unbroken, every connection (refused ones
    too: connect churn makes thousands a second) left a cycle for the young collections."""
    import asyncio

    from websockets.asyncio.client import connect

    from chat_server.client import ws_url
    from db_core.protocol import SUBPROTOCOL

    from .server_harness import wait_for

    def server_side() -> int:  # the server's transports, closed or not, that are still alive
        return sum(1 for o in gc.get_objects() if issubclass(type(o), asyncio.Transport)
                   and (o.get_extra_info("sockname") or (None, None))[1] == srv.port)

    gc.collect()
    gc.disable()  # from here on, only reference counting frees anything
    try:
        before = server_side()
        ws = await connect(ws_url(f"127.0.0.1:{srv.port}", "quickstart-chat"),
                           subprotocols=[SUBPROTOCOL])
        await ws.recv()
        await ws.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)  # plain HTTP, no upgrade
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        await wait_for(lambda: not srv.clients)
        await asyncio.sleep(0.05)
        left = server_side() - before
    finally:
        gc.enable()
    assert left == 0


def test_young_collections_are_rarer_while_installed_and_as_before_after() -> None:
    import gc

    from chat_server.gc_policy import YOUNG_THRESHOLD, GcPolicy

    before = gc.get_threshold()
    policy = GcPolicy()
    policy.start()
    try:
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
    finally:
        policy.stop()
    assert gc.get_threshold() == before
