"""The server's websocket fast path: whole binary frames reach the host without websockets' parser,
and outgoing frames are framed once for every client (``ws_header``).

websockets parses each frame with generator-based coroutines and hands it on through
``process_event``: about 10 us a frame, against 1-3 us here (8% of the server's CPU per call at
10 clients: docs/performance.md). ``FastConnection`` splits the incoming byte stream into frames
itself, from the first byte after the HTTP request, so it always knows where the next frame
starts, however TCP cut the stream. A whole, unfragmented, masked binary frame within the size
limit is unmasked here and handed to the host; every other frame is fed to websockets, exactly its
bytes, so websockets too is always at a frame boundary and answers it (pings, the closing
handshake, fragments, text); a header websockets must refuse hands it everything from there on,
and it fails the connection with its own close code.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import BINARY, DATA_OPCODES, CloseCode, Frame, Opcode
from websockets.protocol import Event, State

from db_core.ratelimit import Rate, TokenBucket

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

OPEN = State.OPEN
# Pings and pongs a client may send: keepalives come every few seconds; a flood is closed (1008).
# Each one costs a websocket parse and a pong's write: a flooder that reconnects gets 20 a time.
DEFAULT_CONTROL_FRAMES = Rate(10, 20)
END_OF_REQUEST = b"\r\n\r\n"  # an HTTP request without a body (a websocket handshake has none)


# Payloads above this are written as they are, after their own header: joining them into one
# bytes object (to save a syscall) would copy megabytes on the loop.
BIG_PAYLOAD = 256 * 1024


def ws_header(n: int) -> bytes:
    """The header of one unfragmented binary websocket frame of ``n`` bytes as a server sends it
    (RFC 6455 5.2: unmasked).

    With its payload, equal to what websockets' ``send_binary`` serializes when no extension is
    negotiated, which the server checks for every client (it asks for no compression).
    """
    if n < 126:
        return bytes((0x82, n))
    if n < 65536:
        return b"\x82\x7e" + n.to_bytes(2, "big")
    return b"\x82\x7f" + n.to_bytes(8, "big")


class _Stage(enum.Enum):
    REQUEST = enum.auto()     # the HTTP request is arriving: websockets reads all of it
    FRAMES = enum.auto()      # frame boundaries are known: whole binary frames may skip websockets
    WEBSOCKETS = enum.auto()  # websockets reads everything from here on


class _Lead(enum.Enum):
    """What the first byte of a frame header says (RFC 6455 5.2)."""

    BINARY = enum.auto()   # FIN, no RSV bits, binary: the one kind the fast path may take
    DATA = enum.auto()     # text, a fragment or a continuation: websockets reads it
    CONTROL = enum.auto()  # close, ping or pong with FIN: websockets reads it
    REFUSED = enum.auto()  # RSV bits, an unknown opcode, a fragmented control frame


def _lead(byte: int) -> _Lead:
    if byte & 0x70:
        return _Lead.REFUSED  # RSV bits mean an extension: websockets reads all (none is negotiated here)
    try:
        opcode = Opcode(byte & 0x0F)
    except ValueError:
        return _Lead.REFUSED
    if opcode in DATA_OPCODES:
        return _Lead.BINARY if byte == 0x80 | BINARY else _Lead.DATA
    return _Lead.CONTROL if byte & 0x80 else _Lead.REFUSED


_LEADS = tuple(_lead(byte) for byte in range(256))
_BINARY, _CONTROL, _REFUSED = _Lead.BINARY, _Lead.CONTROL, _Lead.REFUSED  # the splitter's hot loop reads these


class FastConnection(ServerConnection):
    """A websockets ServerConnection that can hand each data message to a callback synchronously.

    After ``deliver_directly(callback)``, every complete message (bytes for binary, str for text;
    fragments joined) goes to ``callback`` straight from ``data_received``, in order; or, after
    ``deliver_to_recv()``, through websockets' queue as usual (``recv``). Until one of them is
    called, data frames are held. Control frames, size limits and the closing handshake stay
    websockets'; a text message that is not UTF-8 fails the connection with 1007, as ``recv`` does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_message: Callable[[bytes | str], None] | None = None
        self._held: list[Frame] | None = []  # None once the handler chose a way
        self._partial: bytearray | None = None  # a fragmented message so far
        self._partial_text = False
        self._failed = False  # a text message was not UTF-8: nothing more is delivered
        # Control frames a client may send (each ping costs a pong), and the most the transport may
        # hold unsent (pongs to a client that never reads pile up there): set by the server.
        self.control_frames = TokenBucket(DEFAULT_CONTROL_FRAMES, time.monotonic())
        self.send_limit: int | None = None
        self._stage = _Stage.REQUEST
        self._request_tail = b""  # the request's last bytes so far: its end may straddle two reads
        self._direct = False  # whole binary frames skip websockets (set by deliver_directly)
        # The start of a frame that is not complete yet: part of a header, or a binary frame the
        # fast path takes once whole. Its header announced at most the size limit, so this never
        # holds more than max_size + 14 bytes.
        self._pending = bytearray()
        self._forward = 0  # bytes of the current frame still to feed to websockets
        # No frame may be larger than a whole message: websockets refuses one at its header.
        protocol = self.protocol
        sizes = [size for size in (protocol.max_message_size, getattr(protocol, "max_fragment_size", None))
                 if size is not None]
        self._max_size = min(sizes) if sizes else None

    def connection_lost(self, exc: Exception | None) -> None:
        transport = self.transport
        super().connection_lost(exc)
        # asyncio's socket transport holds its own read callback, a bound method of itself, and keeps
        # it after closing: each connection left a cycle (the transport, its socket, ~8 objects) for
        # the young collections to free, and connect churn (thousands a second, refused ones too)
        # made those collections take 3-10 ms each. Nothing reads a transport after this call.
        if getattr(transport, "_read_ready_cb", None) is not None:
            transport._read_ready_cb = None  # type: ignore[attr-defined]  # asyncio's, see above

    # -- incoming bytes -------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._receive(data)
        limit = self.send_limit
        if limit is not None and self.transport.get_write_buffer_size() > limit:
            # Not reading what it is sent (pongs, say): it could make the server hold any amount.
            self.transport.abort()

    def _receive(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # hung up on (a flooder): the rest of what it sent is not even parsed
        if self._stage is not _Stage.FRAMES:
            if self._stage is _Stage.WEBSOCKETS:
                super().data_received(data)
                return
            data = self._read_request(data)
            if not data:
                return
        pending = self._pending
        if pending:
            pending += data
            # Deleting from the front of a bytearray moves its start (no copy of what is left),
            # and what is left is at most one incomplete frame: no quadratic copying.
            del pending[:self._split(pending)]
        else:
            used = self._split(data)
            if used < len(data):
                pending += memoryview(data)[used:]

    def _read_request(self, data: bytes) -> bytes:
        """Feed websockets the HTTP request; returns the bytes after it (the first frames), if known."""
        seen = self._request_tail + data
        end = seen.find(END_OF_REQUEST)
        if end < 0:
            self._request_tail = seen[-len(END_OF_REQUEST) + 1:]
            super().data_received(data)
            return b""
        end += len(END_OF_REQUEST) - len(self._request_tail)
        super().data_received(data[:end])
        # websockets parsed a request and has nothing left over: the next byte starts a frame.
        # Anything else (a request it refused) is websockets' to handle, to the end.
        if self.request is not None and not self.protocol.reader.buffer:
            self._stage = _Stage.FRAMES
            return data[end:]
        self._stage = _Stage.WEBSOCKETS
        if end < len(data):
            super().data_received(data[end:])
        return b""

    def _split(self, data: bytes | bytearray) -> int:
        """Hand on the frames of ``data``, which starts where ``_forward`` says; returns the bytes used.

        What is not used is the start of a frame that is not complete yet.
        """
        protocol = self.protocol
        on_message = self._on_message if self._direct else None
        max_size = self._max_size
        # Only what websockets reads can change these (a close frame, a fragment, a failure).
        fast = on_message is not None and protocol.state is OPEN and protocol.current_size is None
        i, n = 0, len(data)
        while i < n:
            if self._forward:
                j = min(n, i + self._forward)
                self._forward -= j - i
                super().data_received(bytes(data[i:j]))
                i = j
                if self.transport.is_closing():
                    return n
                fast = on_message is not None and protocol.state is OPEN and protocol.current_size is None
                continue
            if n - i < 2:
                break
            lead = _LEADS[data[i]]
            length = data[i + 1]
            if lead is _REFUSED or not length & 0x80:  # a client must mask (RFC 6455 5.1)
                return self._to_websockets(data, i)
            length &= 0x7F
            head = 6
            if length > 125:
                head = 8 if length == 126 else 14
                if n - i < head - 4:
                    break
                length = int.from_bytes(data[i + 2:i + head - 4], "big")
            if max_size is not None and length > max_size or lead is _CONTROL and length > 125:
                return self._to_websockets(data, i)
            if fast and lead is _BINARY:
                end = i + head + length
                if end > n:
                    break
                on_message(apply_mask(data[i + head:end], data[i + head - 4:i + head]))  # type: ignore[misc]  # fast: set
                i = end
            else:
                self._forward = head + length
        return i

    def _to_websockets(self, data: bytes | bytearray, start: int) -> int:
        """websockets reads everything from ``data[start:]`` on (it refuses this frame); returns len(data)."""
        self._stage = _Stage.WEBSOCKETS
        super().data_received(bytes(data[start:]))
        return len(data)

    # -- messages ---------------------------------------------------------------------------------
    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode in (Opcode.PING, Opcode.PONG):
            if self.control_frames.take(time.monotonic()) and self.protocol.state is OPEN:
                self.protocol.fail(CloseCode.POLICY_VIOLATION,
                                   f"too many control frames: at most {self.control_frames.rate.per_second:g} a second")
                self.send_data()
                # No closing handshake with a flooder: it would be read (and discarded) until the
                # close timeout. The close frame is flushed, then the connection is over.
                self.transport.close()
                return
        if self.request is None or not isinstance(event, Frame) or event.opcode not in DATA_OPCODES:
            super().process_event(event)  # the handshake, pings, pongs, close
        elif self._held is not None:
            self._held.append(event)
        elif self._on_message is None:
            super().process_event(event)
        else:
            self._take(event)

    def deliver_directly(self, on_message: Callable[[bytes | str], None]) -> None:
        """Hand every message to ``on_message`` from now on, the held ones first."""
        held, self._held = self._held or [], None
        self._on_message = on_message
        protocol = self.protocol
        # The fast path unmasks payloads as they are (no extension may transform them), and keeps
        # a frame until it is whole (the size limit bounds that).
        self._direct = not protocol.extensions and self._max_size is not None
        for frame in held:
            self._take(frame)

    def stop_delivering(self) -> None:
        """The connection is over: drop the callback (and so what it holds)."""
        self._on_message = None
        self._direct = False

    def deliver_to_recv(self) -> None:
        """Queue every message for ``recv`` from now on, the held ones first."""
        held, self._held = self._held or [], None
        for frame in held:
            super().process_event(frame)
        # websockets reads everything from here on: first the start of a frame the splitter kept.
        self._stage = _Stage.WEBSOCKETS
        pending, self._pending = bytes(self._pending), bytearray()
        if pending:
            super().data_received(pending)

    def _take(self, frame: Frame) -> None:
        assert self._on_message is not None
        if self._failed:
            return
        data = frame.data
        if self._partial is None:
            if not frame.fin:
                self._partial, self._partial_text = bytearray(data), frame.opcode is not BINARY
                return
            text = frame.opcode is not BINARY
        else:
            # websockets' parser checked the order of fragments and the total size (max_size).
            self._partial += data
            if not frame.fin:
                return
            data, text, self._partial = self._partial, self._partial_text, None
        if type(data) is not bytes:
            data = bytes(data)
        if not text:
            self._on_message(data)
            return
        try:
            message = data.decode()
        except UnicodeDecodeError as exc:
            self._fail_invalid_text(exc)
            return
        self._on_message(message)

    def _fail_invalid_text(self, exc: UnicodeDecodeError) -> None:
        """Close with 1007 as websockets' ``recv`` does for a text message that is not UTF-8 (RFC 6455 8.1)."""
        self._failed = True
        self.set_connection_exc(exc)
        protocol = self.protocol
        if protocol.state is not OPEN:
            return  # closing already: recv would raise ConnectionClosed without a close frame of its own
        protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
        self.send_data()
        if self.close_deadline is None and self.close_timeout is not None:
            self.close_deadline = self.loop.time() + self.close_timeout
