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

from .config import ConfigError

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
        stale = owner.get("host") == me["host"] and not _alive(int(owner.get("pid", 0)))
        if not stale:
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
