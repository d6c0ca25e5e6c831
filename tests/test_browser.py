"""What a user sees, in a real browser (headless Chromium): the MLflow UI of a finished
search opens on its runs, the children are named by what they tried, the parent's
description shows the front, and the offline report plots one point per finished trial.
Screenshots are kept under each test's temp folder."""
import re

import pytest
from mlflow.tracking import MlflowClient

from browser import Browser
from e2e_helpers import call_cli

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("search")]
EXPERIMENT = "e2e"


@pytest.fixture
def search(finished_search):
    """The session's finished search (real trials) in its own sqlite store."""
    s = finished_search
    return {"tmp": s.tmp, "uri": s.uri, "parent": s.parent, "children": s.children}


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


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


def test_the_offline_report_plots_one_point_per_finished_trial(search, browser, tmp_path, capsys):
    out = tmp_path / "report.html"
    proc = call_cli(capsys, "report", "--tracking-uri", search["uri"], "--experiment", EXPERIMENT,
                    "--run-id", search["parent"].info.run_id, "--out", out)
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
