"""module.log on disk: rotation keeps it bounded, and ``lines(n)`` reads only its end, with the
same answer as reading everything."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from db_core.logs import LEVELS, LogRecord, ModuleLog, _filter, _read_lines, tail_lines

T0 = 1_764_300_000_000_000


def record(i: int, level: str = "INFO", text: str | None = None) -> LogRecord:
    return LogRecord(T0 + i, level, "m.py", 7, text if text is not None else f"message {i}")


def test_the_file_rotates_at_max_bytes_and_lines_span_both_files(tmp_path: Path) -> None:
    log = ModuleLog(tmp_path / "module.log", max_bytes=20_000)
    for i in range(2_000):  # about 60 bytes a line: several rotations
        log.emit(record(i))
    log.flush()
    assert (tmp_path / "module.log.1").exists()
    assert (tmp_path / "module.log").stat().st_size < 20_000 + 512 * 80
    assert (tmp_path / "module.log.1").stat().st_size < 20_000 + 512 * 80
    assert not (tmp_path / "module.log.2").exists()
    newest = log.lines(3)
    assert [line.rsplit(" ", 1)[1] for line in newest] == ["1997", "1998", "1999"]
    everything = log.lines()
    numbers = [int(line.rsplit(" ", 1)[1]) for line in everything]
    assert numbers == list(range(numbers[0], 2000))  # the newest ones, in order, from both files
    assert numbers[0] > 0  # what was rotated out twice is gone: the log is bounded
    log.close()


def test_lines_reopens_the_files_after_a_restart(tmp_path: Path) -> None:
    log = ModuleLog(tmp_path / "module.log", max_bytes=5_000)
    for i in range(300):
        log.emit(record(i, "WARN" if i % 3 == 0 else "INFO"))
    log.close()
    again = ModuleLog(tmp_path / "module.log", max_bytes=5_000)
    assert [line.rsplit(" ", 1)[1] for line in again.lines(2, "warn")] == ["294", "297"]
    again.close()


lines_st = st.lists(
    st.tuples(st.sampled_from(LEVELS), st.lists(st.text(alphabet="ab é\t", max_size=12), min_size=1, max_size=3)),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(records=lines_st, n=st.integers(0, 60), floor=st.integers(0, 4), block=st.integers(1, 64),
       split=st.integers(0, 40), junk=st.booleans())
def test_tail_equals_reading_everything(tmp_path_factory, records, n, floor, block, split, junk) -> None:
    d = tmp_path_factory.mktemp("logs")
    texts = [record(i, level, "\n".join(parts)).format() + "\n" for i, (level, parts) in enumerate(records)]
    older, newer = d / "module.log.1", d / "module.log"
    head = "orphan continuation\n" if junk else ""  # what rotation could leave at the start of the older file
    older.write_text(head + "".join(texts[:split]), encoding="utf-8")
    newer.write_text("".join(texts[split:]), encoding="utf-8")
    files = [older, newer]
    expected = _filter(_read_lines(files), floor)[-n:] if n > 0 else []
    assert tail_lines(files, n, floor, block=block) == expected
