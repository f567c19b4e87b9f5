"""Identity tokens: minted for anonymous clients, checked on every connect.

A token is ``qc1.<identity hex>.<base64url HMAC-SHA256(secret, "qc1." + identity hex)>``.
The secret is 32 random bytes in the data directory (``auth.key``, mode 0600),
so tokens survive restarts and no client can forge or alter one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from db_core import Identity

PREFIX = "qc1"


class InvalidToken(Exception):
    """A token that this server did not mint (forged, altered, truncated or foreign)."""


class TokenAuthority:
    """Mints and verifies identity tokens with one server secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must be at least 16 bytes")
        self._secret = secret

    @classmethod
    def load_or_create(cls, path: Path) -> "TokenAuthority":
        """The secret at ``path``, created (mode 0600) if missing."""
        try:
            secret = path.read_bytes()
        except FileNotFoundError:
            secret = secrets.token_bytes(32)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secret)
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(path, 0o600)
        return cls(secret)

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def mint(self, identity: Identity | None = None) -> tuple[Identity, str]:
        """A token for ``identity`` (a fresh random identity if None)."""
        ident = identity or Identity.random()
        body = f"{PREFIX}.{ident.hex()}"
        return ident, f"{body}.{self._mac(body)}"

    def verify(self, token: str) -> Identity:
        """The identity a token names; InvalidToken if this server did not mint it."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise InvalidToken("not a token of this server (wrong format)")
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._mac(body), parts[2]):
            raise InvalidToken("the token's signature does not match: it was altered, or minted by another server")
        try:
            return Identity.from_hex(parts[1])
        except ValueError:
            raise InvalidToken("the token names no valid identity") from None
