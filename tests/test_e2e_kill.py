"""Hard-kill drills on a real search (local Ray, sqlite MLflow, real trials): SIGKILL of
the driver, then `resume`; SIGKILL of a trial's worker process, retried, or with no retries
left logged FAILED. No trial is lost or logged twice, and the killed driver's Ray processes
do not outlive the resume."""
import contextlib
import os
import re
import signal
from pathlib import Path

import psutil
import pytest

from e2e_helpers import (call_cli, descendants, finished_children, run_cli, running_cli, search_runs,
                         tiny_config, trial_workers, wait_until)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("shared_baselines")]  # the baseline is not under test
N = 6


def _ray_session(driver_pid: int) -> str:
    """The session of the local Ray this driver started (its GCS server names it): other
    tests' clusters may run beside it, so never /tmp/ray/session_latest."""
    for proc in descendants(driver_pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            found = re.search(r"session_\d{4}-\d\d-\d\d_[\d-]+_\d+_\d+", " ".join(proc.cmdline()))
            if found:
                return found[0]
    raise AssertionError(f"driver {driver_pid} started no local Ray")


def _processes_matching(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and entry.name != str(os.getpid()):
                pids.append(int(entry.name))
    return pids


def _assert_every_trial_logged_once(uri: str, experiment: str) -> None:
    parent, children = search_runs(uri, experiment)
    trial_ids = [c.data.tags["ray_trial_id"] for c in children]
    assert sorted(c.info.status for c in children) == ["FINISHED"] * N, [c.info.status for c in children]
    assert len(set(trial_ids)) == N  # none lost, none logged twice
    assert parent.info.status == "FINISHED"
    assert all("test_robust_acc" in c.data.metrics for c in children if c.data.tags["pareto"] == "true")


def test_sigkill_of_the_driver_then_resume_loses_and_repeats_nothing(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "killdriver", N)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Tune then checkpoints its experiment once, at the start: every trial logged before the
    # kill is newer than the state `resume` restores (the race of a short trial, made certain).
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "3600"}
    with running_cli("run", cfg, cwd=tmp_path, log=tmp_path / "driver.log", env=env) as driver:
        wait_until(lambda: finished_children(uri, "killdriver") >= 3, 600, "three finished trials", every=0.5,
                   process=driver)
        session = _ray_session(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    assert finished_children(uri, "killdriver") < N  # killed mid-search
    parent, _ = search_runs(uri, "killdriver")
    experiment_path = parent.data.tags["experiment_path"]
    partial = call_cli(capsys, "pareto", "--experiment", "killdriver", "--tracking-uri", uri)
    assert partial.returncode == 0 and (f"note: the search is not finished (its driver died); this front is "
                                        f"partial; continue it with: robustprune resume {experiment_path}"
                                        in partial.stderr), partial.stderr
    proc = run_cli("resume", experiment_path, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "logged after Tune's last checkpoint: counted, and their points not measured again" in proc.stdout
    _assert_every_trial_logged_once(uri, "killdriver")
    _, children = search_runs(uri, "killdriver")
    points = [tuple(c.data.params[k] for k in ("criterion", "ratio", "iterations")) for c in children]
    assert len(set(points)) == N, points  # no point measured twice
    # the killed driver's local Ray (raylet, GCS, agents) is gone, not left running
    wait_until(lambda: not _processes_matching(session), 120, f"processes of {session} to exit", every=0.5)


def test_sigkill_of_a_trial_worker_is_retried_and_logged_once(tmp_path):
    cfg = tiny_config(tmp_path, "killworker", N, failures={"max_retries": 2})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with running_cli("run", cfg, cwd=tmp_path, log=tmp_path / "driver.log") as driver:
        # a worker inside a trial, of this driver
        wait_until(lambda: finished_children(uri, "killworker") >= 1 and trial_workers(driver.pid, training=True),
                   600, "a running trial worker", process=driver)
        victims = trial_workers(driver.pid, training=True)[:1]  # one worker dies; its neighbour works on
        victims[0].kill()
        assert driver.wait(900) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    assert victims
    _assert_every_trial_logged_once(uri, "killworker")
    assert "retrying" in (tmp_path / "driver.log").read_text()  # a running trial was hit, and rerun


def test_a_trial_whose_worker_dies_is_logged_failed_with_its_error(tmp_path):
    """A real fault: the trial's Ray worker process is killed mid-trial (no retries left)."""
    cfg = tiny_config(tmp_path, "faults", 2, search={"max_concurrent": 1}, space={"finetune_epochs": 20},
                      failures={"max_retries": 0})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with running_cli("run", cfg, cwd=tmp_path, log=tmp_path / "run.log") as proc:
        wait_until(lambda: trial_workers(proc.pid, training=True), 300, "a running trial worker", process=proc)
        trial_workers(proc.pid, training=True)[0].kill()
        proc.wait(timeout=300)
    parent, children = search_runs(uri, "faults")
    assert parent.info.status == "FINISHED"  # the search itself went on and ended
    statuses = sorted(c.info.status for c in children)
    assert statuses == ["FAILED", "FINISHED"]
    failed = next(c for c in children if c.info.status == "FAILED")
    assert failed.data.tags["error"] and failed.data.tags["pareto"] == "false"
    assert {"criterion", "ratio", "iterations"} <= set(failed.data.params)
