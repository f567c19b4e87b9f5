"""Value types: Identity, ConnectionId, Timestamp.

They subclass ``bytes``/``int`` so that hashing, comparison and msgpack
encoding run in C: rows are hashed and compared on every insert.
"""

from __future__ import annotations

import datetime as _dt
import os
import time

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


class Identity(bytes):
    """A 32-byte identity. Printed ``0x`` + 64 lowercase hex digits in SQL output."""

    __slots__ = ()
    SIZE = 32

    def __new__(cls, value: bytes) -> "Identity":
        if type(value) is cls:
            return value
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"Identity needs bytes, got {type(value).__name__}")
        if len(value) != cls.SIZE:
            raise ValueError(f"Identity needs {cls.SIZE} bytes, got {len(value)}")
        return super().__new__(cls, value)

    @classmethod
    def random(cls) -> "Identity":
        return cls(os.urandom(cls.SIZE))

    @classmethod
    def from_hex(cls, text: str) -> "Identity":
        """Parse 64 hex digits, with or without a ``0x`` prefix."""
        digits = text[2:] if text[:2].lower() == "0x" else text
        if len(digits) != cls.SIZE * 2:
            raise ValueError(f"an identity is {cls.SIZE * 2} hex digits, got {len(digits)}")
        try:
            return cls(bytes.fromhex(digits))
        except ValueError:
            raise ValueError(f"not a hex identity: {text!r}") from None

    def to_hex(self) -> str:
        return self.hex()

    def to_abbreviated_hex(self) -> str:
        """The first 16 hex digits: how a user without a name is shown."""
        return self.hex()[:16]

    def __repr__(self) -> str:
        return f"Identity(0x{self.hex()})"

    __str__ = to_hex


class ConnectionId(bytes):
    """16 random bytes naming one connection; all zeros is invalid."""

    __slots__ = ()
    SIZE = 16

    def __new__(cls, value: bytes) -> "ConnectionId":
        if type(value) is cls:
            return value
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"ConnectionId needs bytes, got {type(value).__name__}")
        if len(value) != cls.SIZE:
            raise ValueError(f"ConnectionId needs {cls.SIZE} bytes, got {len(value)}")
        if not any(value):
            raise ValueError("ConnectionId must not be all zeros")
        return super().__new__(cls, value)

    @classmethod
    def random(cls) -> "ConnectionId":
        while True:
            raw = os.urandom(cls.SIZE)
            if any(raw):
                return cls(raw)

    @classmethod
    def from_hex(cls, text: str) -> "ConnectionId":
        digits = text[2:] if text[:2].lower() == "0x" else text
        return cls(bytes.fromhex(digits))

    def to_hex(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"ConnectionId(0x{self.hex()})"

    __str__ = to_hex


class Timestamp(int):
    """Microseconds since the Unix epoch, UTC. Printed RFC 3339 with ``+00:00``."""

    __slots__ = ()

    @classmethod
    def now(cls) -> "Timestamp":
        return cls(time.time_ns() // 1000)

    @classmethod
    def from_datetime(cls, value: _dt.datetime) -> "Timestamp":
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        delta = value - _EPOCH
        return cls((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)

    @classmethod
    def parse(cls, text: str) -> "Timestamp":
        """Parse an RFC 3339 / ISO 8601 string (``Z`` or an offset; no zone means UTC)."""
        cleaned = text.strip()
        if cleaned.endswith(("Z", "z")):
            cleaned = cleaned[:-1] + "+00:00"
        try:
            return cls.from_datetime(_dt.datetime.fromisoformat(cleaned))
        except ValueError:
            raise ValueError(f"not a timestamp: {text!r} (expected e.g. '2025-02-10T15:45:30Z')") from None

    @property
    def micros(self) -> int:
        return int(self)

    def to_datetime(self) -> _dt.datetime:
        return _EPOCH + _dt.timedelta(microseconds=int(self))

    def to_rfc3339(self) -> str:
        return self.to_datetime().isoformat(timespec="microseconds")

    def __repr__(self) -> str:
        return f"Timestamp({self.to_rfc3339()})"

    __str__ = to_rfc3339
