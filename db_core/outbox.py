"""The durability barrier and per-client batching of one database's outgoing frames.

Every outgoing message waits behind an offset: it is released only once the log
is durable up to the last transaction it could reflect. Updates are encoded once
per query at commit (``commit``), and a client's updates from one durable batch
go out as one frame between its other messages; clients with the same
subscriptions get the very same bytes. The host feeds it:

    outbox.commit(tx, deltas)               # a commit's per-query deltas
    out = outbox.send(reply)                # a message: out now if nothing older waits
    out = outbox.on_durable(offset)         # the log's news: everything it releases, in order
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Hashable
from typing import Any, Generic, Protocol, TypeVar

from .codec import TableCodec
from .protocol import encode_transaction_update, wire_rows, wire_tx
from .subscription import QueryDelta, Subscription, Subscriptions
from .tx import TxData


class Recipient(Hashable, Protocol):
    """What the outbox reads and keeps of a client (the host's session)."""

    subs: dict[int, Subscription]
    signature: tuple[int, ...] | None  # its live queries, sorted, while they are steady (None: to compute)
    closed: bool
    in_flight: int


R = TypeVar("R", bound=Recipient)

# An outgoing payload: a query's answer is built in a bytearray and sent as it is (never copied).
Payload = bytes | bytearray


@dataclasses.dataclass(slots=True)
class PendingTx:
    """One commit's updates, encoded: released to the watchers of its queries."""

    offset: int
    header: dict[str, Any]                # wire_tx of the transaction
    deltas: dict[int, list[Any]]          # query id -> its wire_rows


@dataclasses.dataclass(slots=True)
class PendingMsg(Generic[R]):
    """One message to one client, released once the log is durable up to ``offset``."""

    offset: int
    session: R
    frame: Payload
    counts_in_flight: bool
    # Ordered messages (identity, subscribe and unsubscribe answers) must go out before the
    # updates that follow them; replies (results, query answers, log lines) only after the
    # updates that precede them, so they wait for the batch's one coalesced frame.
    ordered: bool = False


class Outbox(Generic[R]):
    """What waits to go out to the clients of one database, in commit order."""

    def __init__(self, subscriptions: Subscriptions[R], codecs: dict[str, TableCodec], durable: int) -> None:
        self._subscriptions = subscriptions
        self._codecs = codecs
        self._pending: collections.deque[PendingTx | PendingMsg[R]] = collections.deque()
        self._durable = durable

    @property
    def durable(self) -> int:
        """The log is durable up to this offset, as last told (``on_durable``)."""
        return self._durable

    def commit(self, tx: TxData, deltas: dict[int, QueryDelta]) -> None:
        """Queue a commit's updates (``deltas``: by query id, from ``Subscriptions.evaluate``);
        they go out with ``on_durable`` once the log holds ``tx``."""
        codecs = self._codecs
        wire: dict[int, list[Any]] = {}
        for qid, delta in deltas.items():
            codec = codecs[delta.table]
            if delta.whole is not None:  # the whole table's update: the rows the log encoded
                rows = codec.encode_update(delta.whole)
            else:
                enc = codec.encode
                rows = ([enc(r) for r in delta.inserts], [enc(r) for r in delta.deletes])
            wire[qid] = wire_rows(qid, delta.table, *rows)
        header = wire_tx(tx.offset, int(tx.timestamp), tx.reducer, bytes(tx.caller_identity))
        self._pending.append(PendingTx(tx.offset, header, wire))

    def send(self, item: PendingMsg[R]) -> list[tuple[R, Payload]]:
        """Queue a message; returns what may go out now (it too, if its offset is durable and
        nothing older waits). Send what it returns."""
        self._pending.append(item)
        return self.release() if item.offset <= self._durable else []

    def hold(self, item: PendingMsg[R]) -> None:
        """Queue a message without releasing anything now: it goes with the next ``release``."""
        self._pending.append(item)

    def on_durable(self, offset: int) -> list[tuple[R, Payload]]:
        """The log is durable up to ``offset``: returns everything that releases, in order. Send it."""
        if offset > self._durable:
            self._durable = offset
        return self.release()

    def release(self) -> list[tuple[R, Payload]]:
        """Whatever is ready to go now (e.g. messages ``hold`` queued). Send what it returns."""
        pending = self._pending
        durable = self._durable
        batch: list[PendingTx | PendingMsg[R]] = []
        while pending and pending[0].offset <= durable:
            batch.append(pending.popleft())
        if not batch:
            return []
        return self._deliver(batch)

    def abandon(self) -> list[PendingMsg[R]]:
        """Empty the outbox (the log failed for good): returns the messages it held, in order,
        for the host to answer otherwise; the updates it held are dropped."""
        items = [item for item in self._pending if isinstance(item, PendingMsg)]
        self._pending.clear()
        return items

    def _deliver(self, batch: list[PendingTx | PendingMsg[R]]) -> list[tuple[R, Payload]]:
        """Frames for a batch in order: per session, its transaction updates coalesced between its other messages."""
        out: list[tuple[R, Payload]] = []
        txs = [item for item in batch if isinstance(item, PendingTx)]
        personal: dict[R, list[PendingMsg[R]]] = {}
        for item in batch:
            if isinstance(item, PendingMsg) and not item.session.closed:
                personal.setdefault(item.session, []).append(item)
        frames: dict[tuple[Any, ...], bytes] = {}
        by_signature: dict[tuple[int, ...], bytes | None] = {}
        first = txs[0].offset if txs else None
        candidates: dict[R, None] = {}
        touched = {qid for tx in txs for qid in tx.deltas} if len(txs) > 1 else txs[0].deltas if txs else ()
        watchers_of = self._subscriptions.watchers
        for qid in touched:
            watchers = watchers_of(qid)
            if watchers:
                candidates.update(dict.fromkeys(watchers))
        # Sessions with replies (callers) last, as a hand-rolled server answers after its broadcast:
        # answered first, callers send their next requests while the others are still being written
        # to, and compete with them for the CPU; answered together, their next requests also arrive
        # together and share a batch.
        for session in personal:
            candidates.pop(session, None)
            candidates[session] = None
        for session in candidates:
            if session.closed:
                continue
            mine = personal.get(session)
            if not mine and (first is None or not session.subs):
                continue
            if (mine is None or not any(item.ordered for item in mine)) and _steady(session, first):
                # The common case: the same subscriptions as many others and nothing in this batch
                # that must go out between its updates (a caller's result follows them), so the
                # frame is built once per signature and the bytes are shared.
                signature = session.signature
                assert signature is not None
                if signature in by_signature:
                    frame = by_signature[signature]
                else:
                    frame = by_signature[signature] = _frame_for(session, txs, frames)
                if frame is not None:
                    out.append((session, frame))
                if mine:
                    for item in mine:
                        if item.counts_in_flight:
                            session.in_flight -= 1
                        out.append((session, item.frame))
                continue
            self._interleave(session, batch, mine or [], frames, out)
            self._prune(session)
        return out

    @staticmethod
    def _interleave(session: R, batch: list[PendingTx | PendingMsg[R]], mine: list[PendingMsg[R]],
                    frames: dict[tuple[Any, ...], bytes], out: list[tuple[R, Payload]]) -> None:
        """A session's frames of ``batch`` when its subscriptions change within it, or an ordered
        message must go out between its updates: runs of updates coalesced between its messages."""
        run: list[PendingTx] = []
        replies: list[PendingMsg[R]] = []
        queue = collections.deque(mine)

        def flush() -> None:
            if run:
                frame = _frame_for(session, run, frames)
                if frame is not None:
                    out.append((session, frame))
                run.clear()
            for reply in replies:
                out.append((session, reply.frame))
            replies.clear()

        for item in batch:
            if isinstance(item, PendingTx):
                run.append(item)
            elif queue and item is queue[0]:
                queue.popleft()
                if item.counts_in_flight:
                    session.in_flight -= 1
                if item.ordered:
                    flush()
                    out.append((session, item.frame))
                else:
                    replies.append(item)
        flush()

    def _prune(self, session: R) -> None:
        """Forget the session's unsubscribed queries whose last update went out."""
        for rid, s in list(session.subs.items()):
            if s.until is not None and s.until <= self._durable:
                del session.subs[rid]
                self._subscriptions.unwatch(session, s.qids)
                session.signature = None


def _steady(session: Recipient, first: int | None) -> bool:
    """Whether every subscription of ``session`` sees all of a batch whose first commit is
    ``first`` (then its ``signature`` is set): its frame may be shared with its equals."""
    if session.signature is None:
        if any(s.until is not None or (first is not None and s.since >= first) for s in session.subs.values()):
            return False
        session.signature = tuple(sorted(q for s in session.subs.values() for q in s.qids))
    return True


def _frame_for(session: Recipient, txs: list[PendingTx], cache: dict[tuple[Any, ...], bytes]) -> bytes | None:
    """One ``tx`` frame of the updates ``session`` should see from ``txs`` (None if none)."""
    parts: list[tuple[int, tuple[int, ...]]] = []
    for tx in txs:
        qids: list[int] = []
        for s in session.subs.values():
            if s.since < tx.offset and (s.until is None or tx.offset <= s.until):
                qids.extend(q for q in s.qids if q in tx.deltas)
        if qids:
            parts.append((tx.offset, tuple(qids)))
    if not parts:
        return None
    key = tuple(parts)
    frame = cache.get(key)
    if frame is None:
        by_offset = {tx.offset: tx for tx in txs}
        frame = cache[key] = encode_transaction_update(
            [(by_offset[off].header, [by_offset[off].deltas[q] for q in qids]) for off, qids in parts]
        )
    return frame
