"""Search methods side by side on the quickstart problem (MNIST-5k, LeNet, 2 workers):
random, GP, TPE and NSGA-II, each with and without MO-ASHA, several seeds, the same number of
trials and the same wall-clock cap (a method that stops trials early ends sooner). Real
trials through the real driver; the numbers come from each search's MLflow parent run
(hypervolume after every finished trial, with its timestamp).

Prints, per method: trials finished and stopped early, hypervolume at fixed wall times
(median [min-max] over seeds), the time to reach random search's hypervolume after
`--trials` trials of the same seed (as a fraction of random's time to it; the seed also
fixes the baseline, so the comparison is within a seed), and efficiency (trial and final
evaluation compute / (workers x search wall time); in brackets, trial compute alone).
Saves the table (--out) and the plot docs/images/hypervolume_vs_time.png (the docs show it).

    make bench-search                                      # 5 seeds, 32 trials, 8 methods
    python bench/bench_search.py --seeds 2 --methods random,nsga2+mo_asha --budget-s 120
    python bench/bench_search.py --seed-list 3,4 --table-seeds 0,1,2,3,4   # add seeds to a work folder
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "robustprune")
METHODS = ["random", "gp", "tpe", "nsga2", "random+mo_asha", "gp+mo_asha", "tpe+mo_asha", "nsga2+mo_asha"]
# The final test evaluation is not what is compared: keep it short.
FIXED = ["failures.max_retries=0", "evaluation.test_size=100",
         "evaluation.final_attacks=[{name: fgsm, eps: 0.05}]", "evaluation.eps_grid=[0.05]"]


@dataclass
class Run:
    method: str
    seed: int
    curve: list[tuple[float, float]]  # (seconds since the search started, hypervolume), one per finished trial
    finished: int
    stopped: int
    compute_s: float
    wall_s: float
    efficiency: float  # the parent's: (trial + final evaluation compute) / (slots x wall)

    def hypervolume_at(self, t: float) -> float:
        return max([hv for s, hv in self.curve if s <= t], default=0.0)

    def time_to(self, target: float) -> float | None:
        return next((s for s, hv in self.curve if hv >= target - 1e-12), None)

    def after_trials(self, n: int) -> tuple[float, float]:
        """(time, hypervolume) when the n-th trial had finished (or the last one)."""
        return self.curve[min(n, len(self.curve)) - 1]


def experiment_name(method: str, seed: int) -> str:
    return f"bench_{method.replace('+', '_')}_s{seed}"


def run_search(work: Path, method: str, seed: int, trials: int, budget_s: float, workers: int) -> Run:
    sampler, _, scheduler = method.partition("+")
    name = experiment_name(method, seed)
    overrides = [f"experiment.name={name}", f"experiment.seed={seed}", f"experiment.storage_path={work / 'runs'}",
                 f"experiment.tracking_uri=sqlite:///{work / 'mlflow.db'}", f"search.num_samples={trials}",
                 f"search.max_concurrent={workers}", f"search.sampler={sampler}",
                 f"search.scheduler={scheduler or 'fifo'}", f"search.time_budget_s={budget_s}", *FIXED]
    argv = [CLI, "run", str(ROOT / "configs" / "quickstart.yaml"), *[a for o in overrides for a in ("--set", o)]]
    proc = subprocess.run(argv, cwd=work, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{method} seed {seed} failed:\n{proc.stderr[-3000:]}")
    return collect(MlflowClient(f"sqlite:///{work / 'mlflow.db'}"), name, method, seed, workers)


def collect(client: MlflowClient, experiment: str, method: str, seed: int, workers: int) -> Run:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parent = max((r for r in runs if r.data.tags.get("robustprune.search") == "parent"),
                 key=lambda r: r.info.start_time)  # the newest, when a seed was run again
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    start = parent.info.start_time
    by_trials = {m.step: m for m in client.get_metric_history(parent.info.run_id, "hypervolume") if m.step > 0}
    curve = sorted(((m.timestamp - start) / 1000, m.value) for m in by_trials.values())
    return Run(method, seed, curve, sum(c.info.status == "FINISHED" for c in children),
               sum(c.data.tags.get("stopped_early") == "true" for c in children),
               sum(c.data.metrics.get("trial_seconds", 0.0) for c in children),
               (parent.info.end_time - start) / 1000, parent.data.metrics.get("efficiency", float("nan")))


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    if not values:
        return "n/a"
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def table(runs: list[Run], methods: list[str], budget_s: float, workers: int, trials: int) -> str:
    marks = [budget_s * f for f in (0.25, 0.5, 1.0)]
    random_runs = {r.seed: r for r in runs if r.method == "random"}
    head = ["method", "finished (stopped)"] + [f"hypervolume at {t:.0f} s" for t in marks] + [
        f"time to random's {trials}-trial hypervolume", "efficiency (trials only)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        mine = [r for r in runs if r.method == method]
        ratios, reached = [], 0
        for r in mine:
            ref = random_runs.get(r.seed)
            if ref and ref.curve:
                ref_time, ref_hv = ref.after_trials(trials)
                hit = r.time_to(ref_hv)
                reached += hit is not None
                if hit is not None:
                    ratios.append(hit / ref_time)
        row = [method, f"{statistics.median([r.finished for r in mine]):.0f} "
                       f"({statistics.median([r.stopped for r in mine]):.0f})"]
        row += [spread([r.hypervolume_at(t) for r in mine]) for t in marks]
        row.append(f"{spread(ratios, '{:.0%}')} of random's time ({reached}/{len(mine)} seeds reach it)"
                   if random_runs else "n/a")
        row.append(f"{spread([r.efficiency for r in mine], '{:.2f}')} "
                   f"({spread([r.compute_s / (workers * r.wall_s) for r in mine], '{:.2f}')})")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(runs: list[Run], methods: list[str], budget_s: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [budget_s * i / 100 for i in range(101)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in methods:
        mine = [r for r in runs if r.method == method]
        values = [[r.hypervolume_at(t) for r in mine] for t in grid]
        ax.plot(grid, [statistics.median(v) for v in values], label=method)
        ax.fill_between(grid, [min(v) for v in values], [max(v) for v in values], alpha=0.15)
    ax.set_xlabel("wall time since the search started (s)")
    ax.set_ylabel("hypervolume (validation; FLOPs / baseline vs robust acc.)")
    ax.set_title(f"Median and range over {len({r.seed for r in runs})} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="run seeds 0..N-1")
    ap.add_argument("--seed-list", help="run these seeds instead, e.g. 3,4")
    ap.add_argument("--table-seeds", help="tabulate these seeds from the work folder's store (default: those run)")
    ap.add_argument("--trials", type=int, default=32, help="num_samples of every search")
    ap.add_argument("--budget-s", type=float, default=420, help="time_budget_s of every search")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS), help="SAMPLER or SAMPLER+mo_asha, comma-separated")
    ap.add_argument("--work", default="bench/search_work", help="folder for the searches (baselines are reused)")
    ap.add_argument("--out", default="bench/search.md")
    args = ap.parse_args()
    methods = args.methods.split(",")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(v) for v in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    for seed in seeds:  # seeds outside: every method of a seed meets the same machine load
        for method in methods:
            start = time.perf_counter()
            r = run_search(work, method, seed, args.trials, args.budget_s, args.workers)
            print(f"{method:>15} seed {seed}: {r.finished} finished, {r.stopped} stopped, final hypervolume "
                  f"{r.curve[-1][1] if r.curve else 0:.4f}, {time.perf_counter() - start:.0f} s", flush=True)
    table_seeds = [int(v) for v in args.table_seeds.split(",")] if args.table_seeds else seeds
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = [collect(client, experiment_name(m, seed), m, seed, args.workers) for seed in table_seeds for m in methods]
    report = table(runs, methods, args.budget_s, args.workers, args.trials)
    print(report)
    out = Path(args.out)
    out.write_text(f"{len(table_seeds)} seeds, num_samples {args.trials}, time_budget_s {args.budget_s:g}, "
                   f"{args.workers} workers\n\n{report}\n")
    image = Path(__file__).resolve().parents[1] / "docs" / "images" / "hypervolume_vs_time.png"
    plot(runs, methods, args.budget_s, image)
    print(f"wrote {out} and {image}")


if __name__ == "__main__":
    main()
