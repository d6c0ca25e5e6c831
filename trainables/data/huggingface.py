"""`data.name: hf`: a Hugging Face `datasets` dataset, from a folder written by
`save_to_disk` (`data_dir`), or by hub name where the user has network and names one.

Its `train` split is the training pool (validation is carved out of it by `val_size`), its
`test` split (else `validation`) the test split. Images are read from `image_column` (an
Image feature or anything PIL opens), labels from `label_column`; rows are read one by one
from the memory-mapped Arrow files, so nothing is loaded whole.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from .registry import Dataset, DatasetUnavailable, register_streamed, streamed_dataset
from .transforms import ResolvedTransforms, build_transforms, streamed_transforms

TEST_SPLITS = ("test", "validation")


@lru_cache(maxsize=4)
def _splits(data_dir: str):
    """(train split, test split) of the dataset dict."""
    import datasets

    if Path(data_dir).exists():
        loaded = datasets.load_from_disk(data_dir)
    else:  # a hub name: only where the user has network and asked for it by name
        loaded = datasets.load_dataset(data_dir)
    if not isinstance(loaded, datasets.DatasetDict):
        raise DatasetUnavailable(f"{data_dir} holds one split; save a DatasetDict with train and test splits")
    test = next((name for name in TEST_SPLITS if name in loaded), None)
    if "train" not in loaded or test is None:
        raise DatasetUnavailable(f"{data_dir} has splits {', '.join(loaded)}; hf needs train and test "
                                 f"(or validation)")
    return loaded["train"], loaded[test]


def files_problem(data_dir: str | None, options: dict | None = None) -> str | None:
    image_column = (options or {}).get("image_column", "image")
    label_column = (options or {}).get("label_column", "label")
    if data_dir is None:
        return "hf needs data_dir (a folder written by save_to_disk, or a hub dataset name)"
    try:
        train, _ = _splits(data_dir)
    except DatasetUnavailable as e:
        return str(e)
    except Exception as e:  # not a save_to_disk folder; a hub name without network or unknown there
        where = "a folder not written by save_to_disk" if Path(data_dir).exists() else \
            "no such folder, nor a hub dataset this machine can load"
        return f"{data_dir}: {where} ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]})"
    for field, column in (("image_column", image_column), ("label_column", label_column)):
        if column not in train.column_names:
            return f"{field} '{column}' is not a column of {data_dir}; its columns: {', '.join(train.column_names)}"
    return None


def counts(data_dir: str, options: dict | None = None) -> tuple[int, int]:
    train, test = _splits(data_dir)
    return len(train), len(test)


class HubImages:
    """One split's rows, their images decoded and transformed (the ImageSource of a StreamedSplit)."""

    def __init__(self, split, image_column: str, label_column: str, transforms: ResolvedTransforms):
        self.split, self.image_column = split, image_column
        self.labels = torch.as_tensor(split[label_column], dtype=torch.int64)
        self.train_transform, self.eval_transform = build_transforms(transforms)

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int, train: bool) -> torch.Tensor:
        from PIL import Image

        value = self.split[index][self.image_column]
        image = value if isinstance(value, Image.Image) else Image.open(value)
        return (self.train_transform if train else self.eval_transform)(image.convert("RGB"))


def open_hf(name: str, seed: int, data_dir: str | None, val_size: int | None, image_size: int = 224,
            workers: int = 0, mean=None, std=None, image_column: str = "image", label_column: str = "label",
            transforms: ResolvedTransforms | None = None, **_) -> Dataset:
    problem = files_problem(data_dir, {"image_column": image_column, "label_column": label_column})
    if problem:
        raise DatasetUnavailable(f"data_dir: {problem}")
    train, test = _splits(data_dir)
    transforms = streamed_transforms(transforms, image_size)
    pool = HubImages(train, image_column, label_column, transforms)
    held_out = HubImages(test, image_column, label_column, transforms)
    feature = train.features[label_column]
    classes = getattr(feature, "num_classes", None) or int(pool.labels.max()) + 1
    return streamed_dataset(name, pool, held_out, classes, seed, val_size, workers, mean, std, transforms)


register_streamed("hf", default_eps=4 / 255, opener=open_hf, counts=counts, files_problem=files_problem)
