"""A search with `evaluation.seeds: 3` (local Ray, sqlite MLflow, real trials): each front
model's point runs again with two more trial seeds, interrupted by Ctrl+C while the replicas
run and resumed; then every front number is a mean with its interval, in MLflow, `pareto`,
the report and the exported model card, and the front is the non-dominated set of the means."""
import json
import math
import signal

import numpy as np
import pytest
from scipy import stats

from e2e_helpers import call_cli, run_cli, running_cli, search_runs, tiny_config, undocumented_metrics, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("shared_baselines")]  # the baseline is not under test
SEEDS = 3
REPORTED = ("clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc")


def _independent_summary(values):
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = stats.t.ppf(0.975, df=len(values) - 1) * sd / math.sqrt(len(values))
    return mean, sd, mean - half, mean + half


def test_front_models_are_replicated_summarized_and_the_front_decided_on_means(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "seeds", 4, evaluation={"seeds": SEEDS}, space={"finetune_epochs": 2})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = tmp_path / "run.log"
    with running_cli("run", cfg, cwd=tmp_path, log=log) as proc:
        wait_until(lambda: "[robustprune] replica seed" in log.read_text(), 600, "a replica logged", process=proc)
        proc.send_signal(signal.SIGINT)  # Ctrl+C while the other replicas run
        proc.wait(timeout=180)
    assert proc.returncode != 0, log.read_text()[-3000:]
    _, children = search_runs(uri, "seeds")
    before = [c for c in children if "replica_of" in c.data.tags and c.info.status == "FINISHED"]
    assert before

    resumed = run_cli("resume", str(next((tmp_path / "runs").glob("seeds_*"))), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    parent, children = search_runs(uri, "seeds")
    assert parent.info.status == "FINISHED"
    replicas = [c for c in children if "replica_of" in c.data.tags]
    originals = {c.info.run_id: c for c in children if "seeds" in c.data.metrics}
    assert originals and len(replicas) == 2 * len(originals)
    assert resumed.stdout.count("[robustprune] replica seed") == len(replicas) - len(before)  # none twice
    for run_id, run in originals.items():
        own = [r for r in replicas if r.data.tags["replica_of"] == run_id]
        assert sorted(int(r.data.params["trial_seed"]) for r in own) == [1000, 2000]  # distinct trial seeds
        assert all(r.data.params["criterion"] == run.data.params["criterion"] for r in own)
        assert run.data.metrics["seeds"] == SEEDS
        for metric in REPORTED:  # the logged summary equals one computed here from the seeds' own runs
            values = [run.data.metrics[metric], *(r.data.metrics[metric] for r in own)]
            expected = _independent_summary(values)
            logged = [run.data.metrics[f"{metric}_{p}"] for p in ("mean", "std", "ci_low", "ci_high")]
            assert logged == pytest.approx(expected, abs=1e-9), metric

    for run in [*originals.values(), *replicas]:  # the runs' own times are the trials' (not their logging's)
        seconds = (run.info.end_time - run.info.start_time) / 1000
        assert run.data.metrics["trial_seconds"] - 1 <= seconds <= run.data.metrics["trial_seconds"] + 30, seconds

    # the final front: non-dominated on the validation means; a model that left it is tagged, off the front
    front = [r for r in originals.values() if r.data.tags["pareto"] == "true"]
    left = [r for r in originals.values() if r.data.tags.get("left_front_on_means") == "true"]
    assert front and len(front) + len(left) == len(originals)
    points = {r.info.run_id: np.array([r.data.metrics["flops"], -r.data.metrics["robust_acc_mean"]])
              for r in originals.values()}

    def dominated(run_id, among):
        p = points[run_id]
        return any((points[q.info.run_id] <= p).all() and (points[q.info.run_id] < p).any() for q in among)

    assert not any(dominated(r.info.run_id, front) for r in front)
    assert all(dominated(r.info.run_id, front) for r in left)
    assert not undocumented_metrics(uri, "seeds")  # the summaries over seeds are in the metrics reference

    shown = call_cli(capsys, "pareto", "--experiment", "seeds", "--tracking-uri", uri)
    assert shown.returncode == 0 and "seeds" in shown.stdout.splitlines()[1]
    best = max(front, key=lambda r: r.data.metrics["robust_acc_mean"])
    m = best.data.metrics
    assert f"{m['test_robust_acc_mean']:.3f} ± {(m['test_robust_acc_ci_high'] - m['test_robust_acc_ci_low']) / 2:.3f}" \
        in shown.stdout

    out = tmp_path / "export"
    exported = call_cli(capsys, "export", "--experiment", "seeds", "--tracking-uri", uri, "--out", out)
    assert exported.returncode == 0, exported.stderr[-3000:]
    card = json.loads((out / "model_card.json").read_text())
    assert card["source_run_id"] == best.info.run_id  # picked on the means: the best mean robust accuracy
    assert card["seeds"]["count"] == SEEDS and len(card["seeds"]["per_seed"]) == SEEDS
    assert "the trial's own" in card["seeds"]["weights"]
    assert card["seeds"]["summary"]["test_robust_acc"]["mean"] == pytest.approx(m["test_robust_acc_mean"])

    from search.tracking.records import SearchRecords
    from search.tracking.report import build_report

    page = build_report(SearchRecords.open(uri, parent.info.experiment_id, parent.info.run_id))
    assert f"{m['robust_acc_mean']:.3f} ±" in page
