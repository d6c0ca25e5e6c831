"""One driver per search: `run` and `resume` hold a lock file in the experiment folder.

The lock names its owner (host, pid). It is stale, and taken over, when its owner is a
process of this host that no longer runs (a driver killed with SIGKILL); a lock held from
another host is never broken automatically: the message says which file to delete once
that driver is known to be gone. Local folders and NFS mounts only (atomic O_EXCL create);
searches stored at a cloud URI are not locked.
"""
from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from ..config import ConfigError

LOCK_FILE = "robustprune.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _owner(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return None


def _create(lock: Path, me: dict) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    return True


def _is_stale(owner: dict) -> bool:
    return owner.get("host") == socket.gethostname() and not _alive(int(owner.get("pid", 0)))


def driver_state(experiment_path: str) -> str:
    """For a search whose parent run is still RUNNING: 'running' (its driver holds the lock),
    'dead' (the lock's owner died on this host, or no lock is left) or 'unknown' (another
    host's driver, or a cloud URI)."""
    if "://" in experiment_path:
        return "unknown"
    owner = _owner(Path(experiment_path) / LOCK_FILE)
    if owner is None:
        return "dead"
    if owner.get("host") != socket.gethostname():
        return "unknown"
    return "dead" if _is_stale(owner) else "running"


@contextmanager
def search_lock(experiment_path: str):
    """Hold the experiment's lock for the block; ConfigError (one line) if another driver has it."""
    if "://" in experiment_path:
        yield
        return
    folder = Path(experiment_path)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    if not _create(lock, me):
        owner = _owner(lock) or {}
        if not _is_stale(owner):
            raise ConfigError(f"experiment_path: another driver (host {owner.get('host', '?')}, pid "
                              f"{owner.get('pid', '?')}) is running this search; wait for it, or delete {lock} "
                              f"if it is gone")
        lock.unlink(missing_ok=True)  # its owner died without releasing it
        if not _create(lock, me):
            raise ConfigError(f"experiment_path: another driver took {lock} just now; one driver per search")
    try:
        yield
    finally:
        if _owner(lock) == me:
            lock.unlink(missing_ok=True)
