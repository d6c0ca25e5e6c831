"""CIFAR-10 / CIFAR-100 from the official python batches in `data_dir` (downloaded only
when the user asks: `download: true`)."""
from __future__ import annotations

import hashlib
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from .registry import DatasetUnavailable, register


CIFAR_ARCHIVES = {
    # name: (folder inside data_dir, archive, md5 of the archive, train files, test files, label key)
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 ["train"], ["test"], b"fine_labels"),
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"


def cifar_missing_files(name: str, data_dir: str | Path) -> list[Path]:
    folder, _, _, train, test, _ = CIFAR_ARCHIVES[name]
    root = Path(data_dir) / folder
    return [root / f for f in train + test if not (root / f).is_file()]


def download_cifar(name: str, data_dir: str | Path) -> None:
    """Explicit, user-requested download; the archive's md5 is checked before unpacking."""
    folder, archive, md5, *_ = CIFAR_ARCHIVES[name]
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / archive
    if not target.exists():
        partial = target.with_suffix(".part")
        urllib.request.urlretrieve(CIFAR_URL + archive, partial)
        partial.rename(target)
    digest = hashlib.md5(target.read_bytes()).hexdigest()
    if digest != md5:
        raise DatasetUnavailable(f"data.download: {target} has md5 {digest}, expected {md5}")
    with tarfile.open(target) as tar:
        tar.extractall(data_dir, filter="data")


def _load_cifar(name: str, data_dir: str | None, download: bool = False, **_):
    if data_dir is None:
        raise DatasetUnavailable(f"data_dir: {name} needs data_dir (a folder holding "
                                 f"{CIFAR_ARCHIVES[name][0]}/)")
    if download and cifar_missing_files(name, data_dir):
        download_cifar(name, data_dir)
    missing = cifar_missing_files(name, data_dir)
    if missing:
        raise DatasetUnavailable(
            f"data_dir: {name} files missing ({missing[0]}); unpack {CIFAR_ARCHIVES[name][1]} "
            f"from {CIFAR_URL} into {data_dir} or pass --download")
    folder, _, _, train, test, label_key = CIFAR_ARCHIVES[name]

    def read(files):
        xs, ys = [], []
        for f in files:
            with open(Path(data_dir) / folder / f, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")  # official format: dicts of numpy arrays
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key], dtype=np.int64))
        return np.concatenate(xs) / 255.0, np.concatenate(ys)

    x, y = read(train)
    xt, yt = read(test)
    return x, y, xt, yt


def _files_problem(name: str, data_dir: str) -> str | None:
    missing = cifar_missing_files(name, data_dir)
    return (f"{name} file missing: {missing[0]}; unpack the official python batches there or set "
            f"download: true") if missing else None


for _name in CIFAR_ARCHIVES:
    register(_name, default_eps=8 / 255, size=50000, side=32, test_size=10000, default_transforms="cifar",
             needs_files=True,
             files_problem=lambda data_dir, options, _n=_name: _files_problem(_n, data_dir))(
        lambda _n=_name, **kw: _load_cifar(_n, **kw))
