"""Frame splits: the server's websocket fast path decodes every byte stream exactly as websockets does.

The fast path (``chat_server/frames.py``) takes whole binary frames without websockets' parser. It
once decided "at a frame boundary" from websockets' buffer being empty, which is also true when a
frame header has been read and its payload not yet: a payload whose masked bytes start like a frame
header (about 1 mask in 512) was then parsed as a frame, and a frame hidden in it executed.

The property tests drive the real ``FastConnection.data_received`` (a transport that records what
is written stands for the socket) with streams of client frames cut at arbitrary points, and compare
with websockets' own sans-I/O ``ServerProtocol`` fed the same frames: the same messages (bytes or
str, in order), the same frames written back (pongs, close frames with their codes), the same end.
The end-to-end tests do the same attacks against a real server over TCP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import (
    BINARY,
    CLOSE,
    CONT,
    DATA_OPCODES,
    PING,
    PONG,
    TEXT,
    Close,
    CloseCode,
    Frame,
)
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from websockets.utils import apply_mask

from chat_server.frames import FastConnection
from chat_server.server import ChatServer
from db_core.protocol import (
    SUBPROTOCOL,
    CallReducer,
    OneOffQuery,
    OneOffResult,
    ReducerResult,
    decode_server,
    encode,
)


MAX = 70_000  # the size limit of these connections: 65,536-byte frames fit, a 64-bit length does not
FILL = bytes(range(256)) * 300  # payload bytes after the interesting first ones: 76,800, more than MAX


def client_frame(opcode: int, payload: bytes, mask: bytes | None, *, fin: bool = True, rsv: int = 0,
                 length_bytes: int | None = None, announced: int | None = None) -> bytes:
    """A client frame as it goes on the wire (RFC 6455 5.2), every field chosen by the test.

    ``announced`` claims another payload length than ``len(payload)`` (an oversized frame).
    """
    n = len(payload) if announced is None else announced
    if length_bytes is None:
        length_bytes = 0 if n < 126 else 2 if n < 65536 else 8
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    second = 0x80 if mask is not None else 0
    if length_bytes == 0:
        head = bytes([first, second | n])
    else:
        head = bytes([first, second | (126 if length_bytes == 2 else 127)]) + n.to_bytes(length_bytes, "big")
    return head + payload if mask is None else head + mask + apply_mask(payload, mask)


# -- running a stream through FastConnection and through websockets ------------------------------
class RecordingTransport(asyncio.Transport):
    """The edge of the machine: keeps what the connection writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.eof = False
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.eof, "write after EOF"
        self.written += data

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class NoServer:
    """What a ServerConnection asks of its server; the handler runs nothing (the test drives it)."""

    def __init__(self) -> None:
        self.handler_tasks: set[asyncio.Task[None]] = set()

    async def handler(self, connection: FastConnection) -> None:
        pass

    def is_serving(self) -> bool:
        return True


def handshake_request() -> bytes:
    client = ClientProtocol(parse_uri("ws://127.0.0.1/v1/database/quickstart-chat/subscribe"))
    request: Request = client.connect()
    return request.serialize()


REQUEST = handshake_request()


@dataclasses.dataclass
class Outcome:
    messages: list[bytes | str]
    written: bytes  # pongs and close frames, as the server serializes them (unmasked: deterministic)
    eof_sent: bool
    close_rcvd: Close | None
    close_sent: Close | None
    state: State


async def through_fast_connection(chunks: list[bytes], *, deliver_at: int = 0, eof: bool = False,
                                  pipelined: bool = False, server_closing: bool = False) -> Outcome:
    """Feed ``chunks`` (frames; with ``pipelined``, the HTTP request and frames) to a FastConnection.

    ``deliver_directly`` is called before chunk ``deliver_at`` (frames before it are held). With
    ``server_closing`` the server has sent its close frame first and waits for the client's.
    """
    transport = RecordingTransport()
    conn = FastConnection(ServerProtocol(max_size=MAX), NoServer())
    conn.connection_made(transport)
    messages: list[bytes | str] = []
    if not pipelined:
        conn.data_received(REQUEST)
        await conn.handshake()
        assert conn.protocol.state is State.OPEN
        del transport.written[:]
        if server_closing:
            conn.protocol.send_close(CloseCode.GOING_AWAY, "bye")
            conn.send_data()
    for i, chunk in enumerate(chunks):
        if i == deliver_at and not pipelined:
            conn.deliver_directly(messages.append)
        conn.data_received(chunk)
    if pipelined:
        await conn.handshake()
        del transport.written[:]
    if deliver_at >= len(chunks) or pipelined:
        conn.deliver_directly(messages.append)
    if eof:
        conn.eof_received()
        conn.connection_lost(None)
    p = conn.protocol
    return Outcome(messages, bytes(transport.written), transport.eof, p.close_rcvd, p.close_sent, p.state)


