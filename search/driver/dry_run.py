"""`search.dry_run: true`: trials that prune, fine-tune and attack nothing.

Each trial reports made-up metrics, a smooth function of its point, and the baseline's
own model file, then goes through exactly the driver path of a real trial (Tune, Optuna,
checkpoint, MLflow child run, front, plots). It exists to measure and soak that path:
the driver's per-trial bookkeeping and memory over hundreds of trials in minutes. The
numbers mean nothing; the parent run records `search.dry_run=True`, and the front gets
no final test evaluation.
"""
from __future__ import annotations

import time
import zlib

from trainables.config import TrialConfig
from trainables.latency import is_latency
from trainables.trial import Baseline, Progress, TrialResult

SIZE_METRICS = ("flops", "macs", "params")


def dry_run_trial(cfg: TrialConfig, baseline: Baseline, progress: Progress | None = None) -> TrialResult:
    start = time.perf_counter()
    base = {k: v for k, v in baseline.metrics.items() if isinstance(v, (int, float))}
    ratio = cfg.ratio
    # a stable per-criterion offset, so that criteria differ and the front is a curve
    offset = zlib.crc32(f"{cfg.granularity}/{cfg.criterion}".encode()) % 50 / 1000
    robust = min(1.0, base["robust_acc"] * (1 + ratio * (1 - ratio)) + offset - 0.005 * cfg.iterations)
    metrics = {**base, **{f"{k}_baseline": v for k, v in base.items()}}
    costs = [k for k in base if k in SIZE_METRICS or is_latency(k)]
    metrics.update({k: base[k] * (1 - ratio) for k in costs})
    metrics.update({k: robust for k in base if k.startswith("robust_acc")})
    metrics.update(clean_acc=base["clean_acc"] * (1 - 0.2 * ratio ** 2), flops_reduction=ratio,
                   params_reduction=ratio, blocks_removed=0, trial_seconds=time.perf_counter() - start)
    if progress:  # intermediate results that climb to the final ones
        steps = cfg.iterations * max(1, cfg.finetune.epochs)
        for step in range(1, steps + 1):
            late = 0.01 * (steps - step)
            progress.report({"step": step, **{k: metrics[k] for k in costs},
                             "clean_acc": metrics["clean_acc"] - late, "robust_acc": max(0.0, robust - late),
                             "trial_seconds": time.perf_counter() - start})
    return TrialResult(metrics, baseline.model(), baseline.payload["spec"])
