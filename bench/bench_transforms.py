"""Fine-tuning with the preprocessing that suits 32-px data against the recipe every streamed
source had before `data.transforms` (ImageNet's: random-resized crop down to 8 % of the area,
flip; resize to 37 and centre-crop for evaluation), one run, side by side.

Two test-made 32-px image folders (tests/image_data.py): the colours the tests use (40-px
JPEGs read at 32, the quickstart's size), and the edges (32-px PNGs whose class is the edge
holding a line, where a flip or a centre crop destroys the label). Per folder and recipe,
over seeds: a ResNet-20 baseline trained by the tool, pruned by L1 at ratio 0.5 and
fine-tuned; test clean accuracy of both (mean and standard deviation over the seeds).

    python bench/bench_transforms.py --seeds 3 --work /tmp/bt
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_data import write_edge_folder, write_image_folder  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.test_eval import final_evaluation  # noqa: E402
from trainables.trial import load_data, run_trial, train_baseline  # noqa: E402

RECIPES = {"fixed ImageNet recipe (before)": "imagenet", "cifar": "cifar",
           "cifar, no flip": {"train": "cifar", "eval": "cifar", "flip": False}}
FOLDERS = {"colours (40-px JPEGs at 32)": lambda root: write_image_folder(root, size=40),
           "edges (32-px PNGs)": lambda root: write_edge_folder(root)}


def measure(folder: Path, transforms, seed: int) -> tuple[float, float]:
    cfg = TrialConfig(dataset="imagefolder", data_dir=str(folder), image_size=32, val_size=12, eval_size=12,
                      calib_size=8, model="resnet20", seed=seed, transforms=transforms,
                      baseline={"epochs": 10, "lr": 0.05, "batch_size": 16},
                      finetune={"epochs": 8, "lr": 0.01, "batch_size": 16}, ratio=0.5, criterion="l1",
                      attacks=[{"name": "fgsm", "eps": 0.01}], final_attacks=[{"name": "fgsm", "eps": 0.01}],
                      latency={"repeats": 1})
    cpu = torch.device("cpu")
    baseline = train_baseline(cfg)
    pruned = run_trial(cfg, baseline).model
    data = load_data(cfg)
    return tuple(final_evaluation(m, data, cfg, cpu)["test_clean_acc"] for m in (baseline.model(), pruned))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-transforms"))
    args = parser.parse_args()
    start = time.perf_counter()
    print("| folder | recipe | baseline test clean acc | after pruning 50 % + fine-tuning |")
    print("|---|---|---|---|")
    for folder_name, write in FOLDERS.items():
        folder = write(args.work / folder_name.split()[0])
        for recipe, transforms in RECIPES.items():
            runs = [measure(folder, transforms, seed) for seed in range(args.seeds)]
            cells = [f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" for v in zip(*runs)]
            print(f"| {folder_name} | {recipe} | {cells[0]} | {cells[1]} |", flush=True)
    print(f"\n{args.seeds} seeds per row, {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
