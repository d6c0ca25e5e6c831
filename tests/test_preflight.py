"""Preflight: a search that cannot record its results or never gets its resources fails in
one line, exit 2, before Ray, the baseline or any MLflow run (the CLI's `main` in-process,
real files; tests/test_search_config.py runs the command itself as a subprocess)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from e2e_helpers import call_cli, free_port
from search.config import ConfigError, load_config
from search.driver.preflight import wait_for_cluster_resources

ROOT = Path(__file__).resolve().parents[1]


CASES = [
    (lambda tmp: f"experiment.tracking_uri=http://127.0.0.1:{free_port()}",
     "experiment.tracking_uri: no MLflow server answers at http://127.0.0.1:"),
    (lambda tmp: "experiment.tracking_uri=foo://bar", "experiment.tracking_uri: unsupported scheme 'foo'"),
    (lambda tmp: (tmp / "corrupt.db").write_bytes(b"\x7fELF" + b"\x00" * 200) and
     f"experiment.tracking_uri=sqlite:///{tmp}/corrupt.db", "is not an SQLite database"),
    (lambda tmp: f"experiment.tracking_uri=sqlite:///{tmp}", "is a folder; name the SQLite file"),
    (lambda tmp: (tmp / "a-file").write_text("x") and f"experiment.storage_path={tmp}/a-file/runs",
     "experiment.storage_path: cannot write to"),
    (lambda tmp: "resources.gpus_per_trial=1", "resources.gpus_per_trial: 1.0 requested but this machine has"),
    (lambda tmp: "resources.cpus_per_trial=4096", "resources.cpus_per_trial: 4096.0 requested but this machine has"),
]


@pytest.mark.parametrize("override, message", CASES, ids=["server-down", "scheme", "corrupt-sqlite",
                                                          "sqlite-folder", "storage", "gpus", "cpus"])
def test_search_that_cannot_run_fails_before_ray(tmp_path, override, message, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    setting = override(tmp_path)
    if setting.startswith("resources.gpus") and _has_gpu():
        setting = "resources.gpus_per_trial=4096"
    proc = call_cli(capsys, "run", ROOT / "configs" / "quickstart.yaml", "--set", setting)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robustprune: error: ") and message in lines[0], lines
    assert "Ray" not in proc.stdout + proc.stderr and not ray.is_initialized()
    assert list(work.iterdir()) == []  # no mlflow.db, no storage folder, nothing


def _has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


def test_pareto_on_a_server_that_is_down_is_one_line_in_seconds(tmp_path, capsys):
    proc = call_cli(capsys, "pareto", "--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 2 and "no MLflow server answers" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cluster_wait_ends_when_resources_appear_or_fails_at_the_timeout():
    cfg = load_config(None, ["resources.gpus_per_trial=1", "resources.wait_timeout_s=30"])
    offers = iter([{"CPU": 2}, {"CPU": 2}, {"CPU": 2, "GPU": 1}])
    lines = []
    wait_for_cluster_resources(cfg, lambda: next(offers), log=lines.append, poll_s=0.05)  # autoscaler adds a GPU node
    assert len(lines) == 1 and "waiting up to 30 s" in lines[0]

    cfg = load_config(None, ["resources.gpus_per_trial=1", "resources.wait_timeout_s=0.2"])
    with pytest.raises(ConfigError, match=r"^resources: the cluster never offered 1 GPU per trial within "
                                          r"resources.wait_timeout_s=0.2"):
        wait_for_cluster_resources(cfg, lambda: {"CPU": 8}, log=lambda line: None, poll_s=0.05)


def _search_folder(tmp_path) -> Path:
    folder = tmp_path / "search"
    folder.mkdir()
    (folder / "robustprune_search.json").write_text(
        '{"parent_run_id": "x", "tracking_uri": "sqlite:///%s/m.db", "config": {}}' % tmp_path)
    return folder


@pytest.mark.e2e  # the second driver is a real `robustprune resume` process
def test_second_driver_on_a_search_is_refused_in_one_line(tmp_path):
    from e2e_helpers import CLI
    from search.driver.lock import search_lock

    folder = _search_folder(tmp_path)
    with search_lock(str(folder)):  # this process is the running driver; the second is a real process
        proc = subprocess.run([CLI, "resume", str(folder)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.strip().startswith("robustprune: error: experiment_path: another driver (host ")
        assert "is running this search" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert "Ray" not in proc.stdout + proc.stderr
    assert not (folder / "robustprune.lock").exists()  # released by its owner


def test_lock_of_a_dead_driver_on_this_host_is_taken_over(tmp_path):
    from search.driver.lock import search_lock

    folder = _search_folder(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / "robustprune.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    with search_lock(str(folder)):
        assert json.loads((folder / "robustprune.lock").read_text())["pid"] == os.getpid()
    (folder / "robustprune.lock").write_text(json.dumps({"host": "another-node", "pid": dead.pid}))
    with pytest.raises(ConfigError, match="another driver \\(host another-node"):
        with search_lock(str(folder)):
            pass


@pytest.mark.parametrize("address, env, local", [(None, None, True), (None, "local", True), ("local", None, True),
                                                 (None, "auto", False), ("auto", None, False),
                                                 ("10.0.0.1:6379", "local", False)])
def test_the_local_resource_check_applies_where_ray_init_starts_its_own_ray(address, env, local, monkeypatch):
    from search.driver.preflight import starts_local_ray

    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert starts_local_ray(address) is local
