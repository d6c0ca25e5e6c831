"""Does structural pruning really make the network faster? FLOPs ratio vs measured latency
ratio of pruned / unpruned models, measured side by side in one run (machines are noisy).

    make bench                 # CPU, and CUDA too when a GPU is present
    python bench/bench_trial.py --models resnet20,resnet56 --repeats 50
"""
from __future__ import annotations

import argparse

import torch

from trainables.cost import count_flops, latency_ms
from trainables.data import Split
from trainables.models import build_model
from trainables.prune import PruneSettings, prune

SETTINGS = [PruneSettings("filter", "l1", 0.3, 1), PruneSettings("filter", "l1", 0.5, 1),
            PruneSettings("filter", "l1", 0.7, 1), PruneSettings("layer", "l1", 0.5, 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet20,resnet56,mobilenetv2")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=1)
    args = ap.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    shape = (3, 32, 32)
    calib = Split(torch.rand(32, *shape), torch.arange(32) % 10)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch_size}")
    print(f"{'model':<12} {'pruning':<16} {'device':<6} {'flops ratio':>11} {'latency ms':>11} "
          f"{'base ms':>8} {'latency ratio':>13}")
    for name in args.models.split(","):
        arch = {"name": name, "in_channels": 3, "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3}
        for s in SETTINGS:
            if s.granularity == "layer" and name not in ("resnet20", "resnet56", "mobilenetv2"):
                continue
            torch.manual_seed(0)
            base = build_model(**arch).eval()
            pruned = build_model(**arch).eval()
            pruned.load_state_dict(base.state_dict())
            prune(pruned, s, calib, torch.device("cpu"), finetune=lambda m, r: None)
            flops_ratio = count_flops(pruned, shape) / count_flops(base, shape)
            for dev in devices:
                # interleave base / pruned measurements so drift hits both equally
                b, p = [], []
                for _ in range(3):
                    b.append(latency_ms(base, shape, dev, args.repeats, batch_size=args.batch_size))
                    p.append(latency_ms(pruned, shape, dev, args.repeats, batch_size=args.batch_size))
                b_ms, p_ms = sorted(b)[1], sorted(p)[1]
                label = f"{s.granularity} {s.ratio:.1f}"
                print(f"{name:<12} {label:<16} {dev.type:<6} {flops_ratio:>11.3f} {p_ms:>11.3f} {b_ms:>8.3f} "
                      f"{p_ms / b_ms:>13.3f}", flush=True)
                base.cpu(), pruned.cpu()


if __name__ == "__main__":
    main()
