"""One ResNet-50 trial at 224 px, phase by phase, on this machine's CPU: the study's large
setting (torchvision:resnet50 from a weights file, imagefolder data) on a small generated
folder, so the time each phase takes per image can be read off.

    make bench-resnet50
    python bench/bench_resnet50.py --train-images 64 --eval-images 16
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_data import write_image_folder  # noqa: E402

from trainables.attacks import adversarial_examples  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.cost import model_cost  # noqa: E402
from trainables.prune import prune  # noqa: E402
from trainables.train import accuracy, resolve_device, train  # noqa: E402
from trainables.trial import initial_model, load_data  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-images", type=int, default=64)
    ap.add_argument("--eval-images", type=int, default=16, help="validation images the attacks run on")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    phases: list[tuple[str, float, str]] = []

    def timed(name: str, what: str, fn):
        start = time.perf_counter()
        out = fn()
        phases.append((name, time.perf_counter() - start, what))
        return out

    with tempfile.TemporaryDirectory() as d:
        classes = 4
        folder = write_image_folder(Path(d) / "images", classes=classes, train_per_class=args.train_images // classes
                                    + args.eval_images // classes, val_per_class=args.eval_images // classes, size=256)
        weights = Path(d) / "resnet50.pt"
        import torchvision

        torch.save(torchvision.models.resnet50(num_classes=classes).state_dict(), weights)
        cfg = TrialConfig(dataset="imagefolder", data_dir=str(folder), image_size=224, val_size=args.eval_images,
                          eval_size=args.eval_images, calib_size=8, model="torchvision:resnet50",
                          model_weights=str(weights), granularity="filter", criterion="l1", ratio=0.3,
                          finetune={"epochs": 1, "batch_size": 16, "lr": 0.001}, latency={"repeats": 3},
                          attacks=[{"name": "fgsm", "eps": 2 / 255}, {"name": "pgd", "eps": 2 / 255, "steps": 10}])
        device = resolve_device(cfg.device)
        data = timed("load", "scan the folder, build ResNet-50, read the weights file",
                     lambda: load_data(cfg))
        model, _ = timed("load", "", lambda: initial_model(cfg, data))
        subset = data.val.subset(cfg.eval_size, 0)

        def measure(m):
            """Every attack on every image of the subset (timing does not depend on what is
            classified correctly, as the trial's cascade would), clean accuracy and cost."""
            for spec in cfg.attack_specs():
                adversarial_examples(m, spec, subset.x, subset.y, data.num_classes, 0)
            return accuracy(m, data.val, device), model_cost(m, data.shape, device)

        with torch.no_grad():
            model(subset.x[:2])  # first-call setup (thread pools, kernel choice) outside the phases

        timed("baseline measurement", f"FGSM + PGD-10 on {len(subset)} val images, clean on {len(data.val)}, "
              "FLOPs, latency", lambda: measure(model))
        calib = data.train.subset(cfg.calib_size, 1)
        timed("prune", "L1 filters, 30% of each layer's channels, one round",
              lambda: prune(model, cfg.prune_settings(), calib, device, lambda m, r: None))
        timed("fine-tune", f"1 epoch over {len(data.train)} training images (decode, crop, forward, backward)",
              lambda: train(model, data, cfg.finetune.settings(False), 0, device))
        timed("attack", "the same on the pruned network", lambda: measure(model))
    merged: dict[str, list] = {}
    for name, seconds, what in phases:
        entry = merged.setdefault(name, [0.0, what])
        entry[0] += seconds
        entry[1] = entry[1] or what
    total = sum(s for s, _ in merged.values())
    print(f"ResNet-50 at 224 px on {args.threads} CPU threads ({torch.__version__})")
    print("| phase | seconds | share | what |")
    print("|---|---|---|---|")
    for name, (seconds, what) in merged.items():
        print(f"| {name} | {seconds:.1f} | {seconds / total:.0%} | {what} |")
    print(f"| total | {total:.1f} | | |")


if __name__ == "__main__":
    main()
