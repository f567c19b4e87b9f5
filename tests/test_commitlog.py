"""The commit log and snapshot store on real files: round trips, group commit, torn tails, failures."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from db_core.commitlog import CommitLog, SnapshotStore
from db_core.commitlog import flusher as commitlog_flusher
from db_core.errors import CorruptLogError, StorageError

from .conftest import FRAME, SEG_HEADER, record_spans

# The formats, written out independently of the implementation so the tests pin them.
SNAP_HEADER = struct.Struct("<8sQQI")


def frame(offset: int, payload: bytes) -> bytes:
    crc = zlib.crc32(struct.pack("<Q", offset) + payload)
    return FRAME.pack(len(payload), crc, offset) + payload


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


def payload_for(i: int) -> bytes:
    return f"tx-{i}:".encode() + bytes([i % 251]) * (i % 37)


def make_log(directory: Path, n: int, **kwargs: object) -> None:
    log = CommitLog.open(directory, **kwargs)
    for i in range(n):
        log.append(i, payload_for(i))
    log.close()


def read_all(log: CommitLog, start: int = 0) -> list[tuple[int, bytes]]:
    return list(log.replay(start))


# ---------------------------------------------------------------------------- round trips


def test_round_trip_across_rotations_and_reopen(tmp_path: Path) -> None:
    d = tmp_path / "log"
    payloads = [payload_for(i) for i in range(300)]
    payloads[7] = b""  # empty payloads are records too
    payloads[100] = b"z" * 1000  # bigger than a segment: gets one to itself
    log = CommitLog.open(d, segment_bytes=512)
    assert (log.next_offset, log.durable_offset, log.first_offset()) == (0, -1, None)
    for i, p in enumerate(payloads):
        log.append(i, p)
    assert log.flush() == 299
    assert read_all(log) == list(enumerate(payloads))
    assert read_all(log, 250) == list(enumerate(payloads))[250:]
    log.close()
    log.close()  # idempotent

    segs = segments(d)
    assert len(segs) > 5
    for seg in segs:
        magic, base = SEG_HEADER.unpack_from(seg.read_bytes())
        assert magic == b"QCLOG001" and base == int(seg.stem) and seg.name == f"{base:020d}.log"
        spans = record_spans(seg)
        first = FRAME.unpack_from(seg.read_bytes(), spans[0][0])[2]
        assert first == base
        assert seg.stat().st_size < 512 + 1000 + FRAME.size

    with CommitLog.open(d, segment_bytes=512) as log:
        assert log.repairs == []
        assert (log.next_offset, log.durable_offset, log.first_offset()) == (300, 299, 0)
        with pytest.raises(ValueError):
            log.append(299, b"again")
        log.append(300, b"after reopen")
        log.flush()
    with CommitLog.open(d, segment_bytes=512) as log:
        assert read_all(log) == list(enumerate(payloads)) + [(300, b"after reopen")]


def test_frame_format_on_disk(tmp_path: Path) -> None:
    with CommitLog.open(tmp_path) as log:
        log.append(0, b"hello")
        log.append(1, b"")
    data = (tmp_path / f"{0:020d}.log").read_bytes()
    assert data == SEG_HEADER.pack(b"QCLOG001", 0) + frame(0, b"hello") + frame(1, b"")


def test_append_checks_offset_and_payload(tmp_path: Path) -> None:
    with CommitLog.open(tmp_path) as log:
        with pytest.raises(ValueError, match="must be 0"):
            log.append(1, b"x")
        buf = bytearray(b"mutable")
        log.append(0, buf)
        buf[:] = b"changed"  # the log copied it: later changes to the buffer do not leak in
        log.flush()
        assert read_all(log) == [(0, b"mutable")]
    with pytest.raises(StorageError, match="closed"):
        log.append(1, b"late")


# ---------------------------------------------------------------------------- durability


def test_group_commit_puts_everything_queued_during_an_fsync_into_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fdatasync
    entered, release = threading.Event(), threading.Event()
    syncs: list[int] = []

    def slow_sync(fd: int) -> None:
        syncs.append(fd)
        if not entered.is_set():
            entered.set()
            release.wait(5)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_sync)
    durable: list[int] = []
    log = CommitLog.open(tmp_path, on_durable=durable.append)
    log.append(0, b"first")
    assert entered.wait(5), "the flusher picked up the first record and is syncing"
    for i in range(1, 1000):
        log.append(i, payload_for(i))
    assert log.durable_offset == -1
    assert log.wait_durable(0, timeout=0.05) is False
    release.set()
    assert log.wait_durable(999, timeout=5)
    # Segment header sync + the first batch's sync + ONE sync for the 999 records queued meanwhile.
    assert len(syncs) == 3
    assert durable == [0, 999]
    log.close()


def test_concurrent_writers_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fdatasync
    syncs = 0

    def counting(fd: int) -> None:
        nonlocal syncs
        syncs += 1
        time.sleep(0.001)  # a disk-like fsync, so writers really do pile up behind it
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    log = CommitLog.open(tmp_path)
    order = threading.Lock()

    def writer() -> None:
        for _ in range(100):
            with order:  # the single-writer datastore hands out offsets; the log only checks them
                offset = log.next_offset
                log.append(offset, b"w" * 50)
            assert log.wait_durable(offset, timeout=10)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.durable_offset == 799
    assert syncs < 800  # each writer waits for its own commit, yet they share syncs
    log.close()
    with CommitLog.open(tmp_path, sync=False) as log:
        assert [o for o, _ in log.replay()] == list(range(800))


def test_wait_durable_and_on_durable(tmp_path: Path) -> None:
    seen: list[int] = []
    threads: set[str] = set()

    def on_durable(offset: int) -> None:
        seen.append(offset)
        threads.add(threading.current_thread().name)

    log = CommitLog.open(tmp_path, on_durable=on_durable)
    assert log.wait_durable(-1) is True  # nothing to wait for
    for i in range(50):
        log.append(i, payload_for(i))
    assert log.wait_durable(49, timeout=5) is True
    assert log.durable_offset == 49
    assert seen == sorted(seen) and seen[-1] == 49
    assert threading.current_thread().name not in threads  # called from the flusher
    assert log.wait_durable(50, timeout=0.05) is False  # never appended
    log.close()
    with pytest.raises(StorageError, match="closed"):
        log.wait_durable(50)
    assert log.wait_durable(49) is True


def test_a_failing_on_durable_callback_does_not_stop_the_log(tmp_path: Path) -> None:
    def boom(offset: int) -> None:
        raise RuntimeError("listener bug")

    with CommitLog.open(tmp_path, on_durable=boom) as log:
        log.append(0, b"a")
        assert log.flush() == 0
        log.append(1, b"b")
        assert log.flush() == 1


def test_callbacks_cannot_wait_for_the_flusher(tmp_path: Path) -> None:
    caught: list[BaseException] = []

    def on_durable(offset: int) -> None:
        try:
            log.flush()
        except RuntimeError as exc:
            caught.append(exc)

    log = CommitLog.open(tmp_path, on_durable=on_durable)
    log.append(0, b"a")
    assert log.flush() == 0
    log.close()
    assert caught and "flusher" in str(caught[0])


def test_sync_false_never_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(fd: int) -> None:
        raise AssertionError("fsync with sync=False")

    monkeypatch.setattr(os, "fdatasync", forbidden)
    monkeypatch.setattr(os, "fsync", forbidden)
    with CommitLog.open(tmp_path, sync=False, segment_bytes=128) as log:
        for i in range(40):
            log.append(i, payload_for(i))
        assert log.flush() == 39


def test_failed_fsync_poisons_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[BaseException] = []
    log = CommitLog.open(tmp_path, on_error=errors.append)
    log.append(0, b"safe")
    assert log.flush() == 0

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    log.append(1, b"doomed")
    with pytest.raises(StorageError, match="Input/output error"):
        log.wait_durable(1, timeout=5)
    assert log.durable_offset == 0
    assert log.wait_durable(0) is True  # what was really synced stays durable
    with pytest.raises(StorageError, match="Input/output error"):
        log.append(2, b"more")
    with pytest.raises(StorageError):
        log.flush()
    assert len(errors) == 1 and isinstance(errors[0], StorageError)
    assert isinstance(errors[0].__cause__, OSError)
    with pytest.raises(StorageError, match="not durable"):
        log.close()
    log.close()  # second close is quiet
    assert log.durable_offset == 0 and len(errors) == 1


def test_failed_fsync_during_rotation_keeps_durable_offset_honest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = CommitLog.open(tmp_path, segment_bytes=64)
    log.append(0, b"x" * 80)
    log.flush()

    def broken(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", broken)
    for i in range(1, 5):
        log.append(i, b"y" * 80)
    with pytest.raises(StorageError, match="No space left"):
        log.wait_durable(4, timeout=5)
    assert log.durable_offset == 0
    with pytest.raises(StorageError):
        log.close()


def test_a_failed_batch_leaves_nothing_for_the_next_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The records were written but the sync failed: their callers hear "not durable", so they must not
    # come back when the log is reopened (after the disk is fixed).
    log = CommitLog.open(tmp_path)
    log.append(0, b"safe")
    log.flush()
    assert log.undurable() == []

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    log.hold()
    for i in range(1, 4):
        log.append(i, b"written, never synced %d" % i)
    log.release()
    with pytest.raises(StorageError):
        log.wait_durable(3, timeout=5)
    # The owner gets them back, oldest first, to undo what it holds of them.
    assert log.undurable() == [(i, b"written, never synced %d" % i) for i in range(1, 4)]
    (seg,) = segments(tmp_path)
    assert record_spans(seg) == [(SEG_HEADER.size, SEG_HEADER.size + FRAME.size + 4)]  # cut before on_error
    with pytest.raises(StorageError):
        log.close()
    monkeypatch.undo()
    with CommitLog.open(tmp_path) as log:
        assert log.repairs == [] and read_all(log) == [(0, b"safe")] and log.next_offset == 1


def test_a_failed_rotation_leaves_no_new_segment_and_no_undurable_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = CommitLog.open(tmp_path, segment_bytes=64)
    log.append(0, b"x" * 80)
    log.flush()
    real = commitlog_flusher.pwrite_all

    def full(fd: int, data: bytes, pos: int) -> None:
        if pos == 0:  # the new segment's header: the file exists, its first write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data, pos)

    monkeypatch.setattr(commitlog_flusher, "pwrite_all", full)
    log.append(1, b"y" * 80)
    with pytest.raises(StorageError, match="No space left"):
        log.wait_durable(1, timeout=5)
    monkeypatch.undo()
    with pytest.raises(StorageError):
        log.close()
    assert [p.name for p in segments(tmp_path)] == [f"{0:020d}.log"]
    with CommitLog.open(tmp_path, segment_bytes=64) as log:
        assert log.repairs == [] and read_all(log) == [(0, b"x" * 80)]


def test_no_room_to_preallocate_is_not_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    def full(fd: int, start: int, end: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(commitlog_flusher, "write_zeros", full)
    with CommitLog.open(tmp_path) as log:
        for i in range(50):
            log.append(i, payload_for(i))
        assert log.flush() == 49
        (seg,) = segments(tmp_path)
        assert seg.stat().st_size == logical_size(seg)  # no padding: the file is exactly its records
    assert "no room to preallocate" in caplog.text
    with CommitLog.open(tmp_path) as log:
        assert log.repairs == [] and read_all(log) == expected_records(50)


# ---------------------------------------------------------------------------- torn and corrupt tails

N = 6


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pristine") / "log"
    make_log(d, N)
    assert len(segments(d)) == 1
    return d


Records = list[tuple[int, bytes]]


def reopen_after(pristine: Path, work: Path, damage: Callable[[Path], None]) -> tuple[Records, list[str], Path]:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work)
    (seg,) = segments(work)
    damage(seg)
    with CommitLog.open(work, sync=False) as log:
        records, repairs = read_all(log), list(log.repairs)
        assert log.next_offset == len(records)
        log.append(log.next_offset, b"new")  # the repaired log keeps working
    with CommitLog.open(work, sync=False) as log:
        assert log.repairs == []  # the cut is not reported twice
        assert read_all(log) == records + [(len(records), b"new")]
    return records, repairs, seg


def truncate_to(size: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with open(path, "r+b") as fh:
            fh.truncate(size)
    return damage


def flip_at(pos: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[pos] ^= 0xFF
        path.write_bytes(bytes(data))
    return damage


def expected_records(n: int) -> list[tuple[int, bytes]]:
    return [(i, payload_for(i)) for i in range(n)]


def test_cut_at_every_byte_inside_the_last_record(pristine: Path, tmp_path: Path) -> None:
    (seg,) = segments(pristine)
    start, end = record_spans(seg)[-1]
    for cut in range(start + 1, end):
        records, repairs, path = reopen_after(pristine, tmp_path / "w", truncate_to(cut))
        assert records == expected_records(N - 1), cut
        assert len(repairs) == 1, repairs
        msg = repairs[0]
        assert path.name in msg and f"cut {cut - start} bytes at byte {start}" in msg, msg
        assert f"last good offset {N - 2}" in msg, msg
    # Cutting exactly at a record boundary is a clean, shorter log.
    records, repairs, _ = reopen_after(pristine, tmp_path / "w", truncate_to(start))
    assert records == expected_records(N - 1) and repairs == []


def test_flip_every_byte_of_the_last_record(pristine: Path, tmp_path: Path) -> None:
    (seg,) = segments(pristine)
    start, end = record_spans(seg)[-1]
    size = seg.stat().st_size
    for pos in range(start, end):
        records, repairs, path = reopen_after(pristine, tmp_path / "w", flip_at(pos))
        assert records == expected_records(N - 1), pos
        assert len(repairs) == 1 and f"cut {size - start} bytes at byte {start}" in repairs[0], (pos, repairs)


def test_cut_inside_the_first_record_leaves_an_empty_log(pristine: Path, tmp_path: Path) -> None:
    (seg,) = segments(pristine)
    start, _ = record_spans(seg)[0]
    records, repairs, _ = reopen_after(pristine, tmp_path / "w", truncate_to(start + 5))
    assert records == [] and "last good offset none" in repairs[0]


def test_valid_frame_with_a_wrong_offset_is_cut(pristine: Path, tmp_path: Path) -> None:
    for bad_offset in (N + 1, N - 1, 0):
        def damage(path: Path, bad_offset: int = bad_offset) -> None:
            with open(path, "ab") as fh:
                fh.write(frame(bad_offset, b"stray"))

        records, repairs, _ = reopen_after(pristine, tmp_path / "w", damage)
        assert records == expected_records(N)
        assert len(repairs) == 1 and f"record offset {bad_offset} where {N} was expected" in repairs[0]


def test_damage_in_an_earlier_segment_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_log(d, 60, segment_bytes=200)
    first, *_ = segs = segments(d)
    assert len(segs) >= 3
    start, end = record_spans(first)[-1]

    flip_at(start + FRAME.size)(first)
    with pytest.raises(CorruptLogError) as info:
        CommitLog.open(d)
    assert first.name in str(info.value) and f"byte {start}" in str(info.value)
    assert first.stat().st_size > start  # nothing was cut
    flip_at(start + FRAME.size)(first)  # undo

    truncate_to(end - 1)(first)
    with pytest.raises(CorruptLogError, match=f"{first.name}.*byte {start}"):
        CommitLog.open(d)


def test_a_missing_middle_segment_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_log(d, 60, segment_bytes=200)
    segs = segments(d)
    segs[1].unlink()
    with pytest.raises(CorruptLogError, match=segs[2].name):
        CommitLog.open(d)


def test_torn_header_of_the_last_segment_is_removed(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_log(d, 30, segment_bytes=200)
    with CommitLog.open(d, segment_bytes=200) as log:
        end = log.next_offset
    torn = d / f"{end:020d}.log"
    torn.write_bytes(b"QCLOG0")  # a crash while creating the next segment
    with CommitLog.open(d, segment_bytes=200) as log:
        assert len(log.repairs) == 1 and torn.name in log.repairs[0] and "torn" in log.repairs[0]
        assert not torn.exists()
        assert log.next_offset == end
        log.append(end, b"next")
    with CommitLog.open(d, segment_bytes=200) as log:
        assert log.repairs == [] and read_all(log, end) == [(end, b"next")]


def test_header_only_last_segment_is_fine(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_log(d, 30, segment_bytes=200)
    with CommitLog.open(d) as log:
        end = log.next_offset
    (d / f"{end:020d}.log").write_bytes(SEG_HEADER.pack(b"QCLOG001", end))
    with CommitLog.open(d) as log:
        assert log.repairs == [] and log.next_offset == end
        log.append(end, b"into the empty segment")
    with CommitLog.open(d) as log:
        assert read_all(log)[-1] == (end, b"into the empty segment")


def test_continue_at_sets_the_segments_aside_and_starts_a_contiguous_one(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_log(d, 30, segment_bytes=200)
    before = segments(d)
    assert len(before) > 1
    with CommitLog.open(d, segment_bytes=200) as log:
        with pytest.raises(ValueError, match="already reaches offset 29"):
            log.continue_at(30)
        aside = log.continue_at(40)
        assert [p.name for p in aside] == [p.name + ".covered" for p in before]
        assert all(p.is_file() for p in aside) and segments(d) == [d / f"{40:020d}.log"]
        assert (log.next_offset, log.durable_offset, log.first_offset()) == (40, 39, None)
        with pytest.raises(ValueError, match="next offset must be 40"):
            log.append(30, b"in the gap")
        log.append(40, b"after the gap")
    with CommitLog.open(d, segment_bytes=200) as log:
        assert log.repairs == [] and read_all(log) == [(40, b"after the gap")]


def test_continue_at_an_empty_log_creates_its_first_segment(tmp_path: Path) -> None:
    with CommitLog.open(tmp_path) as log:
        assert log.continue_at(7) == []
    with CommitLog.open(tmp_path) as log:  # an empty segment at 7: the log goes on from there
        assert (log.repairs, log.next_offset, log.first_offset()) == ([], 7, None)
        log.hold()  # the record waits to be written
        log.append(7, b"seven")
        with pytest.raises(ValueError, match="records wait"):
            log.continue_at(9)
        log.flush()
    with CommitLog.open(tmp_path) as log:
        assert read_all(log) == [(7, b"seven")]


def test_garbage_header_with_records_after_it_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_log(d, 5)
    (seg,) = segments(d)
    flip_at(2)(seg)
    with pytest.raises(CorruptLogError, match=f"{seg.name}.*byte 0"):
        CommitLog.open(d)


# ---------------------------------------------------------------------------- zero padding (preallocation)


def copy_while_open(log: CommitLog, src: Path, dst: Path) -> None:
    """What a kill -9 after ``flush`` leaves on disk: the files as they are, padding and all."""
    log.flush()
    shutil.copytree(src, dst)


def logical_size(segment: Path) -> int:
    spans = record_spans(segment)
    return spans[-1][1] if spans else SEG_HEADER.size


def test_zero_padded_tail_is_not_a_repair(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    log = CommitLog.open(src)
    for i in range(20):
        log.append(i, payload_for(i))
    copy_while_open(log, src, dst)
    log.close()
    (seg,) = segments(dst)
    end = logical_size(seg)
    assert seg.stat().st_size > end and not any(seg.read_bytes()[end:])  # preallocated with real zeros
    with CommitLog.open(dst) as log:
        assert log.repairs == []
        assert read_all(log) == expected_records(20) and log.next_offset == 20
    assert seg.stat().st_size == end  # a clean close drops the padding
    # Padding shorter than a frame header is a clean end too.
    shutil.rmtree(dst)
    shutil.copytree(src, dst)
    with open(seg, "ab") as fh:
        fh.write(bytes(FRAME.size - 1))
    with CommitLog.open(dst) as log:
        assert log.repairs == [] and read_all(log) == expected_records(20)


def test_reopen_after_a_kill_appends_after_the_last_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commitlog_flusher, "PREALLOC_STEP", 4096)
    src, dst = tmp_path / "src", tmp_path / "dst"
    log = CommitLog.open(src, segment_bytes=64 << 10)
    for i in range(30):
        log.append(i, payload_for(i))
    copy_while_open(log, src, dst)
    log.close()
    (seg,) = segments(dst)
    assert seg.stat().st_size == 4096
    log = CommitLog.open(dst, segment_bytes=64 << 10)
    assert log.repairs == [] and log.next_offset == 30
    payloads = [payload_for(i) for i in range(30)] + [b"p" * 150] * 1000  # re-extends, then rotates
    for i in range(30, 1030):
        log.append(i, payloads[i])
    log.flush()
    copy_while_open(log, dst, tmp_path / "again")
    log.close()
    for d in (dst, tmp_path / "again"):
        with CommitLog.open(d, segment_bytes=64 << 10) as log:
            assert log.repairs == [] and read_all(log) == list(enumerate(payloads))
    assert len(segments(dst)) > 2


def test_zero_header_followed_by_garbage_in_the_last_segment_is_cut(pristine: Path, tmp_path: Path) -> None:
    size = (segments(pristine)[0]).stat().st_size

    def damage(path: Path) -> None:
        with open(path, "ab") as fh:
            fh.write(bytes(100) + b"junk" + bytes(50))

    records, repairs, seg = reopen_after(pristine, tmp_path / "w", damage)
    assert records == expected_records(N)
    assert len(repairs) == 1 and f"cut 154 bytes at byte {size}" in repairs[0], repairs
    assert "zero record header" in repairs[0] and f"last good offset {N - 1}" in repairs[0]


def test_record_partly_written_over_padding_is_cut(pristine: Path, tmp_path: Path) -> None:
    (seg,) = segments(pristine)
    start, end = record_spans(seg)[-1]
    size = seg.stat().st_size

    def damage(path: Path) -> None:
        with open(path, "r+b") as fh:
            fh.seek(end - 3)
            fh.write(bytes(3 + 4096))  # its last bytes never made it: zeros, then padding

    records, repairs, _ = reopen_after(pristine, tmp_path / "w", damage)
    assert records == expected_records(N - 1)
    assert len(repairs) == 1 and f"cut {size + 4096 - start} bytes at byte {start} (checksum" in repairs[0]


def test_zero_header_followed_by_garbage_in_an_earlier_segment_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_log(d, 60, segment_bytes=200)
    first, *_ = segments(d)
    size = first.stat().st_size
    with open(first, "ab") as fh:
        fh.write(bytes(FRAME.size) + b"junk")
    with pytest.raises(CorruptLogError, match=f"{first.name}: zero record header .* at byte {size}"):
        CommitLog.open(d)
    assert first.stat().st_size == size + FRAME.size + 4  # nothing was cut
    # Padding alone in an earlier segment loses nothing (the next segment must still follow on): accepted.
    truncate_to(size + 10)(first)
    with CommitLog.open(d) as log:
        assert log.repairs == [] and read_all(log) == expected_records(60)


def test_sealed_segments_have_exact_sizes(tmp_path: Path) -> None:
    d = tmp_path / "log"
    log = CommitLog.open(d, segment_bytes=16 << 10)
    for i in range(100):
        log.append(i, bytes([i]) * 1000)
        if i % 7 == 0:
            log.flush()
    log.flush()
    *sealed, active = segments(d)
    assert len(sealed) >= 4
    for seg in sealed:
        assert seg.stat().st_size == logical_size(seg) >= 16 << 10, seg
    assert active.stat().st_size == 16 << 10 > logical_size(active)  # still padded while written
    log.close()
    assert active.stat().st_size == logical_size(active)
    with CommitLog.open(d, segment_bytes=16 << 10) as log:
        assert log.repairs == [] and read_all(log) == [(i, bytes([i]) * 1000) for i in range(100)]


def test_preallocation_grows_in_steps_not_per_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = 16 << 10
    monkeypatch.setattr(commitlog_flusher, "PREALLOC_STEP", step)
    calls = {"extend": 0, "write": 0, "sync": 0}

    def counting(name: str, real: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object) -> object:
            calls[name] += 1
            return real(*args)
        return wrapper

    monkeypatch.setattr(CommitLog, "_extend", counting("extend", CommitLog._extend))
    monkeypatch.setattr(CommitLog, "_write", counting("write", CommitLog._write))
    monkeypatch.setattr(os, "fdatasync", counting("sync", os.fdatasync))
    d = tmp_path / "log"
    log = CommitLog.open(d, segment_bytes=1 << 20)
    for i in range(2000):
        log.append(i, b"q" * 150)
        if i % 20 == 19:
            log.flush()
    (seg,) = segments(d)
    end = SEG_HEADER.size + 2000 * (FRAME.size + 150)
    assert seg.stat().st_size == -(-end // step) * step  # whole steps of real zeros
    assert calls["write"] >= 100
    assert calls["extend"] == -(-end // step) - 1  # once per step, however many batches
    assert calls["sync"] == calls["write"] + 1  # the segment's creation; extending adds no sync of its own
    log.close()
    assert seg.stat().st_size == end


# ---------------------------------------------------------------------------- truncate_before


def test_truncate_before(tmp_path: Path) -> None:
    d = tmp_path / "log"
    log = CommitLog.open(d, segment_bytes=200, sync=False)
    for i in range(100):
        log.append(i, payload_for(i))
    log.flush()
    bases = [int(p.stem) for p in segments(d)]
    assert len(bases) >= 4
    assert log.truncate_before(bases[1] - 1) == 0  # segment 0 still holds offset bases[1]-1
    assert log.truncate_before(bases[2]) == 2
    assert log.first_offset() == bases[2]
    assert [o for o, _ in log.replay()] == list(range(bases[2], 100))
    assert log.truncate_before(10**9) == len(bases) - 3  # never the active segment
    assert segments(d) == [d / f"{bases[-1]:020d}.log"]
    log.append(100, b"still appending")
    log.close()
    with CommitLog.open(d, segment_bytes=200) as log:
        assert log.first_offset() == bases[-1] and log.next_offset == 101
        assert read_all(log)[-1] == (100, b"still appending")


# ---------------------------------------------------------------------------- snapshots


def test_snapshot_write_and_latest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps", keep=2)
    assert store.latest() is None
    store.write(10, b"ten")
    store.write(20, b"twenty")
    store.write(30, b"thirty")
    names = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert names == [f"{20:020d}.snap", f"{30:020d}.snap"]  # only the newest two, no temp files
    data = (tmp_path / "snaps" / f"{30:020d}.snap").read_bytes()
    assert data == SNAP_HEADER.pack(b"QCSNAP01", 30, 6, zlib.crc32(b"thirty")) + b"thirty"
    assert SnapshotStore(tmp_path / "snaps").latest() == (30, b"thirty")
    with pytest.raises(ValueError):
        store.write(-1, b"")


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "renamed"])
def test_corrupt_newest_snapshot_falls_back(tmp_path: Path, damage: str) -> None:
    d = tmp_path / "snaps"
    store = SnapshotStore(d)
    store.write(5, b"older state")
    store.write(9, b"newer state")
    newest = d / f"{9:020d}.snap"
    data = newest.read_bytes()
    if damage == "flip":
        newest.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "truncate":
        newest.write_bytes(data[:-3])
    elif damage == "empty":
        newest.write_bytes(b"")
    else:  # a valid file under the wrong name
        newest.unlink()
        (d / f"{7:020d}.snap").write_bytes(data)
        newest = d / f"{7:020d}.snap"
    store = SnapshotStore(d)
    assert store.latest() == (5, b"older state")
    assert len(store.repairs) == 1 and newest.name in store.repairs[0], store.repairs
    assert not newest.exists() and newest.with_name(newest.name + ".corrupt").exists()
    assert SnapshotStore(d).latest() == (5, b"older state")  # reported once: the bad file is set aside


def test_snapshot_temp_leftovers_are_removed(tmp_path: Path) -> None:
    d = tmp_path / "snaps"
    SnapshotStore(d).write(3, b"good")
    leftover = d / f"{8:020d}.snap.tmp"
    leftover.write_bytes(b"QCSNAP01 half written")
    unrelated = d / "notes.txt"
    unrelated.write_text("not ours")
    store = SnapshotStore(d)
    assert not leftover.exists() and unrelated.exists()
    assert store.latest() == (3, b"good") and store.repairs == []


def test_snapshot_write_is_atomic_when_the_sync_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "snaps"
    store = SnapshotStore(d)
    store.write(1, b"one")

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(StorageError, match="Input/output error"):
        store.write(2, b"two")
    monkeypatch.undo()
    assert sorted(p.name for p in d.iterdir()) == [f"{1:020d}.snap"]
    assert SnapshotStore(d).latest() == (1, b"one")


def test_a_writer_that_holds_again_at_once_does_not_keep_released_records_from_the_disk(tmp_path: Path) -> None:
    """A server holds the log at every turn of its loop; what it released must still get synced,
    even if the next hold comes before the flusher takes it (before: it waited for a quiet turn)."""
    log = CommitLog.open(tmp_path / "log")
    try:
        for turn in range(50):
            log.hold()
            log.append(turn, b"record %d" % turn)
            log.release()
        log.hold()  # the next turn's hold, at once
        deadline = time.monotonic() + 5
        while log.durable_offset < 49 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert log.durable_offset == 49
        log.append(50, b"held")
        time.sleep(0.05)
        assert log.durable_offset == 49  # what came after the hold still waits for its release
        log.release()
        assert log.wait_durable(50, timeout=5)
    finally:
        log.close()
