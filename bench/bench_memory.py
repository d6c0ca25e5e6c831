"""Memory flat in the data's size: peak resident memory of one `robustprune trial` on a
generated ImageFolder of N and of 10 x N images, side by side in one run (streamed splits:
only the bounded subsets are ever in memory, so the two should be within 10%). The
validation split has the same 600 images in both (more than one 512-image evaluation
batch): a split smaller than a batch would make the small run's batches, not its data,
the difference.

    make bench-memory
    python bench/bench_memory.py --images 2000
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_data import write_image_folder  # noqa: E402

CLI = str(Path(sys.executable).parent / "robustprune")


def peak_rss_mb(folder: Path, out: Path) -> tuple[float, float]:
    """(peak resident MB, seconds) of one trial process: ResNet-20 at 32 px, one epoch each."""
    start = time.perf_counter()
    proc = subprocess.Popen([CLI, "trial", "--dataset", "imagefolder", "--data-dir", str(folder), "--image-size", "32",
                             "--model", "resnet20", "--epochs", "1", "--finetune-epochs", "1", "--attacks", "fgsm",
                             "--val-size", "600", "--eval-size", "200", "--test-size", "200", "--quiet",
                             "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"trial failed: {proc.stderr.read()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000, help="the smaller folder; the larger has 10x")
    args = ap.parse_args()
    classes = 10
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in (args.images, 10 * args.images):
            folder = write_image_folder(Path(d) / f"n{n}", classes=classes, train_per_class=n // classes,
                                        val_per_class=max(20, n // classes // 10), size=48)
            rows.append((n, *peak_rss_mb(folder, Path(d) / f"out{n}")))
    print("| training images | peak RSS of the trial, MB | trial wall time, s |")
    print("|---|---|---|")
    for n, mb, s in rows:
        print(f"| {n} | {mb:.0f} | {s:.0f} |")
    print(f"ratio of peak RSS (large / small): {rows[1][1] / rows[0][1]:.3f} (goal: within 10%)")


if __name__ == "__main__":
    main()
