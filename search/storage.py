"""Small files under the search's storage path: local folder, NFS mount or cloud URI,
all through pyarrow's filesystems (as Ray's own storage is)."""
from __future__ import annotations

import pyarrow.fs


def _resolve(folder_uri: str, name: str) -> tuple[pyarrow.fs.FileSystem, str, str]:
    fs, folder = pyarrow.fs.FileSystem.from_uri(folder_uri)
    folder = folder.rstrip("/")
    return fs, folder, f"{folder}/{name}"


def write_bytes(folder_uri: str, name: str, data: bytes) -> None:
    fs, folder, path = _resolve(folder_uri, name)
    fs.create_dir(folder, recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def read_bytes(folder_uri: str, name: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    fs, _, path = _resolve(folder_uri, name)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()