def through_websockets(pieces: list[bytes], *, eof: bool = False, server_closing: bool = False) -> Outcome:
    """websockets' sans-I/O ServerProtocol, fed one frame at a time, with its ``recv``'s rules on top:
    fragments joined, a text message decoded, one that is not UTF-8 failing the connection (1007)
    unless the server is closing it already."""
    protocol = ServerProtocol(max_size=MAX, state=State.OPEN)
    if server_closing:
        protocol.send_close(CloseCode.GOING_AWAY, "bye")
    messages: list[bytes | str] = []
    written = bytearray(b"".join(protocol.data_to_send()))
    fragments: list[Frame] = []
    failed = False
    for piece in pieces:
        protocol.receive_data(piece)
        for frame in protocol.events_received():
            assert isinstance(frame, Frame)
            if frame.opcode not in DATA_OPCODES or failed:
                continue
            fragments.append(frame)
            if not frame.fin:
                continue
            data = b"".join(f.data for f in fragments)
            text, fragments = fragments[0].opcode is TEXT, []
            if not text:
                messages.append(data)
                continue
            try:
                messages.append(data.decode())
            except UnicodeDecodeError as exc:
                failed = True
                if protocol.state is State.OPEN:
                    protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
        written += b"".join(protocol.data_to_send())
    if eof:
        protocol.receive_eof()
        written += b"".join(protocol.data_to_send())
    return Outcome(messages, bytes(written), protocol.eof_sent, protocol.close_rcvd, protocol.close_sent,
                   protocol.state)


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted({p for p in points if 0 < p < len(stream)}), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


def pieces_of(frames: list[bytes], length: int) -> list[bytes]:
    """The frames as websockets is fed them, the stream cut at ``length`` (where it ended)."""
    out, pos = [], 0
    for f in frames:
        if pos >= length:
            break
        out.append(f[:length - pos])
        pos += len(f)
    return out


# -- strategies: client frames ----------------------------------------------------------------
SIZES = st.one_of(st.integers(0, 140), st.sampled_from([0, 1, 2, 125, 126, 127, 65535, 65536, 65537]))


@st.composite
def nested_frames(draw: st.DrawFn) -> bytes:
    """Whole encoded frames to hide in a payload: a call, a ping, a close."""
    mask = draw(st.binary(min_size=4, max_size=4))
    call = encode(CallReducer(7, "send_message", ["from inside a payload"]))
    return draw(st.sampled_from([
        client_frame(BINARY, call, mask), client_frame(PING, b"in", mask),
        client_frame(CLOSE, Close(1000, "in").serialize(), mask), client_frame(BINARY, b"", mask)]))


@st.composite
def binary_payloads(draw: st.DrawFn, sizes: st.SearchStrategy[int] = SIZES) -> bytes:
    n = draw(sizes)
    lead = draw(st.one_of(st.binary(max_size=24), nested_frames()))
    lead *= draw(st.sampled_from([1, 1, 3]))
    at = draw(st.integers(0, 8))
    return (FILL[:at] + lead + FILL)[:n]


@st.composite
def text_payloads(draw: st.DrawFn, sizes: st.SearchStrategy[int] = SIZES) -> bytes:
    n = draw(sizes)
    lead = draw(st.text(max_size=12)).encode()
    return lead + b"x" * (n - len(lead)) if len(lead) <= n else b"y" * n


