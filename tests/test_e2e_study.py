"""A real small study (local Ray, sqlite MLflow, LeNets trained on the embedded digits, real
attacks): 2 setups x 2 criteria x 1 ratio x 3 seeds, layer cells not applicable; its runs,
study_cells.csv, study_stats.json and the report page in Chromium; the dry run; and a study
stopped mid-way and resumed, with no cell measured twice."""
import csv
import io
import json
import re
import shutil
import signal
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from browser import Browser
from e2e_helpers import call_cli, run_cli, running_cli, serving_ui, undocumented_metrics, wait_until
from mlflow_store import store_at

pytestmark = pytest.mark.e2e
SEEDS = 3
CRITERIA = ["l1", "random"]


def study_config(tmp: Path, name: str, setups: list[dict], seeds=SEEDS) -> Path:
    cfg = {
        "experiment": {"name": name, "storage_path": str(tmp / "runs"), "tracking_uri": store_at(tmp / "mlflow.db")},
        "data": {"name": "digits", "eval_size": 120, "calib_size": 64},
        "study": {"setups": setups, "granularities": ["filter", "layer"], "criteria": CRITERIA, "ratios": [0.5],
                  "iterations": [1], "seeds": seeds, "max_concurrent": 2},
        "finetune": {"epochs": 1, "lr": 0.01},
        "attacks": [{"name": "fgsm", "eps": 0.1}, {"name": "pgd", "eps": 0.1, "steps": 3, "params": {"restarts": 1}}],
        "evaluation": {"eps_grid": [0.0, 0.1]},
        "resources": {"cpus_per_trial": 1},
        "failures": {"max_retries": 0},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


SETUPS = [{"name": "lenet", "model": {"name": "lenet"}, "baseline": {"epochs": 12}},
          {"name": "lenet-short", "model": {"name": "lenet"}, "baseline": {"epochs": 4}}]


def study_runs(uri: str, experiment: str):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("robustprune.kind") == "study")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return client, parent, children


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    cfg = study_config(tmp, "study", SETUPS)
    proc = run_cli("study", str(cfg), cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client, parent, children = study_runs(uri, "study")
    return {"tmp": tmp, "cfg": cfg, "proc": proc, "uri": uri, "client": client, "parent": parent,
            "children": children}


def test_the_dry_run_lists_the_cells_and_the_ones_that_cannot_run(tmp_path, capsys):
    cfg = study_config(tmp_path, "dry", SETUPS)
    out = call_cli(capsys, "study", cfg, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "study dry: 12 cells to run" in out.stdout and "12 not applicable" in out.stdout
    assert out.stdout.count("layer: 6 cells, not applicable (lenet has no removable (residual) blocks)") == 2
    assert out.stdout.count("to train (12 epochs)") == SEEDS
    assert not (tmp_path / "runs").exists()  # no baseline trained, no experiment folder
    assert MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name("dry") is None


def test_every_cell_and_baseline_is_a_run_of_one_parent(study):
    parent, children = study["parent"], study["children"]
    assert parent.info.status == "FINISHED"
    cells = [c for c in children if c.data.tags.get("study_role") == "cell"]
    baselines = [c for c in children if c.data.tags.get("study_role") == "baseline"]
    assert len(cells) == 2 * len(CRITERIA) * SEEDS and len(baselines) == 2 * SEEDS
    assert {c.info.status for c in children} == {"FINISHED"}
    keys = {(c.data.params["setup"], c.data.params["criterion"], c.data.params["seed"]) for c in cells}
    assert len(keys) == len(cells)  # each cell once
    for c in cells:
        assert {"setup", "granularity", "criterion", "ratio", "iterations", "finetune_method", "seed"} <= set(
            c.data.params)
        assert c.data.params["granularity"] == "filter"  # layer cells are not applicable to LeNet
        assert {"test_robust_acc", "test_clean_acc", "test_robust_acc_fgsm", "test_robust_acc_pgd",
                "flops_reduction", "robust_acc"} <= set(c.data.metrics)
    assert "efficiency" in parent.data.metrics


def test_the_metrics_reference_names_every_metric_the_study_logged(study):
    assert not undocumented_metrics(study["uri"], "study")


def test_the_cells_csv_has_a_row_per_cell_and_baseline_seed(study):
    path = study["client"].download_artifacts(study["parent"].info.run_id, "study_cells.csv", str(study["tmp"]))
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    assert len(rows) == 2 * (len(CRITERIA) + 1) * SEEDS
    assert {r["criterion"] for r in rows} == {*CRITERIA, "baseline"}
    assert {"test_robust_acc_fgsm", "test_robust_acc_pgd", "flops_reduction"} <= set(rows[0])
    by_run = {c.info.run_id: c for c in study["children"]}
    for r in rows:  # the table is the runs' own numbers
        assert float(r["test_robust_acc"]) == pytest.approx(by_run[r["run_id"]].data.metrics["test_robust_acc"])


def test_the_stats_answer_with_intervals_tests_and_ranks(study):
    path = study["client"].download_artifacts(study["parent"].info.run_id, "study_stats.json", str(study["tmp"]))
    stats = json.loads(Path(path).read_text())
    assert len(stats["cells"]) == 2 * len(CRITERIA)
    for cell in stats["cells"]:
        assert cell["n"] == SEEDS
        robust = cell["test_robust_acc"]
        assert robust["ci_low"] <= robust["mean"] <= robust["ci_high"]
        assert set(cell["vs_baseline"]) == {"n", "mean_diff", "ci_low", "ci_high", "p", "p_holm"}
    ranking = stats["ranking"]["filter"]
    assert set(ranking["average_ranks"]) == set(CRITERIA) and ranking["blocks"] == 2
    assert sum(ranking["average_ranks"].values()) == pytest.approx(3.0)  # ranks 1 and 2 in every block
    assert {"criterion", "setup", "seed", "residual"} <= set(stats["variance_shares"])
    assert re.match(r"pruned more robust than its baseline in \d+ of 4 cells", stats["summary"])
    assert stats["summary"] in study["proc"].stdout


def test_the_report_page_shows_the_answer_in_a_browser(study, tmp_path, capsys):
    out = tmp_path / "study.html"
    proc = call_cli(capsys, "report", "--tracking-uri", study["uri"], "--experiment", "study", "--out", out)
    assert proc.returncode == 0, proc.stderr
    browser = Browser(tmp_path / "chromium-profile")
    try:
        browser.goto(out.as_uri())
        browser.wait_for("!!document.querySelector('#summary')")
        assert browser.eval("document.querySelector('#summary').innerText").startswith("pruned more robust")
        assert browser.eval("document.querySelectorAll('#cells tbody tr').length") == 2 * len(CRITERIA)
        not_applicable = browser.eval("[...document.querySelectorAll('#not-applicable tbody tr')].map(r => r.innerText)")
        assert len(not_applicable) == 2 and all("no removable (residual) blocks" in r for r in not_applicable)
        ranks = browser.eval("document.querySelector('#ranking tbody tr').innerText")
        assert "filter" in ranks and all(c in ranks for c in CRITERIA)
        images = browser.eval("[...document.images].map(i => [i.alt, i.naturalWidth])")
        assert len(images) >= 3 and all(width > 0 for _, width in images)  # per-metric plots and shares, drawn
        browser.screenshot(tmp_path / "study.png")
    finally:
        browser.close()


def test_the_cells_view_opens_on_every_cell_and_baseline_with_its_factors(study, tmp_path):
    printed = [line.split(": ", 1)[0].strip() for line in study["proc"].stdout.splitlines()
               if ": http://127.0.0.1:5000/#" in line]
    assert printed == ["the search's runs", "cells", "cells chart"]
    children = study["children"]
    setup_of = {c.info.run_name: c.data.params["setup"] for c in children}
    with serving_ui(study["uri"], "study", tmp_path) as ui:
        assert list(ui["links"]) == printed
        browser = Browser(tmp_path / "chromium-profile", window=(2600, 1000))
        try:
            names = browser.run_names(ui["links"]["cells"], len(children))
            assert sorted(names) == sorted(setup_of)
            assert [setup_of[n] for n in names] == sorted(setup_of[n] for n in names)  # by setup
            assert [c for c in browser.column_ids() if c.startswith("params.")] == [
                f"params.`{p}`" for p in ("setup", "criterion", "granularity", "ratio", "iterations", "finetune_method",
                                          "seed")]
            browser.screenshot(tmp_path / "cells.png")
            measured = [c for c in children if "flops" in c.data.metrics and "test_robust_acc" in c.data.metrics]
            assert browser.scatter_axes(ui["links"]["cells chart"], len(measured)) == ["flops", "test_robust_acc"]
        finally:
            browser.close()


def test_a_study_stopped_midway_resumes_without_measuring_a_cell_twice(study, tmp_path):
    seeds = 2
    cfg = study_config(tmp_path, "resumed", SETUPS[:1], seeds=seeds)
    # the baselines are not what this tests: the module's study trained them, in its cache
    shutil.copytree(study["tmp"] / "runs" / "baselines", tmp_path / "runs" / "baselines")
    log = tmp_path / "study.log"
    with running_cli("study", cfg, cwd=tmp_path, log=log) as proc:
        wait_until(lambda: "cell 2/" in log.read_text(), 240, "two cells logged", process=proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) != 0
    folder = re.search(r"study (\S+) \| MLflow run", log.read_text()).group(1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _, parent, children = study_runs(uri, "resumed")
    assert parent.info.status == "KILLED"
    before = {c.data.tags["ray_trial_id"]: c.info.run_id for c in children if c.info.status == "FINISHED"}
    assert 2 <= sum(k.startswith("lenet/") for k in before) < len(CRITERIA) * seeds
    resumed = run_cli("resume", folder, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    _, parent, children = study_runs(uri, "resumed")
    assert parent.info.status == "FINISHED"
    finished = [c for c in children if c.info.status == "FINISHED"]
    keys = [c.data.tags["ray_trial_id"] for c in finished]
    assert len(keys) == len(set(keys)) == len(CRITERIA) * seeds + seeds  # every cell and baseline once
    assert all(before[k] in {c.info.run_id for c in finished} for k in before)  # the first runs were kept
