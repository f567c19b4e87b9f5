"""chat_tui.profiles: profile locking, saved tokens and input history, on real files and processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_server import tokens
from chat_tui import profiles
from chat_tui.profiles import HISTORY_CAP, Profile, ProfileBusy, claim_profile, profile_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def claimed(config_home: Path) -> Iterator[list[Profile]]:
    """Profiles claimed by a test, released afterwards so no lock leaks into later tests."""
    held: list[Profile] = []
    yield held
    for p in held:
        p.release()


def claim(held: list[Profile], name: str | None = None) -> Profile:
    p = claim_profile(name)
    held.append(p)
    return p


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_dir_is_read_at_call_time(config_home: Path) -> None:
    assert tokens.config_dir() == config_home / "quickstart-chat"
    assert profiles.profiles_dir() == config_home / "quickstart-chat" / "tui" / "profiles"


def test_no_name_takes_the_first_free_profile(claimed: list[Profile], config_home: Path) -> None:
    first = claim(claimed)
    assert first.name == "default"
    assert first.path == config_home / "quickstart-chat" / "tui" / "profiles" / "default"
    # A second claim in the same process opens the lock file anew: flock conflicts, so it is the next user.
    second = claim(claimed)
    assert second.name == "2"
    assert claim(claimed).name == "3"
    first.release()
    assert claim(claimed).name == "default"  # the freed one is reused first
    assert profile_names() == ["default", "2", "3"]


def test_claim_replaces_a_stale_pid(claimed: list[Profile], config_home: Path) -> None:
    path = profiles.profiles_dir() / "old"
    path.mkdir(parents=True)
    (path / "lock").write_text("999999999")  # left by a chat-tui that crashed
    assert claim(claimed, "old").name == "old"
    assert (path / "lock").read_text() == str(os.getpid())


def test_named_profile_in_use_is_refused(claimed: list[Profile]) -> None:
    alice = claim(claimed, "alice")
    with pytest.raises(ProfileBusy) as err:
        claim_profile("alice")
    text = str(err.value)
    assert "alice" in text and "--profile" in text and f"pid {os.getpid()}" in text
    assert (alice.path / "lock").read_text() == str(os.getpid())  # the failed claim kept the holder's pid
    alice.release()
    alice.release()  # idempotent
    assert claim(claimed, "alice").name == "alice"


@pytest.mark.parametrize("bad", ["", "-x", ".hidden", "a/b", "../x", "a b", "x" * 33, "é"])
def test_invalid_names_are_refused(bad: str, config_home: Path) -> None:
    with pytest.raises(ValueError, match="invalid profile name"):
        claim_profile(bad)
    assert not profiles.profiles_dir().exists()  # refused before anything is created


def test_valid_names(claimed: list[Profile]) -> None:
    for name in ("a", "Bob_2", "x.y-z", "9" + "x" * 31):
        assert claim(claimed, name).name == name


def test_lock_is_released_when_the_holder_is_killed(claimed: list[Profile], config_home: Path) -> None:
    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
        "from chat_tui.profiles import claim_profile\n"
        "p = claim_profile('shared'); print('ready', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "XDG_CONFIG_HOME": str(config_home)})
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(ProfileBusy, match=f"pid {child.pid}"):
            claim_profile("shared")
        assert claim(claimed).name == "default"  # unnamed claims skip nothing but busy profiles
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert claim(claimed, "shared").name == "shared"


def test_lock_is_not_inherited_by_child_processes(claimed: list[Profile]) -> None:
    # chat-tui starts a server that outlives it; that server must not keep the profile locked.
    p = claim_profile("solo")
    child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
                             close_fds=False, stdout=subprocess.PIPE, text=True)
    try:
        # Wait until the child runs: exec closes close-on-exec descriptors one by one, and Popen
        # may return before the child has closed this one.
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        p.release()
        assert claim(claimed, "solo").name == "solo"
    finally:
        child.kill()
        child.wait()


def test_tokens_are_saved_per_server_privately(claimed: list[Profile]) -> None:
    p = claim(claimed)
    assert p.token("127.0.0.1:3000") is None
    p.save_token("http://localhost:3000", "tok-local")
    p.save_token("ws://example.com:4000/", "tok-remote")
    assert p.token("127.0.0.1:3000") == "tok-local"
    assert p.token("ws://127.0.0.1:3000") == "tok-local"
    assert p.token("example.com:4000") == "tok-remote"
    assert p.token("127.0.0.1:3001") is None
    p.save_token("127.0.0.1:3000", "tok-new")
    fresh = Profile(p.name, p.path)
    assert fresh.token("localhost:3000") == "tok-new"
    data = json.loads((p.path / "tokens.json").read_text())
    assert data == {"127.0.0.1:3000": "tok-new", "example.com:4000": "tok-remote"}
    assert mode(p.path / "tokens.json") == 0o600
    assert mode(p.path) == 0o700
    assert sorted(f.name for f in p.path.iterdir()) == ["lock", "tokens.json"]  # no temp files left


def test_tokens_are_per_profile(claimed: list[Profile]) -> None:
    a, b = claim(claimed), claim(claimed)
    a.save_token("127.0.0.1:3000", "A")
    assert b.token("127.0.0.1:3000") is None


def test_history_round_trips_and_persists(claimed: list[Profile]) -> None:
    p = claim(claimed)
    assert p.history() == []
    lines = ["hello", "two\nlines\n", 'quotes " and \\ backslash', "ünïcødé ✓", "  spaced  "]
    for line in lines:
        p.add_history(line)
    assert p.history() == lines
    assert Profile(p.name, p.path).history() == lines
    assert mode(p.path / "history.jsonl") == 0o600
    p.history().append("not stored")  # a copy, not the internal list
    assert p.history() == lines


def test_history_skips_consecutive_duplicates_and_empty(claimed: list[Profile]) -> None:
    p = claim(claimed)
    for line in ["a", "a", "b", "a", "", "a", "b", "b"]:
        p.add_history(line)
    assert p.history() == ["a", "b", "a", "b"]
    assert len((p.path / "history.jsonl").read_text().splitlines()) == 4


def test_history_is_capped_and_the_file_compacted(claimed: list[Profile]) -> None:
    p = claim(claimed)
    n = 2 * HISTORY_CAP + 123
    for i in range(n):
        p.add_history(f"line {i}")
        lines_on_disk = (p.path / "history.jsonl").read_text().count("\n")
        assert lines_on_disk <= 2 * HISTORY_CAP
    expected = [f"line {i}" for i in range(n - HISTORY_CAP, n)]
    assert p.history() == expected
    assert Profile(p.name, p.path).history() == expected
    assert lines_on_disk < 2 * HISTORY_CAP - 100  # it was rewritten, not only trimmed in memory
    assert mode(p.path / "history.jsonl") == 0o600


def test_history_survives_a_torn_last_line(claimed: list[Profile]) -> None:
    p = claim(claimed)
    p.add_history("kept")
    with open(p.path / "history.jsonl", "a") as f:
        f.write('"torn by a cra')
    fresh = Profile(p.name, p.path)
    assert fresh.history() == ["kept"]


def test_profile_names_order(config_home: Path) -> None:
    assert profile_names() == []
    root = profiles.profiles_dir()
    for name in ("zed", "10", "2", "default", "alice"):
        (root / name).mkdir(parents=True)
    (root / "stray-file").write_text("")
    assert profile_names() == ["default", "2", "10", "alice", "zed"]
