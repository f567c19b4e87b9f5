"""Durable bytes: the commit log and the snapshot store.

This package knows nothing of tables or transactions' contents: the datastore
hands it opaque payloads numbered by consecutive offsets. It imports only the
standard library and ``db_core.errors``.

- ``CommitLog``: segmented, checksummed, group-committed append-only log.
- ``SnapshotStore``: atomically written, verified snapshot files.
- ``framing``: the on-disk formats (documented there).
"""

from __future__ import annotations

from .log import CommitLog
from .snapshot import SnapshotStore

__all__ = ["CommitLog", "SnapshotStore"]
