"""The paper's question on the data that ships with the tool: at equal pruning ratio, how do
the criteria compare in cost, accuracy and per-sample worst-case robustness, and is a pruned
network more robust than its unpruned baseline?

Every criterion x granularity x ratio x seed is one trial (`run_trial` + the final test
evaluation), on the same baseline per seed: filters on LeNet, layers (blocks) on ResNet-20,
both on the embedded MNIST-5k. Prints mean +- std over seeds as a markdown table. Each
measurement is appended to a JSON-lines file as it finishes; a rerun skips what it holds.

    make bench-criteria                              # the README's table (~45 min on 2 cores)
    python bench/bench_criteria.py --seeds 1 --ratios 0.5 --granularities filter   # a quick look
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from trainables.config import TrialConfig
from trainables.prune import CRITERIA
from trainables.train import resolve_device
from trainables.test_eval import final_evaluation
from trainables.trial import load_data, run_trial, train_baseline

COMMON = dict(dataset="mnist5k", val_size=500, eval_size=250, calib_size=256, latency={"repeats": 3},
              attacks=[{"name": "fgsm", "eps": 0.05}, {"name": "pgd", "eps": 0.05, "steps": 10,
                                                            "params": {"restarts": 1}}],
              final_attacks=[{"name": "fgsm", "eps": 0.05}, {"name": "pgd", "eps": 0.05, "steps": 20,
                                                                  "params": {"restarts": 1}}],
              finetune={"epochs": 1, "lr": 0.01})
SETUPS = {  # granularity -> the model it prunes and how
    "filter": dict(model="lenet", baseline={"epochs": 10, "lr": 0.05}, iterations=2),
    "layer": dict(model="resnet20", baseline={"epochs": 4, "lr": 0.05}, iterations=1),
}
COLUMNS = [("flops_reduction", "FLOPs red."), ("params", "params"), ("clean_acc", "val clean"),
           ("robust_acc", "val robust"), ("test_clean_acc", "test clean"), ("test_robust_acc", "test robust")]


KEPT = [k for k, _ in COLUMNS]


def measure(cfg: TrialConfig, baseline) -> dict:
    result = run_trial(cfg, baseline)
    test = final_evaluation(result.model, load_data(cfg), cfg, resolve_device(cfg.device))
    return {k: v for k, v in {**result.metrics, **test}.items() if k in KEPT}


def baseline_row(cfg: TrialConfig, baseline) -> dict:
    test = final_evaluation(baseline.model(), load_data(cfg), cfg, resolve_device(cfg.device))
    return {**{k: v for k, v in {**baseline.metrics, **test}.items() if k in KEPT}, "flops_reduction": 0.0}


class Runs:
    """Measurements keyed by (granularity, criterion, ratio, seed), kept in a JSON-lines file."""

    def __init__(self, path: Path):
        self.path = path
        self.done = {}
        if path.exists():
            for line in path.read_text().splitlines():
                r = json.loads(line)
                self.done[tuple(r["key"])] = r["metrics"]

    def add(self, key: tuple, metrics: dict) -> None:
        self.done[key] = metrics
        with self.path.open("a") as f:
            f.write(json.dumps({"key": list(key), "metrics": metrics}) + "\n")

    def rows(self) -> dict[tuple, list[dict]]:
        """Seeds pooled per (granularity, criterion, ratio): each granularity's baseline first,
        then the criteria in registry order."""
        def order(key):
            granularity, criterion, ratio, seed = key
            names = ["baseline", *CRITERIA[granularity]]
            return list(SETUPS).index(granularity), names.index(criterion), str(ratio), seed

        rows: dict[tuple, list[dict]] = {}
        for key in sorted(self.done, key=order):
            rows.setdefault(key[:3], []).append(self.done[key])
        return rows


def cell(values: list[float], key: str) -> str:
    mean = statistics.fmean(values)
    if key == "params":
        return f"{mean:,.0f}"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {spread:.3f}"


def table(rows: dict[tuple, list[dict]]) -> list[str]:
    lines = ["| granularity | criterion | ratio | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS)]
    for (granularity, criterion, ratio), runs in rows.items():
        cells = [cell([r[k] for r in runs], k) for k, _ in COLUMNS]
        lines.append(f"| {granularity} | {criterion} | {ratio} | " + " | ".join(cells) + " |")
    return lines


def verdict(rows: dict[tuple, list[dict]]) -> list[str]:
    """Where pruned networks beat their own baseline's test robust accuracy (seed-paired means)."""
    lines = []
    for granularity in dict.fromkeys(k[0] for k in rows):
        base = statistics.fmean(r["test_robust_acc"] for r in rows[(granularity, "baseline", "–")])
        cells = [(k, statistics.fmean(r["test_robust_acc"] for r in v)) for k, v in rows.items()
                 if k[0] == granularity and k[1] != "baseline"]
        above = [k for k, v in cells if v > base]
        lines.append(f"{granularity}: {len(above)} of {len(cells)} criterion x ratio cells above the baseline's "
                     f"test robust accuracy {base:.3f}; best {max(v for _, v in cells):.3f}, "
                     f"worst {min(v for _, v in cells):.3f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--granularities", default="filter,layer")
    ap.add_argument("--ratios", default="0.3,0.5,0.7")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--criteria", help="comma-separated; default: every criterion of each granularity")
    ap.add_argument("--out", help="also write the markdown table here")
    ap.add_argument("--runs", default="bench/criteria_runs.jsonl", help="measurements so far (resumed from)")
    args = ap.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    runs = Runs(Path(args.runs))
    start = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", file=sys.stderr)
    for granularity in args.granularities.split(","):
        criteria = args.criteria.split(",") if args.criteria else list(CRITERIA[granularity])
        for seed in range(args.seeds):
            todo = [(c, r) for c in criteria for r in ratios if (granularity, c, r, seed) not in runs.done]
            if not todo and (granularity, "baseline", "–", seed) in runs.done:
                continue
            cfg = TrialConfig(**COMMON, **SETUPS[granularity], granularity=granularity, seed=seed)
            baseline = train_baseline(cfg)
            if (granularity, "baseline", "–", seed) not in runs.done:
                runs.add((granularity, "baseline", "–", seed), baseline_row(cfg, baseline))
            for criterion, ratio in todo:
                m = measure(cfg.model_copy(update={"criterion": criterion, "ratio": ratio}), baseline)
                runs.add((granularity, criterion, ratio, seed), m)
                print(f"[{time.perf_counter() - start:6.0f}s] {granularity} {criterion} r={ratio} seed={seed}: "
                      f"flops -{m['flops_reduction']:.2f} val robust {m['robust_acc']:.3f} "
                      f"test robust {m['test_robust_acc']:.3f}",
                      file=sys.stderr, flush=True)
    rows = runs.rows()
    lines = table(rows) + [""] + verdict(rows)
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
