"""Durable bytes: the commit log and the snapshot store.

This package knows nothing of tables or transactions' contents: the datastore
hands it opaque payloads numbered by consecutive offsets. It imports only the
standard library and ``db_core.errors``.

- ``CommitLog`` (``log``): segmented, checksummed, group-committed append-only log;
  its writer thread (batching, fsync, preallocation) is in ``flusher``, its segment
  files (the start-up scan, cutting a damaged tail, reading back) in ``segments``.
- ``SnapshotStore``: atomically written, verified snapshot files.
- ``framing``: the on-disk formats (documented there); ``fsio``: the sync and write helpers.
"""

from __future__ import annotations

from .log import CommitLog
from .snapshot import SnapshotStore

__all__ = ["CommitLog", "SnapshotStore"]
