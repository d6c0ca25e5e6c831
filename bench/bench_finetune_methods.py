"""Fine-tuning methods on the quickstart problem (MNIST-5k, LeNet, 2 workers), one run: the
quickstart search with `space.finetune_method: [natural]` beside the same search (same seed,
same trial budget, same baseline) with `[natural, trades, fgsm_rs]`. Real trials through the
real driver; every figure comes from the searches' MLflow runs.

Prints, per search: its front (FLOPs reduction and test worst-case robust accuracy at eps
0.05, and at 0.1 from the robustness curve), the final hypervolume (validation, as the
search selected), and per fine-tuning method the trials run and their median trial time.

    make bench-finetune                          # 16 trials each
    python bench/bench_finetune_methods.py --trials 8 --work /tmp/ft
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from search.tracking.records import SearchRecords  # noqa: E402

CLI = str(Path(sys.executable).parent / "robustprune")
SPACES = {"natural only": "[natural]", "natural, trades, fgsm_rs": "[natural, trades, fgsm_rs]"}


def run_search(name: str, methods: str, trials: int, work: Path) -> float:
    start = time.perf_counter()
    subprocess.run([CLI, "run", str(ROOT / "configs" / "quickstart.yaml"),
                    "--set", f"experiment.name={name}", "--set", f"experiment.storage_path={work / 'runs'}",
                    "--set", f"experiment.tracking_uri=sqlite:///{work / 'mlflow.db'}",
                    "--set", f"space.finetune_method={methods}", "--set", f"search.num_samples={trials}"],
                   cwd=work, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def summary(uri: str, name: str) -> dict:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                and r.info.status == "FINISHED"]
    tests = SearchRecords.open(uri, experiment.experiment_id, parent.info.run_id).tests
    front = []
    for run in children:
        if run.data.tags.get("pareto") != "true":
            continue
        curve = dict(tests.robustness_curve(run.info.run_id))
        front.append((run.data.metrics["flops_reduction"], run.data.params.get("finetune_method", "natural"),
                      run.data.metrics.get("test_robust_acc", float("nan")), curve.get(0.1, float("nan"))))
    seconds: dict[str, list[float]] = {}
    for run in children:
        seconds.setdefault(run.data.params.get("finetune_method", "natural"), []).append(
            run.data.metrics["trial_seconds"])
    return {"front": sorted(front), "hypervolume": parent.data.metrics.get("hypervolume", float("nan")),
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path("/tmp/robustprune-bench-finetune"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{args.work / 'mlflow.db'}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {}
    for label, methods in SPACES.items():
        name = f"ft-{len(results)}-{stamp}"
        wall = run_search(name, methods, args.trials, args.work)
        results[label] = {**summary(uri, name), "wall": wall}
    print(f"\nquickstart problem, {args.trials} trials per search, seed 0, 2 workers on this machine\n")
    print("| space.finetune_method | search wall time | hypervolume (val) | front: FLOPs red. / method / "
          "test robust @0.05 / @0.1 |")
    print("|---|---|---|---|")
    for label, r in results.items():
        front = "; ".join(f"{f:.0%} {m} {a:.3f}/{b:.3f}" for f, m, a, b in r["front"])
        print(f"| {label} | {r['wall']:.0f} s | {r['hypervolume']:.4f} | {front} |")
    print("\n| space.finetune_method | method | trials | median trial time |")
    print("|---|---|---|---|")
    for label, r in results.items():
        for method, secs in sorted(r["seconds"].items()):
            print(f"| {label} | {method} | {len(secs)} | {statistics.median(secs):.1f} s |")


if __name__ == "__main__":
    main()
