"""Distributed and fault-tolerance checks: a simulated 2-node Ray cluster logging to a real
`mlflow server`, and a search interrupted mid-way then resumed."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import ray
from mlflow.tracking import MlflowClient

from e2e_helpers import CLI, free_port, run_cli, search_runs, tiny_config, trial_workers, wait_for_http
from search.config import load_config
from search.runner import run_search

pytestmark = pytest.mark.e2e


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` starting in the background: (its process, its URI). The test
    waits for it once its Ray cluster is up, so the two start-ups overlap."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: the group we started
        proc.wait(timeout=30)


@pytest.mark.serial  # a `ray start`-style head: a plain ray.init() elsewhere on the machine would join it
def test_search_spreads_over_two_nodes_and_logs_to_mlflow_server(tmp_path, mlflow_server):
    from ray.cluster_utils import Cluster

    server, uri = mlflow_server
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        wait_for_http(f"{uri}/health", server, 90)
        cfg = load_config(tiny_config(tmp_path, "cluster", 4, experiment={"tracking_uri": uri}))
        outcome = run_search(cfg, address=cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert outcome.complete and outcome.finished == 4
    parent, children = search_runs(uri, "cluster")
    assert parent.info.status == "FINISHED" and len(children) == 4
    used = {c.data.tags["ray_node_id"] for c in children}
    assert used == {w.node_id for w in workers}  # both worker nodes ran trials; the 0-CPU head none
    client = MlflowClient(uri)
    assert {"model.pt", "metrics.json"} <= {a.path for a in client.list_artifacts(children[0].info.run_id)}


def test_interrupted_search_resumes_without_duplicate_runs(tmp_path):
    n = 5
    cfg = tiny_config(tmp_path, "resume", n, search={"max_concurrent": 1})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen([CLI, "run", str(cfg)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            time.sleep(1)
            try:
                _, children = search_runs(uri, "resume")
            except Exception:  # store or experiment not created yet
                continue
            if sum(c.info.status == "FINISHED" for c in children) >= 2:
                break
        assert proc.poll() is None, "search ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)  # what Ctrl+C does
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
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
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen([CLI, "run", str(cfg)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while len(trial_workers(proc.pid)) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert len(trial_workers(proc.pid)) == 2, "never saw both trials running"
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
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


def test_a_trial_whose_worker_dies_is_logged_failed_with_its_error(tmp_path):
    """A real fault: the trial's Ray worker process is killed mid-trial (no retries left)."""
    cfg = tiny_config(tmp_path, "faults", 2, search={"max_concurrent": 1}, space={"finetune_epochs": 20},
                      failures={"max_retries": 0})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen([CLI, "run", str(cfg)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    killed = None
    try:
        deadline = time.time() + 300
        while killed is None and time.time() < deadline and proc.poll() is None:
            for worker in trial_workers(proc.pid)[:1]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.kill()
                    killed = worker.pid
            time.sleep(0.2)
        assert killed, "never saw a trial worker"
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    parent, children = search_runs(uri, "faults")
    assert parent.info.status == "FINISHED"  # the search itself went on and ended
    statuses = sorted(c.info.status for c in children)
    assert statuses == ["FAILED", "FINISHED"]
    failed = next(c for c in children if c.info.status == "FAILED")
    assert failed.data.tags["error"] and failed.data.tags["pareto"] == "false"
    assert {"criterion", "ratio", "iterations"} <= set(failed.data.params)