@st.composite
def masks(draw: st.DrawFn, payload: bytes) -> bytes:
    if len(payload) >= 2 and draw(st.booleans()):
        # The masked payload starts like a masked binary frame header with a short length: the
        # old fast path read such a payload, arriving after its header, as a frame.
        fake_length = draw(st.one_of(st.integers(0, 8), st.integers(0, 0x7F)))
        return bytes([payload[0] ^ 0x82, payload[1] ^ (0x80 | fake_length)]) + draw(st.binary(min_size=2, max_size=2))
    return draw(st.binary(min_size=4, max_size=4))


@st.composite
def frames_of(draw: st.DrawFn, opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    n = len(payload)
    widths = [w for w in (0, 2, 8) if (w != 0 or n < 126) and (w != 2 or n < 65536)]
    width = draw(st.sampled_from([None, None, None, *widths]))  # non-minimal lengths are valid too
    return client_frame(opcode, payload, draw(masks(payload)), fin=fin, length_bytes=width)


@st.composite
def control_frames(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from([PING, PONG]))
    return draw(frames_of(opcode, draw(binary_payloads(st.one_of(st.integers(0, 20), st.just(125))))))


@st.composite
def messages(draw: st.DrawFn) -> list[bytes]:
    """The frames of one valid message (or one control frame)."""
    kind = draw(st.sampled_from(["binary", "binary", "binary", "text", "fragmented", "control"]))
    if kind == "binary":
        return [draw(frames_of(BINARY, draw(binary_payloads())))]
    if kind == "text":
        return [draw(frames_of(TEXT, draw(text_payloads())))]
    if kind == "control":
        return [draw(control_frames())]
    text = draw(st.booleans())
    whole = draw(text_payloads(st.integers(0, 300))) if text else draw(binary_payloads(st.integers(0, 300)))
    # Cut anywhere, also inside a UTF-8 sequence: only the whole message must be UTF-8.
    edges = sorted(draw(st.lists(st.integers(0, len(whole)), min_size=1, max_size=4)))
    parts = [whole[a:b] for a, b in itertools.pairwise([0, *edges, len(whole)])]
    out = []
    for i, part in enumerate(parts):
        opcode = (TEXT if text else BINARY) if i == 0 else CONT
        out.append(draw(frames_of(opcode, part, fin=i == len(parts) - 1)))
        if i < len(parts) - 1 and draw(st.booleans()):
            out.append(draw(control_frames()))  # control frames may come between fragments
    return out


@st.composite
def closings(draw: st.DrawFn) -> bytes:
    code = draw(st.sampled_from([1000, 1001, 3000, 4999]))
    payload = Close(code, draw(st.text(max_size=20))).serialize()[:125]
    try:
        payload.decode()  # cutting at 125 bytes may split a character of the reason
    except UnicodeDecodeError:
        payload = Close(code, "").serialize()
    return draw(frames_of(CLOSE, payload))


# What websockets refuses (or its recv: a text message that is not UTF-8), built from any payload
# and mask, and the close code it answers with.
Refusal = Callable[[bytes, bytes], list[bytes]]
REFUSALS: dict[str, tuple[int, Refusal]] = {
    "unmasked": (1002, lambda p, m: [client_frame(BINARY, p, None)]),
    "RSV bits (no extension)": (1002, lambda p, m: [client_frame(BINARY, p, m, rsv=1 + len(p) % 7)]),
    "unknown opcode": (1002, lambda p, m: [client_frame([3, 4, 5, 6, 7, 0xB, 0xF][len(p) % 7], p, m)]),
    "length beyond max_size": (1009, lambda p, m: [client_frame(BINARY, p[:20], m, announced=MAX + 1 + len(p))]),
    "64-bit length, top bit set": (1009, lambda p, m: [client_frame(BINARY, p[:20], m, announced=(1 << 63) + len(p))]),
    "text not UTF-8": (1007, lambda p, m: [client_frame(TEXT, b"fine \xc3(", m)]),
    "text not UTF-8 once joined": (1007, lambda p, m: [
        client_frame(TEXT, b"fine \xe2", m, fin=False), client_frame(CONT, b"\x82", m)]),
    "control frame over 125 bytes": (1002, lambda p, m: [client_frame(PING, (p + FILL)[:126 + len(p)], m)]),
    "fragmented control frame": (1002, lambda p, m: [client_frame(PING, p[:125], m, fin=False)]),
    "continuation without a start": (1002, lambda p, m: [client_frame(CONT, p, m)]),
    "new message inside a fragmented one": (1002, lambda p, m: [
        client_frame(BINARY, p, m, fin=False), client_frame(BINARY, p, m)]),
    "fragments beyond max_size together": (1009, lambda p, m: [
        client_frame(BINARY, FILL[:MAX - 10], m, fin=False), client_frame(CONT, (p + FILL)[:11 + len(p)], m)]),
    "close frame of one byte": (1002, lambda p, m: [client_frame(CLOSE, b"\x03", m)]),
    "close reason not UTF-8": (1007, lambda p, m: [client_frame(CLOSE, b"\x03\xe8\xff", m)]),
}


@st.composite
def refused(draw: st.DrawFn) -> list[bytes]:
    _, frames = REFUSALS[draw(st.sampled_from(sorted(REFUSALS)))]
    return frames(draw(binary_payloads(st.integers(0, 130))), draw(st.binary(min_size=4, max_size=4)))


@st.composite
def streams(draw: st.DrawFn, *, invalid: bool) -> list[bytes]:
    frames = [f for m in draw(st.lists(messages(), max_size=6)) for f in m]
    if invalid:
        at = draw(st.integers(0, len(frames)))
        frames[at:at] = draw(refused())
    if draw(st.integers(0, 4)) == 0:
        frames.append(draw(closings()))
        frames += [f for m in draw(st.lists(messages(), max_size=2)) for f in m]  # ignored after a close
    return frames


@st.composite
def cut_points(draw: st.DrawFn, frames: list[bytes]) -> list[int]:
    """Anywhere, and often just around a frame boundary (inside a header, or right after one)."""
    bounds, pos = [0], 0
    for f in frames:
        pos += len(f)
        bounds.append(pos)
    points = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            points.append(draw(st.integers(0, pos)))
        else:
            points.append(draw(st.sampled_from(bounds)) + draw(st.integers(-3, 15)))
    return points


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.data_too_large])


