"""Datasets: a registry of sources (`DATASETS`), each one file here that registers itself
(imported below), and the splits they give (`splits.py`)."""
from . import builtin, cifar, huggingface, imagefolder, webdataset  # noqa: F401  (they register)
from .cache import cache_dir
from .registry import (DATASETS, Dataset, DatasetInfo, DatasetUnavailable, check_val_size, load_dataset,
                       split_sizes)
from .splits import Split, StreamedSplit

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "DatasetUnavailable", "Split", "StreamedSplit",
           "cache_dir", "check_val_size", "load_dataset", "split_sizes"]
