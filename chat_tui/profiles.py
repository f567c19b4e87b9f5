"""Profiles: one saved identity (per server) and input history per chat-tui user.

A profile is a directory ``<config_dir>/tui/profiles/<name>/`` holding
``tokens.json`` (identity token per server, mode 0600), ``history.jsonl``
(input history, one JSON string per line, mode 0600) and ``lock``.

A running chat-tui holds an OS advisory lock on its profile's ``lock`` file
for as long as the process lives, so several terminals started with no flags
become several users (``default``, ``2``, ``3``, ...), and a crashed chat-tui
never leaves a stale lock: the OS drops the lock with the process.

Screenshots (ctrl+p -> Screenshot) go to ``screenshots_dir()``: the user's downloads
folder or pictures folder if it exists, else ``<data dir>/screenshots``, created.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import sys
from pathlib import Path

import platformdirs

from chat_server.tokens import config_dir, default_data_dir, server_key, write_private

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
HISTORY_CAP = 500
DEFAULT_PROFILE = "default"

_TOKENS = "tokens.json"
_HISTORY = "history.jsonl"
_LOCK = "lock"
# On Windows msvcrt locks are mandatory for the locked bytes, so lock one byte far past the pid
# (allowed beyond end of file) to keep the pid readable by the process that gets ProfileBusy.
_WIN_LOCK_OFFSET = 1 << 30


class ProfileBusy(Exception):
    """The named profile is in use by another running chat-tui (the message says so and suggests --profile)."""


def profiles_dir() -> Path:
    """``<config_dir>/tui/profiles``, resolved at call time (so XDG_CONFIG_HOME set later counts)."""
    return config_dir() / "tui" / "profiles"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid profile name, else raise ValueError saying what is allowed."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(
            f"invalid profile name {name!r}: use 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


@dataclasses.dataclass
class Profile:
    """A profile directory. Objects from ``claim_profile`` hold its lock until ``release()`` or process exit."""

    name: str
    path: Path
    _lock_fd: int | None = dataclasses.field(default=None, repr=False, compare=False)
    _history: list[str] | None = dataclasses.field(default=None, repr=False, compare=False)
    _history_lines: int = dataclasses.field(default=0, repr=False, compare=False)

    # -- tokens ------------------------------------------------------------------------------
    def _tokens(self) -> dict[str, str]:
        try:
            data = json.loads((self.path / _TOKENS).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}

    def token(self, server: str) -> str | None:
        """The identity token saved for ``server`` (any URL form; keyed by host:port), or None."""
        return self._tokens().get(server_key(server))

    def save_token(self, server: str, token: str) -> None:
        """Save ``token`` for ``server``: written atomically (temp file + rename), mode 0600."""
        _make_private_dir(self.path)
        data = self._tokens()
        data[server_key(server)] = token
        write_private(self.path / _TOKENS, json.dumps(data, indent=1, sort_keys=True))

    # -- history -----------------------------------------------------------------------------
    def history(self) -> list[str]:
        """Input history, oldest first (at most HISTORY_CAP entries), as kept across runs."""
        return list(self._load_history())

    def add_history(self, line: str) -> None:
        """Append ``line`` unless it is empty or equals the previous entry; persisted at once.

        The file is append-only (one JSON string per line, so multi-line entries round-trip)
        and is rewritten with the last HISTORY_CAP entries once it grows past twice that.
        """
        entries = self._load_history()
        if not line or (entries and entries[-1] == line):
            return
        entries.append(line)
        del entries[:-HISTORY_CAP]
        _make_private_dir(self.path)
        path = self.path / _HISTORY
        if self._history_lines + 1 > 2 * HISTORY_CAP:
            write_private(path, "".join(json.dumps(e) + "\n" for e in entries))
            self._history_lines = len(entries)
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # One write per entry so a crash can tear at most the last line (skipped on load).
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)
        self._history_lines += 1

    def _load_history(self) -> list[str]:
        if self._history is None:
            entries: list[str] = []
            lines = 0
            try:
                with open(self.path / _HISTORY, encoding="utf-8", errors="replace") as f:
                    for raw in f:
                        lines += 1
                        try:
                            entry = json.loads(raw)
                        except ValueError:
                            continue  # a line torn by a crash mid-write
                        if isinstance(entry, str) and entry and (not entries or entries[-1] != entry):
                            entries.append(entry)
            except FileNotFoundError:
                pass
            self._history = entries[-HISTORY_CAP:]
            self._history_lines = lines
        return self._history

    # -- lock --------------------------------------------------------------------------------
    def release(self) -> None:
        """Drop the lock (a no-op if not held). Process exit releases it too."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            if sys.platform == "win32":
                _win_unlock(fd)
            os.close(fd)