# -- the property tests ---------------------------------------------------------------------------
@SETTINGS
@given(st.data())
def test_valid_streams_cut_anywhere_decode_as_websockets_does(data: st.DataObject) -> None:
    frames = data.draw(streams(invalid=False))
    stream = b"".join(frames)
    chunks = cut(stream, data.draw(cut_points(frames)))
    deliver_at = data.draw(st.integers(0, len(chunks)))
    eof, closing = data.draw(st.booleans()), data.draw(st.booleans())
    got = asyncio.run(through_fast_connection(chunks, deliver_at=deliver_at, eof=eof, server_closing=closing))
    assert got == through_websockets(frames, eof=eof, server_closing=closing)


@SETTINGS
@given(st.data())
def test_invalid_streams_fail_as_websockets_does(data: st.DataObject) -> None:
    frames = data.draw(streams(invalid=True))
    stream = b"".join(frames)
    chunks = cut(stream, data.draw(cut_points(frames)))
    closing = data.draw(st.booleans())
    got = asyncio.run(through_fast_connection(chunks, eof=True, server_closing=closing))
    expected = through_websockets(frames, eof=True, server_closing=closing)
    assert got == expected
    assert expected.close_sent is not None or expected.close_rcvd is not None  # the stream was refused


@settings(SETTINGS, max_examples=60)
@given(st.data())
def test_a_stream_that_ends_mid_frame_ends_as_websockets_does(data: st.DataObject) -> None:
    frames = data.draw(streams(invalid=data.draw(st.booleans())))
    stream = b"".join(frames)
    length = data.draw(st.integers(0, len(stream)))
    chunks = cut(stream[:length], data.draw(cut_points(frames)))
    got = asyncio.run(through_fast_connection(chunks, eof=True))
    assert got == through_websockets(pieces_of(frames, length), eof=True)


