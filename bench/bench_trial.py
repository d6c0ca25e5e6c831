"""Does structural pruning make the network as much faster as its FLOPs say? FLOPs ratio
against measured latency ratio (pruned / unpruned) on each runtime (eager PyTorch,
TorchScript, ONNX Runtime) at batch 1 and 32, with and without channel rounding; pruned
and unpruned timed in turns in one run (machines are noisy; trainables/latency.py).

    make bench                 # CPU (the threads torch uses), the table in bench/latency.md
    python bench/bench_trial.py --models resnet20 --ratios 0.5 --repeats 10
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from trainables.cost import count_flops
from trainables.data import Split
from trainables.latency import RUNTIMES, LatencySettings, machine_description, measure_latency
from trainables.models import build_model
from trainables.prune import PruneSettings, prune

SHAPE = (3, 32, 32)


def pruned_pair(name: str, ratio: float, round_to: int | None) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """(unpruned, pruned by l1 filters at `ratio`, FLOPs ratio), random weights of seed 0."""
    arch = {"name": name, "in_channels": 3, "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3}
    torch.manual_seed(0)
    base = build_model(**arch).eval()
    pruned = build_model(**arch).eval()
    pruned.load_state_dict(base.state_dict())
    calib = Split(torch.rand(32, *SHAPE), torch.arange(32) % 10)
    prune(pruned, PruneSettings("filter", "l1", ratio, 1, round_to=round_to), calib, torch.device("cpu"),
          finetune=lambda m, r: None)
    return base, pruned, count_flops(pruned, SHAPE) / count_flops(base, SHAPE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet20,resnet56,mobilenetv2")
    ap.add_argument("--ratios", default="0.3,0.5,0.7", help="filter ratios (l1)")
    ap.add_argument("--round-to", default="none,8", help="channel rounding settings to compare")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, help="CPU threads while timing (default: torch's)")
    ap.add_argument("--out", default="bench/latency.md")
    args = ap.parse_args()
    roundings = [None if r == "none" else int(r) for r in args.round_to.split(",")]
    settings = LatencySettings(tuple(args.runtimes.split(",")), tuple(int(b) for b in args.batch_sizes.split(",")),
                               threads=args.threads, repeats=args.repeats, warmup=5)
    machine = machine_description(args.threads)
    header = (f"CPU {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}; median of "
              f"{settings.repeats} calls each, pruned and unpruned in turns; filter pruning by l1 (one shot)")
    cols = [f"{r} b{b}" for r in settings.runtimes for b in settings.batch_sizes]
    lines = [header, "", "Latency ratio (pruned / unpruned) per runtime and batch size; unpruned ms in brackets.", "",
             "| model | ratio | round_to | FLOPs ratio | " + " | ".join(cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    print("\n".join(lines), flush=True)
    start = time.perf_counter()
    for name in args.models.split(","):
        for ratio in (float(r) for r in args.ratios.split(",")):
            for round_to in roundings:
                base, pruned, flops_ratio = pruned_pair(name, ratio, round_to)
                ms = measure_latency({"base": base, "pruned": pruned}, SHAPE, settings, torch.device("cpu"))
                cells = [f"{ms['pruned'][k] / ms['base'][k]:.3f} ({ms['base'][k]:.2f})" for k in settings.keys()]
                line = f"| {name} | {ratio} | {round_to or '–'} | {flops_ratio:.3f} | " + " | ".join(cells) + " |"
                lines.append(line)
                print(line, flush=True)
    lines.append(f"\n({time.perf_counter() - start:.0f} s)")
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