def claim_profile(name: str | None = None) -> Profile:
    """Lock and return a profile.

    With ``name``: that profile (created if new), or ProfileBusy if another chat-tui holds it.
    Without: the first free one of ``default``, ``2``, ``3``, ...
    """
    if name is not None:
        validate_name(name)
        profile = _try_claim(name)
        if isinstance(profile, Profile):
            return profile
        others = [n for n in profile_names() if n != name]
        hint = f" (existing: {', '.join(others)})" if others else ""
        raise ProfileBusy(
            f"profile {name!r} is in use by another chat-tui (pid {profile}); "
            f"start with --profile NAME to use another profile{hint}"
        )
    for n in itertools.count(1):
        candidate = DEFAULT_PROFILE if n == 1 else str(n)
        claimed = _try_claim(candidate)
        if isinstance(claimed, Profile):
            return claimed
    raise AssertionError("unreachable")


def profile_names() -> list[str]:
    """Names of the existing profiles: ``default`` first, then numbered ones in order, then the rest."""
    try:
        names = [p.name for p in profiles_dir().iterdir() if p.is_dir() and NAME_RE.match(p.name)]
    except FileNotFoundError:
        return []

    def order(n: str) -> tuple[int, int, str]:
        if n == DEFAULT_PROFILE:
            return (0, 0, n)
        return (1, int(n), n) if n.isdigit() else (2, 0, n)

    return sorted(names, key=order)


def screenshots_dir() -> Path:
    """Where a screenshot is saved: the user's downloads folder (Textual's own choice) or else
    pictures folder, whichever exists first, else ``<data dir>/screenshots``, created private
    (a screenshot shows the chat). OSError if that cannot be created."""
    for folder in (platformdirs.user_downloads_path(), platformdirs.user_pictures_path()):
        if folder.is_dir():
            return folder
    path = default_data_dir() / "screenshots"
    _make_private_dir(path)
    return path


def _make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if sys.platform != "win32":
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask; tokens live here


def _try_claim(name: str) -> Profile | str:
    """The locked profile, or the holder's pid (text, "unknown" if not yet written) if it is busy."""
    path = profiles_dir() / name
    _make_private_dir(path)
    # os.open makes the descriptor non-inheritable, so a server started by this chat-tui
    # (which outlives it) never keeps the profile locked.
    fd = os.open(path / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    if not _lock(fd):
        try:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        except OSError:
            holder = "unknown"
        os.close(fd)
        return holder
    # Truncate only once the lock is ours: the holder's pid must survive a failed claim.
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, str(os.getpid()).encode())
    return Profile(name=name, path=path, _lock_fd=fd)


def _lock(fd: int) -> bool:
    """Try to take an exclusive advisory lock on ``fd`` without blocking; True if taken."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True
    import fcntl

    # flock locks belong to the open file description, so a second claim in this same
    # process (a new os.open) conflicts too: two apps in one process are two users.
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _win_unlock(fd: int) -> None:
    if sys.platform == "win32":  # the check lets type checkers on other systems skip msvcrt
        import msvcrt

        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass


__all__ = ["Profile", "ProfileBusy", "claim_profile", "profile_names", "screenshots_dir", "validate_name",
           "HISTORY_CAP"]