@settings(SETTINGS, max_examples=40)
@given(st.data())
def test_frames_sent_with_the_request_are_held_then_delivered(data: st.DataObject) -> None:
    # A client must wait for the handshake response before sending frames (RFC 6455 4.1); one that
    # does not still gets every frame read from its first byte, wherever TCP cut the stream.
    frames = [f for m in data.draw(st.lists(messages(), max_size=5)) for f in m]
    stream = REQUEST + b"".join(frames)
    points = data.draw(cut_points([REQUEST, *frames]))
    got = asyncio.run(through_fast_connection(cut(stream, points), pipelined=True))
    assert got.messages == through_websockets(frames).messages


# Small streams, every split point and every byte on its own.
EVIL = encode(CallReducer(1, "send_message", ["hi"]))
SMALL_STREAMS = {
    "a binary frame whose masked payload starts like a frame header": [
        client_frame(BINARY, EVIL, bytes([EVIL[0] ^ 0x82, EVIL[1] ^ 0x80, 1, 2]))],
    "a payload made of whole frames": [
        client_frame(BINARY, client_frame(BINARY, EVIL, b"\0\0\0\0") * 2, b"\x82\x80\x82\x80")],
    "fragments with a ping between them, then text": [
        client_frame(TEXT, "é".encode()[:1], b"abcd", fin=False), client_frame(PING, b"p", b"\x82\x81\0\0"),
        client_frame(CONT, "é".encode()[1:] + b"!", b"wxyz"), client_frame(BINARY, b"\x82\x80", b"\0\0\0\0")],
    "a close frame, then a binary frame that must not be read": [
        client_frame(BINARY, b"before", b"1234"), client_frame(CLOSE, Close(1000, "bye").serialize(), b"5678"),
        client_frame(BINARY, b"after", b"90ab")],
    "invalid UTF-8 after a binary frame": [
        client_frame(BINARY, b"\x82\xfe\x01\x00", b"\0\0\0\0"), client_frame(TEXT, b"\xc3(", b"mask"),
        client_frame(BINARY, b"never", b"\0\0\0\0")],
    "an unmasked frame after a masked one": [
        client_frame(BINARY, b"ok", b"\x82\x80\0\0"), client_frame(BINARY, b"no mask", None)],
    "a 16-bit length for a short payload, then a frame with RSV1": [
        client_frame(BINARY, b"short", b"\x82\x85\x82\x85", length_bytes=2),
        client_frame(BINARY, b"x", b"mmmm", rsv=4)],
}

SPLIT_TWICE = list(SMALL_STREAMS)[:1]  # also at every pair of points


def refused_streams() -> dict[str, tuple[int, list[bytes]]]:
    """Each refusal between a binary frame that is delivered and one that must not be."""
    first = client_frame(BINARY, EVIL, bytes([EVIL[0] ^ 0x82, EVIL[1] ^ 0x80, 1, 2]))
    never = client_frame(BINARY, b"never", b"\x82\x80\0\0")
    return {name: (code, [first, *frames(b"payload", b"\x82\x80\x82\x80"), never])
            for name, (code, frames) in REFUSALS.items()}


def split_points(frames: list[bytes]) -> list[int]:
    """Every point of a short stream; of a long one, every point within 20 bytes of a frame boundary."""
    length = sum(map(len, frames))
    if length <= 400:
        return list(range(length + 1))
    points: set[int] = set()
    pos = 0
    for f in [b"", *frames]:
        pos += len(f)
        points.update(range(max(0, pos - 20), min(length, pos + 20) + 1))
    return sorted(points)


async def check_every_split(name: str, frames: list[bytes]) -> Outcome:
    stream = b"".join(frames)
    expected = through_websockets(frames, eof=True)
    assert expected.messages, name  # each stream delivers something before anything goes wrong
    for split in split_points(frames):
        got = await through_fast_connection(cut(stream, [split]), eof=True)
        assert got == expected, (name, split)
    if name in SPLIT_TWICE:
        for first in range(1, len(stream)):
            for second in range(first + 1, len(stream)):
                got = await through_fast_connection(cut(stream, [first, second]), eof=True)
                assert got == expected, (name, first, second)
    if len(stream) <= 400:
        every_byte = [stream[i:i + 1] for i in range(len(stream))]
        assert await through_fast_connection(every_byte, eof=True) == expected, name
        for deliver_at in range(len(every_byte) + 1):
            held = await through_fast_connection(every_byte, deliver_at=deliver_at, eof=True)
            assert held.messages == expected.messages, (name, deliver_at)
    return expected


