"""What a user sees, in a real browser (headless Chromium): the MLflow UI of a finished
search opens on its runs, the children are named by what they tried, the parent's
description shows the front, and the offline report plots one point per finished trial.
Screenshots are kept under each test's temp folder."""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from browser import Browser
from e2e_helpers import CLI, run_cli, search_runs, tiny_config

pytestmark = pytest.mark.e2e
EXPERIMENT = "browser"


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A finished tiny search (real trials) in its own sqlite store."""
    tmp = tmp_path_factory.mktemp("browser-search")
    proc = run_cli("run", str(tiny_config(tmp, EXPERIMENT, 4)), cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    parent, children = search_runs(uri, EXPERIMENT)
    return {"tmp": tmp, "uri": uri, "parent": parent, "children": children}


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


@pytest.fixture(scope="module")
def mlflow_ui(search):
    """`robustprune ui` (a real MLflow server) on a free port: its base URL and the link it
    prints to the search's runs, which is what a user opens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = search["tmp"] / "ui.log"
    with log.open("w") as err:
        server = subprocess.Popen([CLI, "ui", "--tracking-uri", search["uri"], "--port", str(port)],
                                  cwd=search["tmp"], stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    link = next(line.split(": ", 1)[1] for line in log.read_text().splitlines()
                if line.startswith("the search's runs: "))
    yield {"base": url, "runs": link}
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def test_the_experiment_opens_on_its_runs_named_by_what_they_tried(search, mlflow_ui, browser, tmp_path):
    parent, children = search["parent"], search["children"]
    experiment = MlflowClient(search["uri"]).get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert f"#/experiments/{parent.info.experiment_id}/runs" in mlflow_ui["runs"]
    browser.goto(mlflow_ui["runs"])
    browser.wait_for(f"document.body.innerText.includes({parent.info.run_name!r})")
    text = browser.text()
    assert "Run Name" in text and "No data available" not in text  # the runs table, not the GenAI overview
    browser.screenshot(tmp_path / "experiment.png")
    # expand the search's parent row: its children are listed under it, by name
    browser.eval("document.querySelector('button[data-component-id*=\"runnamecellrenderer\"]').click()")
    names = [c.info.run_name for c in children]
    assert all("·filter·r" in n for n in names), names
    assert {(c.data.tags["criterion"], c.data.tags["granularity"]) for c in children} == {
        (c.data.params["criterion"], c.data.params["granularity"]) for c in children}
    browser.wait_for(" && ".join(f"document.body.innerText.includes({n!r})" for n in names))
    browser.screenshot(tmp_path / "experiment-expanded.png")


def test_the_parent_run_page_shows_the_front_table(search, mlflow_ui, browser, tmp_path):
    parent = MlflowClient(search["uri"]).get_run(search["parent"].info.run_id)  # as it ended
    front = [c for c in search["children"] if c.data.tags.get("pareto") == "true"]
    assert front
    browser.goto(f"{mlflow_ui['base']}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}")
    browser.wait_for("document.body.innerText.includes('Hypervolume')")
    rows = browser.wait_for("Array.from(document.querySelectorAll('table')).map(t => t.innerText)"
                            ".filter(t => t.includes('val robust'))")
    table = rows[0]
    for run in front:  # one linked row per front model, with its test robust accuracy
        assert run.info.run_id[:8] in table
        assert f"{run.data.metrics['test_robust_acc']:.3f}" in table
    assert browser.eval(f"document.querySelectorAll('a[href*=\"{front[0].info.run_id}\"]').length") >= 1
    browser.screenshot(tmp_path / "parent-run.png")


def test_the_offline_report_plots_one_point_per_finished_trial(search, browser, tmp_path):
    out = tmp_path / "report.html"
    proc = subprocess.run([CLI, "report", "--tracking-uri", search["uri"], "--experiment", EXPERIMENT,
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = out.read_text()
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)="(https?:)?//', html)  # opens offline
    finished = [c for c in search["children"] if c.info.status == "FINISHED"]
    front = [c for c in finished if c.data.tags.get("pareto") == "true"]
    browser.goto(out.as_uri())
    points = browser.wait_for("document.querySelectorAll('#front-plot .scatterlayer path.point').length")
    assert points == len(finished) + 1  # every finished trial, and the baseline
    assert browser.eval("document.querySelectorAll('#front tbody tr').length") == len(front)
    assert browser.eval("document.querySelectorAll('img').length") >= 2  # hypervolume, robustness curves
    browser.screenshot(tmp_path / "report.png")
    logged = {a.path for a in MlflowClient(search["uri"]).list_artifacts(search["parent"].info.run_id)}
    assert {"report.html", "hypervolume.png", "pareto.html"} <= logged
