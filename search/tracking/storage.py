"""Small files under the search's storage path: local folder, NFS mount or cloud URI,
all through pyarrow's filesystems (as Ray's own storage is).

Calls on a cloud URI are bounded: pyarrow's GCS client retries for many minutes when the
network or the credentials are missing, and a user deserves one line instead of a hang.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

import pyarrow.fs

CLOUD_TIMEOUT_S = 30.0
T = TypeVar("T")


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _bounded(uri: str, call: Callable[[], T]) -> T:
    """`call()`, or OSError when a cloud URI gives no answer within CLOUD_TIMEOUT_S (the
    stuck call is left on a daemon thread; it cannot keep the process alive)."""
    if is_local(uri):
        return call()
    box: dict = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True, name="robustprune-storage")
    worker.start()
    worker.join(CLOUD_TIMEOUT_S)
    if worker.is_alive():
        raise OSError(f"no answer from {uri} within {CLOUD_TIMEOUT_S:g} s (offline, or no credentials?)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _resolve(folder_uri: str, name: str) -> tuple[pyarrow.fs.FileSystem, str, str]:
    fs, folder = pyarrow.fs.FileSystem.from_uri(folder_uri)
    folder = folder.rstrip("/")
    return fs, folder, f"{folder}/{name}"


def write_bytes(folder_uri: str, name: str, data: bytes) -> None:
    def call():
        fs, folder, path = _resolve(folder_uri, name)
        fs.create_dir(folder, recursive=True)
        with fs.open_output_stream(path) as f:
            f.write(data)

    _bounded(folder_uri, call)


def read_bytes(folder_uri: str, name: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    def call():
        fs, _, path = _resolve(folder_uri, name)
        if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
            return None
        with fs.open_input_stream(path) as f:
            return f.read()

    return _bounded(folder_uri, call)


def check_reachable(folder_uri: str) -> None:
    """OSError when the (cloud) storage cannot be listed: unknown scheme, no network, no
    credentials, no bucket."""
    def call():
        fs, folder = pyarrow.fs.FileSystem.from_uri(folder_uri)
        fs.get_file_info(folder.split("/", 1)[0])  # the bucket

    _bounded(folder_uri, call)