async def test_every_split_point_of_small_streams() -> None:
    for name, frames in SMALL_STREAMS.items():
        await check_every_split(name, frames)


async def test_every_split_point_of_each_refusal() -> None:
    for name, (code, frames) in refused_streams().items():
        expected = await check_every_split(name, frames)
        assert expected.messages == [EVIL], name
        assert expected.close_sent is not None and expected.close_sent.code == code, (name, expected.close_sent)


def test_the_small_streams_say_what_they_claim() -> None:
    # The reference itself, on the cases above: what websockets does with them.
    outcomes = {name: through_websockets(frames, eof=True) for name, frames in SMALL_STREAMS.items()}
    first = outcomes["a binary frame whose masked payload starts like a frame header"]
    assert first.messages == [EVIL]
    assert outcomes["a payload made of whole frames"].messages == [client_frame(BINARY, EVIL, b"\0\0\0\0") * 2]
    assert outcomes["fragments with a ping between them, then text"].messages == ["é!", b"\x82\x80"]
    assert outcomes["a close frame, then a binary frame that must not be read"].messages == [b"before"]
    utf8 = outcomes["invalid UTF-8 after a binary frame"]
    assert utf8.messages == [b"\x82\xfe\x01\x00"] and utf8.close_sent is not None
    assert utf8.close_sent.code == CloseCode.INVALID_DATA
    unmasked = outcomes["an unmasked frame after a masked one"]
    assert unmasked.close_sent is not None and unmasked.close_sent.code == CloseCode.PROTOCOL_ERROR
    rsv = outcomes["a 16-bit length for a short payload, then a frame with RSV1"]
    assert rsv.messages == [b"short"] and rsv.close_sent is not None
    assert rsv.close_sent.code == CloseCode.PROTOCOL_ERROR


async def test_deliver_to_recv_queues_every_message_for_recv() -> None:
    frames = [client_frame(BINARY, b"one", b"\x82\x80\0\0"), client_frame(TEXT, b"two", b"abcd", fin=False),
              client_frame(CONT, b"!", b"efgh"), client_frame(BINARY, FILL[:70_000], b"ijkl")]
    stream = b"".join(frames)

    conn = FastConnection(ServerProtocol(max_size=MAX), NoServer())
    conn.connection_made(RecordingTransport())
    conn.data_received(REQUEST)
    await conn.handshake()
    conn.data_received(stream[:1])  # the start of a header: kept by the fast path
    conn.deliver_to_recv()
    for i in range(1, len(stream), 1000):
        conn.data_received(stream[i:i + 1000])
    received = [await asyncio.wait_for(conn.recv(), 5) for _ in range(3)]
    assert received == [b"one", "two!", FILL[:70_000]]


