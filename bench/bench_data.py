"""The imagefolder pipeline's speed against torchvision's own, side by side in one run.

Both read the same generated folder of JPEGs (ImageNet-like sizes) with the same training
transforms (random-resized crop to 224 + flip, to a tensor) through a DataLoader with the
same worker processes and batch size; each loop is timed over whole passes, alternating
the two (and which goes first), and the ratio of their images/s is printed per worker count. Goal: >= 0.95 (our
wrapping costs nothing).

    make bench-data
    python bench/bench_data.py --images 2000 --workers 0 1 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_data import write_image_folder  # noqa: E402

from trainables.data import load_dataset  # noqa: E402


def bare_loader(folder: Path, workers: int, batch: int):
    from torchvision import datasets, transforms as T

    tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
    dataset = datasets.ImageFolder(str(folder / "train"), transform=tf)
    return lambda: torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers)


def our_loader(folder: Path, workers: int, batch: int):
    data = load_dataset("imagefolder", data_dir=str(folder), image_size=224, workers=workers, val_size=1)
    return lambda: data.train.batches(batch, torch.Generator().manual_seed(0), shuffle=True, augment=True)


def images_per_s(make_batches) -> float:
    start, n = time.perf_counter(), 0
    for x, _ in make_batches():
        n += len(x)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1200, help="training images in the generated folder")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        classes = 4
        folder = write_image_folder(Path(d), classes=classes, train_per_class=args.images // classes,
                                    val_per_class=2, size=320)
        print(f"{args.images} JPEGs of 320x320 px, crop 224, batch {args.batch}, {args.repeats} passes each, "
              f"alternating")
        print("| workers | torchvision ImageFolder, img/s | robustprune imagefolder, img/s | ratio |")
        print("|---|---|---|---|")
        for workers in args.workers:
            bare, ours = bare_loader(folder, workers, args.batch), our_loader(folder, workers, args.batch)
            times = {"bare": [], "ours": []}
            for r in range(args.repeats):  # which goes first alternates too (page cache, CPU clock)
                for name in (("bare", "ours") if r % 2 == 0 else ("ours", "bare")):
                    times[name].append(images_per_s(bare if name == "bare" else ours))
            b, o = statistics.median(times["bare"]), statistics.median(times["ours"])
            print(f"| {workers} | {b:.0f} | {o:.0f} | {o / b:.3f} |", flush=True)


if __name__ == "__main__":
    main()
