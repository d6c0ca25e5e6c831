"""The search driver's own cost: no-op trials (`search.dry_run`) through the real driver
(local Ray Tune, Optuna, checkpoints, MLflow sqlite logging, live front), so what is left
is bookkeeping. Prints, per block of trials, the time each trial holds Tune's event loop
(`driver_bookkeeping_ms`), the background logging thread's time per trial (MLflow child
run, front, plots), the most trials queued behind it, the wall time per trial (everything
the driver does: Tune, the sampler and its study storage, logging) and the driver's
resident memory.

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


def history(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def logged_at(client: MlflowClient, run_id: str) -> list[float]:
    """When each trial's logging ended (s), by logged trial."""
    return [m.timestamp / 1000 for m in sorted(client.get_metric_history(run_id, "logging_ms"), key=lambda m: m.step)]


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


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
        cost = history(client, parent.info.run_id, "driver_bookkeeping_ms")
        logging = history(client, parent.info.run_id, "logging_ms")
        backlog = history(client, parent.info.run_id, "logging_backlog")
        rss = history(client, parent.info.run_id, "driver_rss_mb")
        at = logged_at(client, parent.info.run_id)
        seconds = (parent.info.end_time - parent.info.start_time) / 1000
    print(f"{args.trials} no-op trials, {args.concurrency} at a time, sampler {args.sampler}: "
          f"{wall:.0f} s in all, parent run {seconds:.0f} s = {1000 * seconds / args.trials:.0f} ms per trial")
    print(f"{'trials':>11} | {'on Tune loop ms: median':>23} {'p90':>5} {'max':>5} | "
          f"{'logging thread ms: median':>25} {'p90':>5} | {'max backlog':>11} | {'wall ms per trial':>17} | "
          f"{'driver MB':>9}")
    for lo in range(0, len(cost), args.block):
        hi = min(lo + args.block, len(cost))
        print(f"{lo + 1:>5}-{hi:<5} | {statistics.median(cost[lo:hi]):>23.1f} {p90(cost[lo:hi]):>5.1f} "
              f"{max(cost[lo:hi]):>5.1f} | {statistics.median(logging[lo:hi]):>25.0f} {p90(logging[lo:hi]):>5.0f} | "
              f"{max(backlog[lo:hi]):>11.0f} | {1000 * (at[hi - 1] - at[max(lo - 1, 0)]) / (hi - max(lo, 1)):>17.0f} | "
              f"{rss[hi - 1]:>9.0f}")


if __name__ == "__main__":
    main()
