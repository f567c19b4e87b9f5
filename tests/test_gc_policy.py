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
    p = GcPolicy(reclaim_after=3)
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
    assert ref() is not None and policy.reclaims == 0
    policy.disconnected()  # the third: reclaim_after
    assert ref() is None and policy.reclaims == 1 and policy.disconnects == 0


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
