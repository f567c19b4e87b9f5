"""The wire messages: decoding what clients send, and the server's pre-assembled frames."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from db_core.protocol import (CLIENT_MESSAGES, SERVER_MESSAGES, CallReducer, DeleteDatabase, Done, ErrorMessage,
                              IdentityToken, LogLines, Logs, OneOffQuery, OneOffResult, ProtocolError, Publish,
                              QueryRows, ReducerResult, ReducerStatus, SqlResultFrame, Subscribe, SubscribeApplied,
                              SubscriptionError, TransactionUpdate, TxUpdate, Unsubscribe, UnsubscribeApplied,
                              decode_client, decode_server, encode, encode_query_rows_packed, encode_result,
                              encode_transaction_update, pack_items, wire_tx)

# Mostly well-formed values, so that every way of getting one field wrong is tried next to valid ones.
ids = st.one_of(st.integers(min_value=-3, max_value=3), st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1),
                st.sampled_from([(1 << 64) - 1, 1 << 63, True, False, None, "7"]))
names = st.one_of(st.text(max_size=8), st.sampled_from([0, None, b"send_message"]))
arg_lists = st.one_of(st.lists(st.one_of(st.booleans(), st.text(max_size=5)), max_size=3),
                      st.sampled_from(["hi", 1, None, {"a": 1}]))
missing_fields = st.one_of(st.just(set()), st.sets(st.sampled_from(["id", "reducer", "args"]), min_size=1))


@given(ids, names, arg_lists, missing_fields)
def test_a_call_decodes_only_when_every_field_is_well_typed(rid, reducer, args, missing) -> None:
    m = {"t": "call", "id": rid, "reducer": reducer, "args": args}
    for key in missing:
        del m[key]
    valid = (not missing and type(rid) is int and 0 <= rid < 1 << 64 and isinstance(reducer, str)
             and isinstance(args, list))
    frame = msgpack.packb(m, use_bin_type=True)
    if valid:
        assert decode_client(frame) == CallReducer(rid, reducer, args)
    else:
        with pytest.raises(ProtocolError, match="field `(id|reducer|args)`|request ids"):
            decode_client(frame)


def test_a_failed_pack_leaves_nothing_behind() -> None:
    """``encode`` reuses one msgpack Packer per thread: an object it cannot pack must not leave bytes in it."""
    with pytest.raises(TypeError):
        encode_result(object(), "committed", None, 0, 0)
    assert encode_result(1, "committed", None, 1, 7) == msgpack.packb(
        {"t": "result", "id": 1, "status": "committed", "error": None, "offset": 1, "timestamp": 7}, use_bin_type=True)


def test_an_assembled_tx_frame_equals_the_encoded_message() -> None:
    caller = bytes(range(32))
    txs = [TxUpdate(5, 1_700_000_000_000_000, "send_message", caller,
                    [QueryRows(1, "message", [[caller, 17, "hi"]], []),
                     QueryRows(2, "message", [[caller, 17, "hi"]], [])]),
           TxUpdate(6, 1_700_000_000_000_001, None, caller, [QueryRows(3, "user", [], [[caller, None, True]])])]
    assembled = encode_transaction_update(
        [(wire_tx(t.offset, t.timestamp, t.reducer, t.caller), [[q.query_id, q.table, q.inserts, q.deletes]
                                                                for q in t.updates]) for t in txs])
    assert assembled == encode(TransactionUpdate(txs))
    assert decode_server(assembled) == TransactionUpdate(txs)


# -- every message type round-trips, and the hot paths build the same bytes -----------------------
u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
i64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
texts = st.text(max_size=12)
scalars = st.one_of(st.none(), st.booleans(), i64, st.floats(allow_nan=False), texts, st.binary(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
wire_row = st.lists(values, max_size=4)
query_rows = st.builds(QueryRows, u64, texts, st.lists(wire_row, max_size=3), st.lists(wire_row, max_size=3))
schema = st.dictionaries(texts, values, max_size=3)
retry = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6))
optional_text = st.one_of(st.none(), texts)

MESSAGES: dict[type, st.SearchStrategy[Any]] = {
    CallReducer: st.builds(CallReducer, u64, texts, st.lists(values, max_size=3)),
    Subscribe: st.builds(Subscribe, u64, st.lists(texts, min_size=1, max_size=3)),
    Unsubscribe: st.builds(Unsubscribe, u64, i64),
    OneOffQuery: st.builds(OneOffQuery, u64, texts),
    Logs: st.builds(Logs, u64, st.one_of(st.none(), u64),
                    st.one_of(st.none(), st.sampled_from(["trace", "DEBUG", "Info", "warn", "error"])), st.booleans()),
    Publish: st.builds(Publish, u64, texts, texts, st.booleans()),
    DeleteDatabase: st.builds(DeleteDatabase, u64),
    IdentityToken: st.builds(IdentityToken, st.binary(min_size=32, max_size=32), texts,
                             st.binary(min_size=16, max_size=16), texts, schema),
    SubscribeApplied: st.builds(SubscribeApplied, u64, st.lists(query_rows, max_size=3)),
    UnsubscribeApplied: st.builds(UnsubscribeApplied, u64, u64, st.lists(query_rows, max_size=3)),
    SubscriptionError: st.builds(SubscriptionError, u64, texts),
    TransactionUpdate: st.builds(TransactionUpdate, st.lists(st.builds(
        TxUpdate, u64, i64, optional_text, st.binary(min_size=32, max_size=32), st.lists(query_rows, max_size=3)),
        max_size=3)),
    ReducerResult: st.builds(ReducerResult, u64, st.sampled_from(get_args(ReducerStatus)), optional_text, i64, i64,
                             retry),
    OneOffResult: st.builds(OneOffResult, u64, st.lists(texts, max_size=3), st.lists(values, max_size=3),
                            st.lists(wire_row, max_size=3), optional_text, st.one_of(st.none(), u64)),
    ErrorMessage: st.builds(ErrorMessage, st.one_of(st.none(), u64), texts, retry),
    LogLines: st.builds(LogLines, u64, st.lists(texts, max_size=3)),
    Done: st.builds(Done, u64, st.lists(texts, max_size=3)),
}


def test_the_tables_hold_every_message_and_each_tag_once() -> None:
    assert set(MESSAGES) == set(CLIENT_MESSAGES.values()) | set(SERVER_MESSAGES.values())
    assert list(CLIENT_MESSAGES) == ["call", "subscribe", "unsubscribe", "sql", "logs", "publish", "delete"]
    assert {tag: cls.TAG for tag, cls in {**CLIENT_MESSAGES, **SERVER_MESSAGES}.items()} == \
        {tag: tag for tag in {**CLIENT_MESSAGES, **SERVER_MESSAGES}}
    assert not set(CLIENT_MESSAGES) & set(SERVER_MESSAGES)


@given(st.one_of(*MESSAGES.values()))
def test_every_message_round_trips(msg: Any) -> None:
    frame = encode(msg)
    m = msgpack.unpackb(frame, raw=False)
    assert list(m)[0] == "t" and m["t"] == type(msg).TAG
    decode = decode_client if type(msg) in CLIENT_MESSAGES.values() else decode_server
    again = decode(frame)
    assert type(again) is type(msg) and again == msg
    assert encode(again) == frame


@given(u64, st.sampled_from(get_args(ReducerStatus)), optional_text, i64, i64)
def test_encode_result_equals_the_encoded_message(rid: int, status: Any, error: str | None, offset: int,
                                                  timestamp: int) -> None:
    assert encode_result(rid, status, error, offset, timestamp) == encode(
        ReducerResult(rid, status, error, offset, timestamp))


@given(u64, st.lists(texts, max_size=3), st.lists(values, max_size=3), st.lists(st.lists(wire_row, max_size=3),
                                                                                 max_size=3))
def test_an_sql_result_built_in_chunks_equals_the_encoded_message(rid: int, columns: list[str], types: list[Any],
                                                                  chunks: list[list[list[Any]]]) -> None:
    frame = SqlResultFrame(rid, columns, types)
    for chunk in chunks:
        frame.add(pack_items(chunk), len(chunk))
    rows = [row for chunk in chunks for row in chunk]
    built = bytes(frame.finish())
    assert decode_server(built) == OneOffResult(rid, columns, types, rows, None)
    # The rows' array always has a 32-bit length; msgpack picks the shortest, so compare the maps.
    assert msgpack.unpackb(built, raw=False) == msgpack.unpackb(encode(OneOffResult(rid, columns, types, rows, None)),
                                                               raw=False)


@given(u64, u64, st.lists(st.tuples(u64, texts, st.lists(wire_row, max_size=3)), max_size=3))
def test_packed_subscription_rows_equal_the_encoded_messages(rid: int, sub: int,
                                                             queries: list[tuple[int, str, list[Any]]]) -> None:
    packed = [(qid, table, len(rows), pack_items(rows)) for qid, table, rows in queries]
    assert encode_query_rows_packed("subscribed", rid, None, packed) == encode(
        SubscribeApplied(rid, [QueryRows(qid, table, rows, []) for qid, table, rows in queries]))
    assert encode_query_rows_packed("unsubscribed", rid, sub, packed) == encode(
        UnsubscribeApplied(rid, sub, [QueryRows(qid, table, [], rows) for qid, table, rows in queries]))


def test_the_examples_of_docs_protocol_md_are_what_encode_writes() -> None:
    """Section 12's hex dumps: each decodes, and encodes again to the very same bytes."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    section = doc[doc.index("## 12. Annotated example exchange"):]
    found = []
    for heading, body in re.findall(r"^### 12\.\d+ (.*?)\n(.*?)(?=^### |\Z)", section, re.M | re.S):
        for _, block in re.findall(r"^```(\w*)\n(.*?)^```$", body, re.M | re.S):
            lines = block.split()
            if lines and all(re.fullmatch(r"[0-9a-f]+", line) for line in lines):
                frame = bytes.fromhex("".join(lines))
                decode = decode_server if heading.startswith("Server to client") else decode_client
                msg = decode(frame)
                assert encode(msg) == frame, heading
                assert f"({len(frame)} bytes)" in heading
                found.append(type(msg))
    assert found == [IdentityToken, Subscribe, SubscribeApplied, CallReducer, TransactionUpdate, ReducerResult]
