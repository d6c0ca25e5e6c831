"""The search driver's own cost: no-op trials (`search.dry_run`) through the real driver
(local Ray Tune, Optuna, checkpoints, MLflow sqlite logging, live front), so what is left
is bookkeeping. Prints, per block of trials, the callback's time per trial (MLflow child
run, front, plots), the driver's wall time per trial (everything it does: Tune, the
sampler and its study storage, logging) and its resident memory.

    make bench-driver                       # 200 trials
    python bench/bench_driver.py --trials 1000 --concurrency 2
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

CLI = str(Path(sys.executable).parent / "robustprune")


def search_config(folder: Path, trials: int, concurrency: int, sampler: str, optuna_storage: str | None) -> Path:
    cfg = {
        "experiment": {"name": "bench-driver", "storage_path": str(folder / "runs"),
                       "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"},
        "data": {"name": "digits", "eval_size": 120, "calib_size": 64},
        "model": {"name": "lenet"}, "baseline": {"epochs": 2},
        "space": {"granularities": ["filter"], "criteria": ["l1", "taylor", "expected_abs", "pls_vip", "random"],
                  "ratio": [0.1, 0.9], "iterations": [1, 3]},
        "attacks": [{"name": "fgsm", "eps": 0.1}],
        "search": {"num_samples": trials, "max_concurrent": concurrency, "sampler": sampler, "dry_run": True,
                   "scheduler": "fifo", "optuna_storage": optuna_storage},
        "resources": {"cpus_per_trial": 1},
        "failures": {"max_retries": 0},  # workers reused: what is left per trial is the driver's own cost
    }
    path = folder / "bench-driver.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def history(client: MlflowClient, run_id: str, key: str) -> list:
    """A parent metric's history (value, timestamp), by logged trial (step)."""
    return sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--sampler", default="random", help="the search default; nsga2 and tpe read every past trial per proposal")
    ap.add_argument("--optuna-storage", help="'memory', or an RDB URL (default: optuna.db beside the MLflow store)")
    ap.add_argument("--block", type=int, default=100, help="trials per printed row")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-driver-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        proc = subprocess.run([CLI, "run", str(search_config(folder, args.trials, args.concurrency, args.sampler, args.optuna_storage))],
                              cwd=folder, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"the search failed:\n{proc.stderr[-3000:]}")
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        parent = client.search_runs([client.get_experiment_by_name("bench-driver").experiment_id],
                                    "tags.`robustprune.search` = 'parent'")[0]
        bookkeeping = history(client, parent.info.run_id, "driver_bookkeeping_ms")
        cost = [m.value for m in bookkeeping]
        at = [m.timestamp / 1000 for m in bookkeeping]  # when each trial's logging ended (s)
        rss = [m.value for m in history(client, parent.info.run_id, "driver_rss_mb")]
        seconds = (parent.info.end_time - parent.info.start_time) / 1000
    print(f"{args.trials} no-op trials, {args.concurrency} at a time, sampler {args.sampler}: "
          f"{wall:.0f} s in all, parent run {seconds:.0f} s = {1000 * seconds / args.trials:.0f} ms per trial")
    print(f"{'trials':>11} {'bookkeeping ms median':>22} {'p90':>6} {'max':>6} {'wall ms per trial':>18} "
          f"{'driver MB':>10}")
    for lo in range(0, len(cost), args.block):
        block = cost[lo:lo + args.block]
        p90 = sorted(block)[int(0.9 * (len(block) - 1))]
        hi = lo + len(block)
        wall_ms = 1000 * (at[hi - 1] - at[max(lo - 1, 0)]) / (hi - max(lo, 1))
        print(f"{lo + 1:>5}-{hi:<5} {statistics.median(block):>22.0f} {p90:>6.0f} {max(block):>6.0f} {wall_ms:>18.0f} "
              f"{rss[hi - 1]:>10.0f}")


if __name__ == "__main__":
    main()
