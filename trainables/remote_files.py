"""Files named by a local path or an `s3://` / `gs://` URL, read through pyarrow's filesystems
(what Ray's storage uses too), so weights and data can live where every node reaches them."""
from __future__ import annotations

import os


def is_remote(location: str) -> bool:
    return "://" in str(location)


def filesystem(location: str):
    """(pyarrow filesystem, path in it)."""
    import pyarrow.fs

    if not is_remote(location):
        return pyarrow.fs.LocalFileSystem(), os.path.abspath(location)
    return pyarrow.fs.FileSystem.from_uri(str(location))


def file_stamp(location: str) -> tuple[int, int] | None:
    """(size, modification time in ns) of a file, or None when there is no file there."""
    import pyarrow.fs

    fs, path = filesystem(location)
    info = fs.get_file_info(path)
    if info.type != pyarrow.fs.FileType.File:
        return None
    return info.size, info.mtime_ns or 0


def read_bytes(location: str) -> bytes:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read()
