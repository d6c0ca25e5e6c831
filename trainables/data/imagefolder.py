"""`data.name: imagefolder`: the ImageNet layout, streamed from disk.

`data_dir/train/<class>/*.jpg` is the training pool (validation is carved out of it by
`val_size`), `data_dir/val/<class>/*.jpg` the test split. Training reads go through the
training transform, every other read through the evaluation one (`transforms.py`).
Decoding runs in `workers` DataLoader processes.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from .registry import Dataset, DatasetUnavailable, register_streamed, streamed_dataset
from .transforms import ResolvedTransforms, build_transforms, streamed_transforms

@lru_cache(maxsize=8)
def _scan(folder: str) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """(classes, ((path, class index), ...)) of one split folder, sorted like torchvision's."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    classes, to_index = find_classes(folder)
    return tuple(classes), tuple(make_dataset(folder, to_index, IMG_EXTENSIONS))


def files_problem(data_dir: str | None, options: dict | None = None) -> str | None:
    if data_dir is None:
        return "imagefolder needs data_dir (a folder holding train/ and val/ class folders)"
    root = Path(data_dir)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            return f"{root / split} not found; imagefolder reads data_dir/train/<class>/ and data_dir/val/<class>/"
    try:
        train_classes, train = _scan(str(root / "train"))
        val_classes, val = _scan(str(root / "val"))
    except (FileNotFoundError, RuntimeError) as e:  # torchvision: no class folder, or a class without images
        return f"{str(e).splitlines()[0]}"
    if train_classes != val_classes:
        odd = sorted(set(train_classes) ^ set(val_classes))[0]
        return (f"train/ and val/ hold different classes ({len(train_classes)} and {len(val_classes)}; "
                f"'{odd}' is in only one)")
    return None


def counts(data_dir: str, options: dict | None = None) -> tuple[int, int]:
    return len(_scan(str(Path(data_dir) / "train"))[1]), len(_scan(str(Path(data_dir) / "val"))[1])


class FolderImages:
    """One split folder's images, decoded with PIL and transformed (the ImageSource of a StreamedSplit)."""

    def __init__(self, folder: str, transforms: ResolvedTransforms):
        _, self.samples = _scan(folder)
        self.labels = torch.tensor([label for _, label in self.samples], dtype=torch.int64)
        self.train_transform, self.eval_transform = build_transforms(transforms)

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int, train: bool) -> torch.Tensor:
        from PIL import Image

        path = self.samples[index][0]
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
        except OSError as e:
            raise DatasetUnavailable(f"data_dir: cannot read image {path}: {str(e).splitlines()[0]}") from None
        return (self.train_transform if train else self.eval_transform)(rgb)


def open_imagefolder(name: str, seed: int, data_dir: str | None, val_size: int | None, image_size: int = 224,
                     workers: int = 0, mean=None, std=None, transforms: ResolvedTransforms | None = None,
                     **_) -> Dataset:
    problem = files_problem(data_dir)
    if problem:
        raise DatasetUnavailable(f"data_dir: {problem}")
    root = Path(data_dir)
    classes = _scan(str(root / "train"))[0]
    transforms = streamed_transforms(transforms, image_size)
    return streamed_dataset(name, FolderImages(str(root / "train"), transforms),
                            FolderImages(str(root / "val"), transforms), len(classes), seed, val_size, workers,
                            mean, std, transforms)


register_streamed("imagefolder", default_eps=4 / 255, opener=open_imagefolder, counts=counts,
                  files_problem=files_problem)