# -- end to end: a real server, a raw TCP client -------------------------------------------------
class RawClient:
    """A websocket client over a bare TCP stream: frames written byte by byte as the test chooses,
    the server's frames read with websockets' own sans-I/O client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol) -> None:
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/v1/database/quickstart-chat/subscribe"),
                                  subprotocols=[SUBPROTOCOL])
        protocol.send_request(protocol.connect())
        client = cls(reader, writer, protocol)
        await client.write(b"".join(protocol.data_to_send()))
        while protocol.state is not State.OPEN:
            await client._read()
        return client

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _read(self) -> None:
        data = await self.reader.read(65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self.frames += [e for e in self.protocol.events_received() if isinstance(e, Frame)]

    async def next_frame(self) -> Frame:
        while not self.frames:
            if self.protocol.state is State.CLOSED:
                raise AssertionError("the connection closed")
            await asyncio.wait_for(self._read(), 10)
        return self.frames.pop(0)

    async def reply(self, request_id: int) -> object:
        """The next server message answering ``request_id`` (tx frames and the like are skipped)."""
        while True:
            frame = await self.next_frame()
            if frame.opcode is CLOSE:
                raise AssertionError(f"closed: {Close.parse(frame.data)}")
            msg = decode_server(bytes(frame.data))
            if getattr(msg, "id", None) == request_id:
                return msg


def frame_hiding_a_frame(outer_call: bytes, hidden: bytes) -> bytes:
    """A masked binary frame carrying ``outer_call`` (msgpack, a map) whose masked payload *starts with*
    the whole frame ``hidden``: read from its payload's first byte, the stream is ``hidden``, then junk.

    The payload is ``{"x": <bin>, ...outer_call's fields}`` (unknown fields are ignored): its first
    four bytes are fixed by the mask, the ones after by the bin field, which the test chooses.
    """
    fields = outer_call[1:]  # a fixmap: one byte of header
    assert 0x80 <= outer_call[0] < 0x8F
    bin_length = len(hidden) - 5
    # Masked payload byte 4 is the hidden frame's mask byte 2: choose that mask byte to suit.
    prefix = bytes([outer_call[0] + 1, 0xA1, ord("x"), 0xC4, bin_length])
    mask = bytes(a ^ b for a, b in zip(prefix[:4], hidden[:4], strict=True))
    assert hidden[4] == prefix[4] ^ mask[0], "the hidden frame's mask byte 2 must be chosen by the caller"
    body = bytes(hidden[k] ^ mask[k % 4] for k in range(5, len(hidden)))
    payload = prefix + body + fields
    wire = client_frame(BINARY, payload, mask)
    assert wire[6:6 + len(hidden)] == hidden
    return wire


async def test_split_header_and_payload_with_a_frame_hidden_in_the_payload(srv: ChatServer) -> None:
    outer = encode(CallReducer(1, "set_name", ["alice"]))
    hidden_call = encode(CallReducer(2, "send_message", ["the hidden frame ran"]))
    prefix4 = 0x85 ^ 0x82  # mask byte 0 that frame_hiding_a_frame will choose (outer map of 4 fields + "x")
    hidden_mask = bytes([0x11, 0x22, (len(client_frame(BINARY, hidden_call, b"0000")) - 5) ^ prefix4, 0x44])
    hidden = client_frame(BINARY, hidden_call, hidden_mask)
    wire = frame_hiding_a_frame(outer, hidden)
    assert msgpack.unpackb(apply_mask(wire[6:], wire[2:6]))["reducer"] == "set_name"

    client = await RawClient.connect(srv.port)
    await client.next_frame()  # identity
    await client.write(wire[:6])  # the header alone: the server reads it and waits
    await asyncio.sleep(0.1)
    await client.write(wire[6:])
    result = await client.reply(1)
    assert isinstance(result, ReducerResult) and result.status == "committed", result
    await client.write(client_frame(BINARY, encode(OneOffQuery(3, "SELECT * FROM message")), b"mask"))
    rows = await client.reply(3)
    assert isinstance(rows, OneOffResult) and rows.error is None and rows.rows == []
    await client.close()


@pytest.mark.parametrize(("frame", "code", "reason"), [
    (client_frame(TEXT, b"not UTF-8: \xc3(", b"\x82\x80\x01\x02"), 1007, "invalid continuation byte at position 11"),
    (client_frame(TEXT, b"not UTF-8: \xe2", b"abcd", fin=False) + client_frame(CONT, b"\x82", b"efgh"), 1007,
     "unexpected end of data at position 11"),
    (client_frame(BINARY, encode(CallReducer(1, "set_name", ["unmasked"])), None), 1002, "incorrect masking"),
    (client_frame(BINARY, b"", b"mask", announced=(1 << 20) + 1), 1009,
     "frame with 1048577 bytes exceeds limit of 1048576 bytes"),
], ids=["text not UTF-8", "fragmented text not UTF-8", "unmasked", "over the size limit"])
async def test_refused_frames_close_with_the_documented_code(srv: ChatServer, frame: bytes, code: int,
                                                             reason: str) -> None:
    # docs/protocol.md sections 2.4 and 11.4.
    client = await RawClient.connect(srv.port)
    await client.next_frame()  # identity
    await client.write(frame)
    answer = await client.next_frame()
    assert answer.opcode is CLOSE
    close = Close.parse(answer.data)
    assert (close.code, close.reason) == (code, reason)
    await client.close()
