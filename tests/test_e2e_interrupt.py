"""Ctrl+C (SIGINT) of a real search (local Ray, sqlite MLflow, real trials), then `resume`:
the parent run ends KILLED, never RUNNING, and the resumed search logs every trial once."""
import signal
import time

import pytest

from e2e_helpers import finished_children, run_cli, running_cli, search_runs, tiny_config, trial_workers, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("shared_baselines")]  # the baseline is not under test


def test_interrupted_search_resumes_without_duplicate_runs(tmp_path):
    """Ctrl+C while trials are still to be created: resume creates them, reruns nothing finished."""
    n = 4
    cfg = tiny_config(tmp_path, "resume", n, search={"max_concurrent": 1})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with running_cli("run", cfg, cwd=tmp_path, log=tmp_path / "run.log") as proc:
        wait_until(lambda: finished_children(uri, "resume") >= 2, 300, "two finished trials", process=proc)
        proc.send_signal(signal.SIGINT)  # what Ctrl+C does
        proc.wait(timeout=180)
    assert proc.returncode != 0
    parent, before = search_runs(uri, "resume")
    assert parent.info.status == "KILLED"  # never left RUNNING
    finished_before = {c.data.tags["ray_trial_id"] for c in before if c.info.status == "FINISHED"}
    assert 2 <= len(finished_before) < n

    experiment_path = next((tmp_path / "runs").glob("resume_*"))
    resumed = run_cli("resume", str(experiment_path), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    parent, after = search_runs(uri, "resume")
    trial_ids = [c.data.tags["ray_trial_id"] for c in after]
    assert parent.info.status == "FINISHED"
    assert len(trial_ids) == len(set(trial_ids)) == n  # no duplicates, nothing missing
    assert finished_before <= set(trial_ids)
    assert {c.info.status for c in after} == {"FINISHED"}
    # finished trials were not rerun: only the remaining ones printed a summary line
    assert resumed.stdout.count("[robustprune] trial ") == n - len(finished_before)
    assert "already logged" not in resumed.stdout


def test_ctrl_c_once_every_trial_has_started_leaves_the_search_unfinished(tmp_path):
    """Tune ends its fit on SIGINT as if done and marks the running trials TERMINATED: with
    every trial created, only the driver can tell that the search was cut short."""
    cfg = tiny_config(tmp_path, "ctrl-c", 2, space={"finetune_epochs": 8})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with running_cli("run", cfg, cwd=tmp_path, log=tmp_path / "run.log") as proc:
        wait_until(lambda: len(trial_workers(proc.pid, training=True)) == 2, 300, "both trials running",
                   process=proc)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
    out = (tmp_path / "run.log").read_text()
    assert proc.returncode == 1, out[-3000:]
    assert "search stopped early" in out and "continue with:" in out and "final test evaluation of" not in out
    parent, children = search_runs(uri, "ctrl-c")
    assert parent.info.status == "KILLED"
    assert not [c for c in children if c.info.status == "FINISHED"]  # both were cut short

    resumed = run_cli("resume", str(next((tmp_path / "runs").glob("ctrl-c_*"))), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    parent, children = search_runs(uri, "ctrl-c")
    assert parent.info.status == "FINISHED"
    assert sorted(c.info.status for c in children) == ["FINISHED", "FINISHED"]
