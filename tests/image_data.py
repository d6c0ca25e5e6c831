"""Test-made image data: an ImageFolder of JPEGs whose classes are learnable (each class a
colour, plus noise), in the ImageNet layout (train/<class>/, val/<class>/)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 220), (230, 210, 40)]


def colour(c: int) -> np.ndarray:
    """Class c's colour: four fixed ones, then seeded random ones."""
    return np.array(COLOURS[c] if c < len(COLOURS) else np.random.default_rng(1000 + c).integers(0, 256, 3))


def write_image_folder(root: Path, classes: int = 3, train_per_class: int = 24, val_per_class: int = 8,
                       size: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.clip(colour(c) + rng.normal(0, 40, (size, size, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=90)
    return root


def write_hf_dataset(root: Path, classes: int = 3, train_per_class: int = 20, test_per_class: int = 6,
                     size: int = 24, seed: int = 0) -> Path:
    """The same colours as a Hugging Face DatasetDict (Image and ClassLabel features), saved to disk."""
    import datasets

    rng = np.random.default_rng(seed)

    def rows(count):
        images, labels = [], []
        for c in range(classes):
            for _ in range(count):
                pixels = np.clip(colour(c) + rng.normal(0, 40, (size, size, 3)), 0, 255)
                images.append(Image.fromarray(pixels.astype(np.uint8)))
                labels.append(c)
        return {"img": images, "fine_label": labels}

    features = datasets.Features({"img": datasets.Image(),
                                  "fine_label": datasets.ClassLabel(names=[f"c{c}" for c in range(classes)])})
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(train_per_class), features=features),
                               "test": datasets.Dataset.from_dict(rows(test_per_class), features=features)})
    dd.save_to_disk(str(root))
    return root


def write_shards(folder: Path, prefix: str, classes: int = 3, per_class: int = 20, shards: int = 3,
                 size: int = 24, seed: int = 0) -> str:
    """The same colours as WebDataset tar shards (`<key>.jpg` + `<key>.cls`), samples dealt
    round-robin to `shards` files; returns their brace pattern."""
    import io
    import tarfile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tars = [tarfile.open(folder / f"{prefix}-{s:03d}.tar", "w") for s in range(shards)]
    for n in range(classes * per_class):
        c = n % classes
        pixels = np.clip(colour(c) + rng.normal(0, 40, (size, size, 3)), 0, 255)
        jpeg = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(jpeg, format="JPEG", quality=90)
        for ext, data in (("jpg", jpeg.getvalue()), ("cls", str(c).encode())):
            member = tarfile.TarInfo(f"sample{n:05d}.{ext}")
            member.size = len(data)
            tars[n % shards].addfile(member, io.BytesIO(data))
    for tar in tars:
        tar.close()
    return str(folder / f"{prefix}-{{000..{shards - 1:03d}}}.tar")


def check_a_small_trial_runs(splits: dict, **data_fields) -> None:
    """A ResNet-20 trial on these test-made colours: its split sizes, a baseline that learned
    them, and a pruned model whose robust accuracy is at most its clean accuracy."""
    from trainables.config import TrialConfig
    from trainables.trial import run_trial, train_baseline

    cfg = TrialConfig(**data_fields, val_size=12, model="resnet20",
                      baseline={"epochs": 5, "lr": 0.05, "batch_size": 16}, finetune={"epochs": 1, "batch_size": 16}, eval_size=12, calib_size=8, latency={"repeats": 1},
                      ratio=0.3, attacks=[{"name": "fgsm"}])
    assert cfg.records()["splits"] == {**splits, "val": 12, "eval": 12, "test_eval": splits["test"], "calibration": 8}
    result = run_trial(cfg, baseline := train_baseline(cfg))
    assert baseline.metrics["clean_acc"] > 0.5  # three colours: learnable in a few epochs
    assert 0 < result.metrics["flops_reduction"] < 1 and result.metrics["robust_acc"] <= result.metrics["clean_acc"]


EDGES = ("top", "bottom", "left", "right")


def write_edge_folder(root: Path, train_per_class: int = 24, val_per_class: int = 10, size: int = 32,
                      line: int = 2, seed: int = 0) -> Path:
    """32-px PNGs whose class is the edge holding a bright line `line` pixels wide, on dark
    noise: a centre crop after a resize (ImageNet's evaluation) cuts the line away, so the
    preprocessing a model is measured with decides its accuracy."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c, edge in enumerate(EDGES):
            folder = root / split / f"{c}_{edge}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.uniform(0, 60, (size, size, 3))
                where = {"top": np.s_[:line], "bottom": np.s_[-line:], "left": np.s_[:, :line],
                         "right": np.s_[:, -line:]}[edge]
                pixels[where] = 250
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:04d}.png")
    return root
