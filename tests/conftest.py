import os
import signal
import subprocess

import pytest
import torch

# Two cores, shared by the pytest workers (make test runs two) and the Ray workers beside
# them: keep torch from oversubscribing.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _workers)))


@pytest.fixture(scope="session")
def digits_baseline():
    """A LeNet really trained on the embedded digits data (~1 s), with its config."""
    from trainables.config import TrialConfig
    from trainables.trial import train_baseline

    cfg = TrialConfig(dataset="digits", model="lenet", baseline={"epochs": 15, "lr": 0.05},
                      finetune={"epochs": 1, "lr": 0.01}, eval_size=180, latency_repeats=3,
                      attacks=[{"name": "fgsm", "eps": 0.1}, {"name": "pgd", "eps": 0.1, "steps": 5}])
    return cfg, train_baseline(cfg)


@pytest.fixture(scope="session")
def synthetic_resnet20():
    """A ResNet-20 briefly trained on synthetic 32x32x3 data, for pruning-structure tests."""
    from trainables.config import TrialConfig
    from trainables.trial import train_baseline

    cfg = TrialConfig(dataset="synthetic", model="resnet20", baseline={"epochs": 1}, calib_size=32,
                      finetune={"epochs": 0}, eval_size=32, latency_repeats=2, iterations=2, ratio=0.5,
                      attacks=[{"name": "fgsm"}])
    return cfg, train_baseline(cfg)


SEARCH_TRIALS = 6
SEARCH_MAX_CLEAN_DROP = 0.03  # trials losing more clean accuracy are infeasible: never on the front


@pytest.fixture(scope="session")
def finished_search(tmp_path_factory):
    """One real search run to its end by the CLI (local Ray, sqlite MLflow, trained LeNet on
    embedded digits, real attacks), shared by every test that reads what a search leaves:
    its runs and front (test_e2e_search), its exports, and what the browser shows
    (test_browser). Modules using it share the xdist group "search", so it runs once."""
    from e2e_helpers import FinishedSearch, run_cli, search_runs, tiny_config

    tmp = tmp_path_factory.mktemp("search")
    cfg = tiny_config(tmp, "e2e", SEARCH_TRIALS, search={"max_clean_acc_drop": SEARCH_MAX_CLEAN_DROP})
    proc = run_cli("run", str(cfg), cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    parent, children = search_runs(uri, "e2e")
    return FinishedSearch(tmp, cfg, proc, uri, parent, children)


@pytest.fixture(scope="session")
def mlflow_ui(finished_search):
    """`robustprune ui` (a real MLflow server) on the shared search's store, on a free port:
    its base URL, port, and the link it prints to the search's runs (what a user opens)."""
    from e2e_helpers import CLI, free_port, wait_for_http

    port = free_port()
    log = finished_search.tmp / "ui.log"
    with log.open("w") as err:
        server = subprocess.Popen([CLI, "ui", "--tracking-uri", finished_search.uri, "--experiment", "e2e",
                                   "--port", str(port)],
                                  cwd=finished_search.tmp, stdout=subprocess.DEVNULL, stderr=err,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server, 120, log)
        link = next(line.split(": ", 1)[1] for line in log.read_text().splitlines()
                    if line.startswith("the search's runs: "))
        yield {"base": url, "port": port, "runs": link}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the UI and its workers: the group we started
        server.wait(timeout=30)
