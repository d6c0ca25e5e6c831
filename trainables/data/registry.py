"""Dataset registry: a name -> how its images are read, split and described.

Every dataset gives float images in [0, 1] (N, C, H, W) with int64 labels, split into
seeded, deterministic train / val / test parts. Normalization is *not* applied here: it is
a layer inside the model, so attacks work in pixel space. Small datasets are loaded into
memory whole (`register`); folder-scale ones are streamed (`register_streamed`): their
splits hold indices and read images when a batch or a bounded subset is asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from ..registry import one_of
from .splits import ImageSource, Split, StreamedSplit
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, ResolvedTransforms, build_transforms, in_memory_augment,
                         preset_transforms, transform_batch)


class DatasetUnavailable(ValueError):
    """The dataset's files are missing or corrupt; the message says where to put them."""


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split | StreamedSplit
    val: Split | StreamedSplit
    test: Split | StreamedSplit
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool  # training batches go through the training transform
    shape: tuple[int, int, int]  # (C, H, W) the model sees


@dataclass(frozen=True)
class DatasetInfo:
    default_eps: float  # pixel-space L-inf budget usual for this dataset
    loader: Callable[..., tuple] | None = None  # in memory: (**options) -> (x, y, x_test|None, y_test|None)
    size: int | None = None  # in memory: images the loader returns besides an official test split
    test_size: int | None = None  # the official test split's size; None: carved out of `size`
    default_transforms: str = "none"  # in memory: the preset used when none is configured
    side: int | None = None  # in memory: the images' side
    needs_files: bool = False  # read from data_dir
    # (data_dir, options) -> one line saying what is wrong with the files, or None
    files_problem: Callable[[str, dict], str | None] = lambda data_dir, options: None
    opener: Callable[..., Dataset] | None = None  # streamed: (name, seed, data_dir, val_size, **options)
    # streamed: (data_dir, options) -> (train pool, test) images
    counts: Callable[[str, dict], tuple[int, int]] | None = None

    def split_sizes(self, val_size: int | None = None, data_dir: str | None = None,
                    options: dict | None = None) -> dict[str, int]:
        """Known before loading (streamed: from the folder's listing), so configs are checked up front."""
        if self.counts is not None:
            pool, test = self.counts(data_dir, options or {})
            return split_sizes(pool, test, val_size)
        return split_sizes(self.size, self.test_size, val_size)


TEST_FRACTION = 0.1  # of the data, when a dataset has no official test split
VAL_FRACTION = 0.1  # of the remaining training data, unless val_size is given


def split_sizes(size: int, official_test: int | None, val_size: int | None) -> dict[str, int]:
    """{train, val, test} sizes of `size` images (plus an official test split, if any)."""
    test = official_test if official_test is not None else int(round(TEST_FRACTION * size))
    pool = size if official_test is not None else size - test
    val = int(round(VAL_FRACTION * pool)) if val_size is None else val_size
    return {"train": pool - val, "val": val, "test": test}


def check_val_size(name: str, val_size: int | None, data_dir: str | None = None,
                   options: dict | None = None) -> None:
    sizes = DATASETS[name].split_sizes(val_size, data_dir, options)
    pool = sizes["train"] + sizes["val"]
    if not 0 < sizes["val"] < pool:
        raise ValueError(f"got {sizes['val']}; allowed: 1..{pool - 1} ({name} has {pool} training images)")


DATASETS: dict[str, DatasetInfo] = {}


def register(name: str, default_eps: float, size: int, side: int, test_size: int | None = None,
             default_transforms: str = "none", needs_files: bool = False,
             files_problem: Callable[[str, dict], str | None] = lambda data_dir, options: None):
    """An in-memory dataset: the decorated loader returns its arrays."""
    def wrap(fn):
        DATASETS[name] = DatasetInfo(default_eps, fn, size, test_size, default_transforms, side, needs_files,
                                     files_problem)
        return fn
    return wrap


def register_streamed(name: str, default_eps: float, opener: Callable[..., Dataset],
                      counts: Callable[[str, dict], tuple[int, int]],
                      files_problem: Callable[[str, dict], str | None]) -> None:
    DATASETS[name] = DatasetInfo(default_eps, needs_files=True, files_problem=files_problem, opener=opener,
                                 counts=counts)


def streamed_dataset(name: str, pool: ImageSource, test: ImageSource, num_classes: int, seed: int,
                     val_size: int | None, workers: int, mean, std, transforms: ResolvedTransforms,
                     split_type: type[StreamedSplit] = StreamedSplit) -> Dataset:
    """A streamed dataset: validation held out of the training pool (seeded), `test` whole;
    normalized by `mean`/`std`, else ImageNet's statistics."""
    perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    n_val = split_sizes(len(pool), 0, val_size)["val"]
    side = transforms.image_size
    return Dataset(name, split_type(pool, perm[n_val:], workers), split_type(pool, perm[:n_val], workers),
                   split_type(test, torch.arange(len(test)), workers), num_classes,
                   tuple(mean or IMAGENET_MEAN), tuple(std or IMAGENET_STD), True, (3, side, side))


_CACHE: dict[tuple, Dataset] = {}


def load_dataset(name: str, seed: int = 0, data_dir: str | None = None, download: bool = False,
                 val_size: int | None = None, **options) -> Dataset:
    """Load a registered dataset with seeded train/val/test splits (cached per process).

    The validation split (`val_size` images, default 10%) is held out of the training
    data: nothing is trained or fine-tuned on it; the search selects on it.
    """
    one_of(name, DATASETS, "dataset")
    key = (name, seed, data_dir, val_size, tuple(sorted(options.items())))
    if key not in _CACHE:
        info = DATASETS[name]
        if info.opener is not None:
            _CACHE[key] = info.opener(name, seed=seed, data_dir=data_dir, val_size=val_size, **options)
        else:
            _CACHE[key] = _in_memory(name, info, seed, data_dir, download, val_size, options)
    return _CACHE[key]


def _in_memory(name: str, info: DatasetInfo, seed: int, data_dir: str | None, download: bool,
               val_size: int | None, options: dict) -> Dataset:
    """Splits held as tensors: the training split raw (its batches go through the training
    transform), validation and test through the evaluation transform once, here."""
    options = dict(options)
    transforms = options.pop("transforms", None)
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
    side = int(x.shape[-1])
    transforms = replace(transforms or preset_transforms(side, info.default_transforms), image_size=side)
    train_transform, eval_transform = build_transforms(transforms)
    augment = transforms.augments()
    train = Split(x[perm[n_val:]], y[perm[n_val:]], in_memory_augment(transforms, train_transform))
    val = Split(x[perm[:n_val]], y[perm[:n_val]])
    if transforms.evaluation_changes_images():
        val, test = (Split(transform_batch(s.x, eval_transform, None), s.y) for s in (val, test))
    mean = tuple(train.x.mean(dim=(0, 2, 3)).tolist())
    std = tuple(train.x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    c, h, w = train.x.shape[1:]
    return Dataset(name, train, val, test, int(y.max()) + 1, mean, std, augment, (int(c), int(h), int(w)))
