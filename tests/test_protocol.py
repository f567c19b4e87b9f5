"""The wire messages: decoding what clients send, and the server's pre-assembled frames."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from db_core.protocol import (CallReducer, ProtocolError, QueryRows, TransactionUpdate, TxUpdate, decode_client,
                              decode_server, encode, encode_result, encode_transaction_update, wire_tx)

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
        encode_result(object(), "committed", None, 0, 0)  # type: ignore[arg-type]
    assert encode_result(1, "committed", None, 1, 7) == msgpack.packb(
        {"t": "result", "id": 1, "status": "committed", "error": None, "offset": 1, "timestamp": 7}, use_bin_type=True)


def test_an_assembled_tx_frame_equals_the_encoded_message() -> None:
    caller = bytes(range(32))
    txs = [TxUpdate(5, 1_700_000_000_000_000, "send_message", caller,
                    [QueryRows(1, "message", [[caller, 17, "hi"]], []), QueryRows(2, "message", [[caller, 17, "hi"]], [])]),
           TxUpdate(6, 1_700_000_000_000_001, None, caller, [QueryRows(3, "user", [], [[caller, None, True]])])]
    assembled = encode_transaction_update(
        [(wire_tx(t.offset, t.timestamp, t.reducer, t.caller), [[q.query_id, q.table, q.inserts, q.deletes]
                                                                for q in t.updates]) for t in txs])
    assert assembled == encode(TransactionUpdate(txs))
    assert decode_server(assembled) == TransactionUpdate(txs)
