"""Shared pieces of the end-to-end tests: a tiny real search config, the CLI (as a
subprocess, or in-process where the process itself is not under test), MLflow queries and
the processes a driver started."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psutil
import yaml
from mlflow.tracking import MlflowClient

from mlflow_store import store_at

CLI = str(Path(sys.executable).parent / "robustprune")


def tiny_config(tmp_path: Path, name: str, num_samples: int, **sections) -> Path:
    """digits + LeNet: a real trained model, real attacks, a few seconds per trial; its
    MLflow store is an empty one already migrated (mlflow_store.py)."""
    cfg = {
        "experiment": {"name": name, "seed": 0, "storage_path": str(tmp_path / "runs"),
                       "tracking_uri": store_at(tmp_path / "mlflow.db")},
        "data": {"name": "digits", "eval_size": 120, "calib_size": 64},
        "model": {"name": "lenet"},
        "baseline": {"epochs": 12},
        "space": {"granularities": ["filter"], "criteria": ["l1", "expected_abs", "pls_vip", "random"],
                  "ratio": [0.2, 0.8], "iterations": [1, 2], "finetune_epochs": 1},
        "attacks": [{"name": "fgsm", "eps": 0.1}, {"name": "pgd", "eps": 0.1, "steps": 3, "params": {"restarts": 1}}],
        "evaluation": {"final_attacks": [{"name": "fgsm", "eps": 0.1},
                                         {"name": "pgd", "eps": 0.1, "steps": 10, "params": {"restarts": 2}}],
                       "eps_grid": [0.0, 0.05, 0.1]},
        "search": {"num_samples": num_samples, "max_concurrent": 2, "sampler": "random", "scheduler": "fifo"},
        "resources": {"cpus_per_trial": 1},
        "failures": {"max_retries": 0},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cli(*args, cwd, timeout=900, env=None):
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@contextlib.contextmanager
def running_cli(*args, cwd: Path, log: Path, env=None):
    """The CLI started as a process, its output in `log`, for a test to signal or wait on; killed
    on the way out if it still runs (a failed assertion leaves no driver behind)."""
    with open(log, "w") as out:
        proc = subprocess.Popen([CLI, *map(str, args)], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def call_cli(capsys, *args) -> CliResult:
    """The CLI's `main` in this process: the same code as the command, without the seconds a
    fresh interpreter spends importing torch and MLflow. For commands that start no Ray."""
    from search.commands.cli import main

    capsys.readouterr()  # what earlier steps printed
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


def search_runs(uri: str, experiment: str):
    """(parent run, child runs) of the newest search of the experiment."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("robustprune.search") == "parent"]
    parent = max(parents, key=lambda r: r.info.start_time)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


class FinishedSearch(NamedTuple):
    """A search that ran to its end through the CLI, and what it left."""
    tmp: Path
    cfg: Path
    proc: subprocess.CompletedProcess
    uri: str
    parent: object
    children: list


def free_port() -> int:
    """A loopback port nothing listens on (the socket that found it is closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float, log: Path | None = None) -> None:
    """Until `url` answers 200; fails if the serving process exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} never answered" + (f": {log.read_text()[-3000:]}" if log else ""))
            time.sleep(0.3)


@contextlib.contextmanager
def serving_ui(uri: str, experiment: str, tmp: Path):
    """`robustprune ui` (a real MLflow server) on a store, on a free port: its base URL, port,
    and the links it printed ({name: url}: the search's runs and its saved views)."""
    port = free_port()
    log = tmp / f"ui-{port}.log"
    with log.open("w") as err:
        server = subprocess.Popen([CLI, "ui", "--tracking-uri", uri, "--experiment", experiment, "--port", str(port)],
                                  cwd=tmp, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server, 120, log)
        links = dict(line.split(": ", 1) for line in log.read_text().splitlines() if ": http://" in line)
        yield {"base": url, "port": port, "links": links}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the UI and its workers: the group we started
        server.wait(timeout=30)


def wait_until(predicate, timeout: float, what: str, every: float = 0.2,
               process: subprocess.Popen | None = None) -> None:
    """Until `predicate()`; fails at the timeout, or at once when `process` (what should make
    it come true) has exited."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process is None or process.poll() is None, f"{what}: the process exited ({process.returncode}) first"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def descendants(pid: int) -> list[psutil.Process]:
    """Every process started below `pid` (a driver's local Ray, its workers), still alive."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).children(recursive=True)
    return []


def trial_workers(pid: int, training: bool = False) -> list[psutil.Process]:
    """The Ray worker processes of Tune trials under the driver with this pid; `training`:
    only those inside a trial now (their process title names the method they run). Scoped
    to that driver: other tests' Ray clusters may run beside it."""
    title = "ray::ImplicitFunc.train" if training else "ray::ImplicitFunc"
    workers = []
    for child in descendants(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            if " ".join(child.cmdline()).startswith(title):
                workers.append(child)
    return workers


def finished_children(uri: str, experiment: str) -> int:
    client = MlflowClient(uri)
    try:
        exp = client.get_experiment_by_name(experiment)
    except Exception:  # the store is not created yet
        return 0
    if exp is None:
        return 0
    return len(client.search_runs([exp.experiment_id], "tags.`mlflow.parentRunId` != '' and "
                                                       "attributes.status = 'FINISHED'"))


def undocumented_metrics(uri: str, experiment: str) -> set[str]:
    """'run kind: metric' for each metric a run of the experiment logged that the metrics
    reference (search/tracking/metric_names.py) does not name: empty when the docs hold them all."""
    from search.tracking.metric_names import SEARCH, STUDY, TRIAL, documented
    from search.tracking.schema import KIND_TAG, PARENT_TAG

    client = MlflowClient(uri)
    missing = set()
    for run in client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=5000):
        kind = TRIAL if PARENT_TAG in run.data.tags else STUDY if run.data.tags.get(KIND_TAG) == "study" else SEARCH
        missing |= {f"{kind}: {name}" for name in run.data.metrics if not documented(name, kind)}
    return missing
