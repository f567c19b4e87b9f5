"""A data directory at start-up: its meta file, the migration check, and recovery.

    data/meta.json      identity, owner, module name, the schema the data has
    data/snapshots/     the tables as of some offset (``SnapshotStore``)
    data/log/           every transaction since (``CommitLog``)

Recovery loads the newest good snapshot, then replays the log after it through
``Datastore.replay``. What start-up cut off or skipped comes back as repair
lines; the caller reports them (``RecoveryWarning``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .codec import TableCodec, TxCodec, decode_snapshot
from .commitlog import SnapshotStore
from .commitlog.fsio import private_opener
from .datastore import Datastore
from .durability import LogDurability
from .errors import MigrationError, StorageError
from .migration import MigrationPlan, plan_migration
from .schema import TableDef

META_FORMAT = 1


class RecoveryWarning(UserWarning):
    """Start-up found and cut off a torn or corrupt tail (or skipped a bad snapshot)."""


def read_meta(path: Path, *, clear: bool) -> dict[str, Any] | None:
    """The meta file of data directory ``path`` (None: a new database). With ``clear``, the data
    (log, snapshots, meta) is removed first."""
    meta_path = path / "meta.json"
    meta = _read_json(meta_path)
    if clear and meta is not None:
        for sub in ("log", "snapshots"):
            shutil.rmtree(path / sub, ignore_errors=True)
        meta_path.unlink()
        meta = None
    return meta


def check_migration(meta: dict[str, Any], tables: dict[str, TableDef], path: Path) -> MigrationPlan:
    """How the stored schema becomes the module's; MigrationError if it cannot without a clear."""
    plan = plan_migration(meta["schema"], tables)
    if not plan.compatible:
        raise MigrationError(
            f"the module is incompatible with the data in {path}: " + "; ".join(plan.problems)
            + ". Publish with a clear (--clear-database) to start over, losing the data."
        )
    return plan


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Replace the meta file atomically (``format`` is added); StorageError if it cannot be written."""
    try:
        _write_json_atomic(path / "meta.json", {"format": META_FORMAT, **meta})
    except OSError as exc:
        raise StorageError(f"cannot write {path / 'meta.json'}: {exc}") from None


def recover(path: Path, store: Datastore, snapshots: SnapshotStore, durability: LogDurability,
            codecs: dict[str, TableCodec], txcodec: TxCodec) -> list[str]:
    """Load the newest snapshot into ``store``, replay the log after it; the repair lines.

    Raises StorageError (CorruptLogError) for damage that is not a torn tail, or a log that
    starts after what the snapshot covers (segments are missing).
    """
    repairs = list(snapshots.repairs)
    start = 0
    latest = snapshots.latest()
    if latest is not None:
        offset, payload = latest
        snap = decode_snapshot(payload)
        for name, data in snap["tables"].items():
            if name not in codecs:
                raise StorageError(f"snapshot holds table `{name}` that the module does not declare")
            store.load(name, codecs[name].decode_columns(data["columns"], data["count"]), data.get("sequences") or {})
        store.last_timestamp = max(store.last_timestamp, snap.get("timestamp", 0))
        start = offset + 1
    clog = durability.log
    repairs += clog.repairs
    first = clog.first_offset()
    if first is not None and first > start:
        raise StorageError(
            f"commit log in {path / 'log'} starts at offset {first} but the data covers only up to {start - 1}:"
            " segments are missing"
        )
    replayed = 0
    decode = txcodec.decode
    for offset, payload in clog.replay(start):
        store.replay(decode(offset, payload))
        replayed += 1
    if clog.next_offset < start:
        # The log lost records the snapshot holds (its damaged tail was cut): nothing is missing,
        # so the log goes on after the snapshot, its covered segments set aside.
        end = clog.next_offset - 1
        aside = clog.continue_at(start)
        repairs.append(
            f"commit log in {path / 'log'} ends at offset {end if end >= 0 else 'none'}, before the snapshot at"
            f" offset {start - 1}, which holds all of it: continued the log at offset {start}"
            + (f" and set aside {', '.join(p.name for p in aside)}" if aside else "")
        )
    store.next_offset = clog.next_offset
    durability.since_snapshot = replayed
    return repairs


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # one left by a crash would keep its old mode through open()
    with open(tmp, "w", encoding="utf-8", opener=private_opener) as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
