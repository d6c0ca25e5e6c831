"""One real search (local Ray, sqlite MLflow, trained LeNet on embedded digits, real attacks),
run once for this module, and what is made of it: its runs and front, the commands that
read it (`pareto`, `export`, `report`, `ui`; those that start no Ray run in-process through
`call_cli`: the same `main`, without an interpreter start per call), and what a user sees in
a real browser (headless Chromium): the MLflow UI opens on the search's runs, named by what
they tried, the parent's page shows the front, the offline report plots one point per
finished trial. Screenshots are kept under each browser test's temp folder."""
import contextlib
import itertools
import json
import re
import signal
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from browser import Browser
from e2e_helpers import FinishedSearch, call_cli, run_cli, running_cli, search_runs, serving_ui, tiny_config, \
    undocumented_metrics, wait_until
from trainables.data import load_dataset
from trainables.train import accuracy

pytestmark = pytest.mark.e2e
N = 6
DROP = 0.03  # trials losing more clean accuracy are infeasible: never on the front
EXPERIMENT = "e2e"
TRIAL_PARAMS = {"criterion", "granularity", "ratio", "iterations", "finetune_epochs", "finetune_method", "seed"}
LATENCY_RUNTIMES = ["torch", "torchscript"]  # onnxruntime: tests/test_latency.py (its export takes seconds)
LATENCY_METRICS = [f"latency_ms_{r}_b{b}" for r in LATENCY_RUNTIMES for b in (1, 4)]
METHODS = ["natural", "fgsm_rs"]  # the space mixes fine-tuning methods: fgsm_rs is the cheap adversarial one


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> FinishedSearch:
    tmp = tmp_path_factory.mktemp("search")
    cfg = tiny_config(tmp, EXPERIMENT, N, search={"max_clean_acc_drop": DROP},
                      space={"finetune_method": METHODS, "finetune_budget": {"fgsm_rs": {"eps": 0.1}}},
                      latency={"runtimes": LATENCY_RUNTIMES, "batch_sizes": [1, 4], "repeats": 5})
    proc = run_cli("run", str(cfg), cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    parent, children = search_runs(uri, EXPERIMENT)
    return FinishedSearch(tmp, cfg, proc, uri, parent, children)


@pytest.fixture(scope="module")
def mlflow_ui(search):
    """`robustprune ui` on the search's store: its base URL, port and printed links."""
    with serving_ui(search.uri, EXPERIMENT, search.tmp) as ui:
        yield ui


def test_one_parent_and_n_finished_children(search):
    _, _, proc, _, parent, children = search
    assert parent.info.status == "FINISHED"
    assert len(children) == N
    assert {c.info.status for c in children} == {"FINISHED"}
    assert len({c.data.tags["ray_trial_id"] for c in children}) == N
    assert proc.stdout.count("[robustprune] trial ") == N  # one summary line per finished trial


def test_the_console_shows_the_tools_lines_and_the_libraries_log_to_the_experiment_folder(search):
    out, err = search.proc.stdout, search.proc.stderr
    before_front = out.split("\nsearch finished:")[0].splitlines()
    strays = [line for line in before_front if line and not line.startswith("[robustprune] ")]
    assert strays == []  # no Tune table, config box or TensorBoard hint among the tool's own lines
    assert sum(line.startswith("[robustprune] trial ") for line in before_front) == N
    for noise in ("Trial status", "TensorBoard", "Token authentication", "INFO", "A new study created"):
        assert noise not in out and noise not in err, noise
    experiment = Path(search.parent.data.tags["experiment_path"])
    log = experiment / "robustprune.log"
    assert f"[robustprune] the logs of Ray, Tune, MLflow and Optuna: {log} (--verbose shows them here)" in out
    kept = log.read_text()
    assert "Started a local Ray instance" in kept and "Token authentication is enabled" in kept
    assert "A new study created" in kept  # Optuna's


@pytest.mark.usefixtures("shared_baselines")  # the console is under test, not the baseline
def test_verbose_prints_tunes_tables_and_the_libraries_logs(tmp_path):
    cfg = tiny_config(tmp_path, "verbose", 2, search={"dry_run": True})
    proc = run_cli("run", str(cfg), "--verbose", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = proc.stdout + proc.stderr
    assert "Trial status" in shown and "Started a local Ray instance" in shown
    assert "robustprune.log" not in shown and not list((tmp_path / "runs").glob("verbose_*/robustprune.log"))


def test_children_hold_params_metrics_and_models(search):
    _, _, _, uri, parent, children = search
    client = MlflowClient(uri)
    for c in children:
        assert TRIAL_PARAMS <= set(c.data.params)
        m = c.data.metrics
        for key in ("flops", "macs", "params", "flops_baseline", "flops_reduction", "clean_acc", "robust_acc",
                    "robust_acc_fgsm", "robust_acc_pgd", "robust_acc_baseline", "latency_ms"):
            assert key in m, key
        assert m["robust_acc"] <= min(m["robust_acc_fgsm"], m["robust_acc_pgd"])  # per-sample worst case
        for key in LATENCY_METRICS:  # each runtime and batch size, timed in turns with the baseline
            assert m[f"{key}_baseline"] > 0
            assert m[key.replace("latency_ms", "latency_ratio")] == pytest.approx(m[key] / m[f"{key}_baseline"])
        assert m["latency_ms"] == m["latency_ms_torch_b1"]
        assert c.data.tags["pareto"] in ("true", "false")
        artifacts = {a.path for a in client.list_artifacts(c.info.run_id)}
        assert {"model.pt", "metrics.json"} <= artifacts
    assert parent.data.params["search.num_samples"] == str(N)
    assert {"config.yaml", "pareto.csv", "pareto.png", "pareto.html", "robustness_curves.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}
    # what was measured, resolved: the search's and the final suite's attacks, splits, seeds
    p = parent.data.params
    assert p["resolved.attacks.pgd.steps"] == "3" and p["resolved.attacks.pgd.restarts"] == "1"
    assert p["resolved.final_attacks.pgd.steps"] == "10" and p["resolved.final_attacks.pgd.restarts"] == "2"
    assert p["resolved.splits.val"] == "162" and p["resolved.splits.test_eval"] == "180"
    assert p["resolved.criterion_params.pls_vip.pooling"] == "max"  # the published PLS+VIP default


def test_each_trial_logs_the_fine_tuning_method_it_ran_and_its_budget(search):
    by_method = {m: [c for c in search.children if c.data.params["finetune_method"] == m] for m in METHODS}
    assert all(by_method.values()), {m: len(c) for m, c in by_method.items()}  # the space mixes both
    for child in by_method["fgsm_rs"]:
        m = child.data.metrics
        assert m["finetune_eps"] == 0.1 and m["finetune_alpha"] == pytest.approx(0.125)
        assert {"guard_best_epoch", "guard_pgd_acc", "guard_pgd_acc_drop"} <= set(m)
        assert child.info.run_name.endswith("·fgsm_rs") and child.data.tags["finetune_method"] == "fgsm_rs"
    for child in by_method["natural"]:
        assert not any(k.startswith(("finetune_", "guard_")) for k in child.data.metrics)
    p = search.parent.data.params
    assert p["resolved.training_methods.finetune.fgsm_rs.eps"] == "0.1"
    assert p["resolved.training_methods.baseline.method"] == "natural"


def test_only_front_members_carry_test_metrics_after_the_search(search):
    """Selection on validation, report on test: no test number enters the front. The front's
    evaluation starts on the slot the search's last trials leave idle; a model that then
    leaves the front is cancelled, and none but the final front gets test metrics."""
    _, _, proc, uri, parent, children = search
    early = re.search(r"final test evaluation of \d+ front models \(\d+ distinct; (\d+) started while the last "
                      r"trials ran, (\d+) of those left the front", proc.stdout)
    assert early and int(early[1]) >= 1, proc.stdout[-2000:]
    client = MlflowClient(uri)
    for c in children:
        test_keys = {k for k in c.data.metrics if k.startswith("test_")}
        if c.data.tags["pareto"] == "true":
            assert {"test_clean_acc", "test_robust_acc", "test_robust_acc_fgsm", "test_robust_acc_pgd",
                    "test_robust_acc_curve"} <= test_keys
            m = c.data.metrics
            assert m["test_robust_acc"] <= min(m["test_robust_acc_fgsm"], m["test_robust_acc_pgd"])
            curve = client.get_metric_history(c.info.run_id, "test_robust_acc_curve")
            assert sorted(h.step for h in curve) == [0, 500, 1000]  # eps 0, 0.05, 0.1 (x 10,000)
            by_step = {h.step: h.value for h in curve}
            assert by_step[0] == pytest.approx(m["test_clean_acc"])
            assert by_step[1000] == pytest.approx(m["test_robust_acc"])  # final suite at its own eps
        else:
            assert not test_keys, (c.data.tags["pareto"], test_keys)
        metrics_json = json.loads(open(client.download_artifacts(c.info.run_id, "metrics.json")).read())
        assert not [k for k in metrics_json if k.startswith("test_")]  # trials never see the test split
    assert "test_robust_acc_baseline" in parent.data.metrics


def test_the_metrics_reference_names_every_metric_the_search_logged(search):
    assert not undocumented_metrics(search.uri, EXPERIMENT)


def test_pareto_tags_equal_an_independent_sort_of_feasible_trials(search):
    _, _, _, _, _, children = search
    for c in children:
        m = c.data.metrics
        assert c.data.tags["feasible"] == ("true" if m["clean_acc_baseline"] - m["clean_acc"] <= DROP else "false")
    feasible = [c for c in children if c.data.tags["feasible"] == "true"]
    pts = [(c.data.metrics["flops"], -c.data.metrics["robust_acc"]) for c in feasible]
    for c, p in zip(feasible, pts):
        dominated = any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in pts)
        assert c.data.tags["pareto"] == ("false" if dominated else "true")
    assert all(c.data.tags["pareto"] == "false" for c in children if c not in feasible)
    assert any(c.data.tags["pareto"] == "true" for c in children)


def test_hypervolume_is_logged_per_trial_and_never_decreases(search):
    _, _, _, uri, parent, _ = search
    history = MlflowClient(uri).get_metric_history(parent.info.run_id, "hypervolume")
    by_step = {}
    for h in history:
        by_step[h.step] = h.value  # the final recount logs the last step again, same value
    steps = sorted(by_step)
    assert steps == list(range(1, N + 1))
    values = [by_step[s] for s in steps]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))
    assert values[-1] > 0


def test_pareto_command_prints_the_front(search, capsys):
    tmp, _, _, uri, _, children = search
    proc = call_cli(capsys, "pareto", "--experiment", "e2e", "--tracking-uri", uri)
    assert proc.returncode == 0, proc.stderr
    front = [c for c in children if c.data.tags["pareto"] == "true"]
    assert f"{len(front)} models" in proc.stdout
    assert "test_robust_acc" in proc.stdout.splitlines()[1]
    for c in front:
        assert c.info.run_id in proc.stdout
        assert f"{c.data.metrics['test_robust_acc']:.3f}" in proc.stdout


def test_export_writes_loadable_files_and_registers(search, capsys):
    tmp, _, _, uri, _, children = search
    front = [c for c in children if c.data.tags["pareto"] == "true"]
    budget = sorted(c.data.metrics["flops"] for c in front)[0]  # only the cheapest front model fits
    out = tmp / "export"
    proc = call_cli(capsys, "export", "--experiment", "e2e", "--tracking-uri", uri, "--max-flops", budget,
                    "--format", "torchscript,onnx,state_dict", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "model_card.json").read_text())
    chosen = next(c for c in front if c.info.run_id == card["source_run_id"])
    assert card["search_config"]["search"]["num_samples"] == N and card["params"] == chosen.data.params
    assert chosen.data.metrics["flops"] <= budget
    for fmt, entry in card["files"].items():
        import hashlib
        assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == entry["sha256"], fmt
    assert card["metrics"]["test_robust_acc"] == chosen.data.metrics["test_robust_acc"]
    assert card["metrics"]["test_clean_acc"] == chosen.data.metrics["test_clean_acc"]
    assert [eps for eps, _ in card["test_robustness_curve"]] == [0.0, 0.05, 0.1]
    expected = card["expected_input"]  # digits: 8x8 images, as they are, normalized inside the model
    assert expected["shape"] == [1, 8, 8] and expected["preprocessing"] == "resize to 8x8 where it differs (bilinear)"
    assert len(expected["normalization"]["mean"]) == 1 and "inside the model" in expected["normalization"]["applied"]
    # plain torch.jit.load reproduces the logged clean accuracies on the same seeded splits
    scripted = torch.jit.load(str(out / "model.torchscript.pt"))
    data = load_dataset("digits", seed=0)
    test = data.test
    assert accuracy(scripted, data.val, torch.device("cpu")) == pytest.approx(chosen.data.metrics["clean_acc"])
    assert accuracy(scripted, test, torch.device("cpu")) == pytest.approx(chosen.data.metrics["test_clean_acc"])
    import onnx
    onnx.checker.check_model(str(out / "model.onnx"))
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias("e2e-pruned", "best")
    assert str(version.version) == str(card["registered_model"]["version"])
    # the registered model is the same network, and loading it unpickles nothing: a pyfunc
    # from code (MLflow models-from-code) over the safe model.pt
    import mlflow.pyfunc
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    local = Path(mlflow.artifacts.download_artifacts("models:/e2e-pruned@best", dst_path=str(tmp / "registered")))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert "python_function" in mlmodel["flavors"] and "pytorch" not in mlmodel["flavors"]
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle")], sorted(local.rglob("*"))
    assert torch.load(next(local.rglob("model.pt")), weights_only=True)["format_version"]
    registered = mlflow.pyfunc.load_model("models:/e2e-pruned@best")
    x = test.x[:16]
    assert np.allclose(registered.predict(x.numpy()), scripted(x).detach().numpy(), atol=1e-5)


def test_export_under_a_latency_bound_and_its_card_holds_the_latency(search, capsys):
    tmp, _, _, uri, _, children = search
    front = [c for c in children if c.data.tags["pareto"] == "true"]
    metric = "latency_ms_torchscript_b4"
    bound = min(c.data.metrics[metric] for c in front)  # only the fastest front model fits
    out = tmp / "export-latency"
    proc = call_cli(capsys, "export", "--experiment", "e2e", "--tracking-uri", uri, "--max-latency-ms", bound,
                    "--latency-metric", metric, "--format", "state_dict", "--name", "e2e-fastest", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "model_card.json").read_text())
    chosen = next(c for c in front if c.info.run_id == card["source_run_id"])
    assert chosen.data.metrics[metric] == bound and card["constraints"] == f"{metric} <= {bound}"
    # measured again on the machine that exports, on the search's runtimes and batch sizes
    assert set(card["latency"]["ms"]) == set(LATENCY_METRICS) and all(v > 0 for v in card["latency"]["ms"].values())
    assert card["latency"]["machine"]["cpu"] and card["latency"]["machine"]["threads"] >= 1
    assert card["metrics"][f"{metric}_baseline"] == chosen.data.metrics[f"{metric}_baseline"]
    refused = call_cli(capsys, "export", "--experiment", "e2e", "--tracking-uri", uri, "--max-latency-ms", "5",
                       "--latency-metric", "latency_ms_onnxruntime_b1", "--out", tmp / "never")
    assert refused.returncode == 2 and refused.stderr.strip().endswith(
        "--max-latency-ms: the search's trials logged no 'latency_ms_onnxruntime_b1'; logged: latency_ms, "
        "latency_ms_torch_b1, latency_ms_torch_b4, latency_ms_torchscript_b1, latency_ms_torchscript_b4")
    assert not (tmp / "never").exists()


def test_export_with_no_fitting_model_fails_cleanly(search, capsys):
    tmp, _, _, uri, _, _ = search
    out = tmp / "nothing"
    proc = call_cli(capsys, "export", "--experiment", "e2e", "--tracking-uri", uri, "--max-flops", "1",
                    "--out", out)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("robustprune: error: no model on the front fits flops <= 1")
    assert not out.exists()


def test_pareto_and_export_name_a_bad_run_id_in_one_line(search, capsys):
    tmp, _, _, uri, _, children = search
    for run_id, message in [("deadbeef", "run-id: no run 'deadbeef'"),
                            (children[0].info.run_id,
                             f"run-id: run '{children[0].info.run_id}' is not a robustprune search")]:
        for command in (["pareto"], ["export", "--out", str(tmp / "never")]):
            proc = call_cli(capsys, *command, "--experiment", "e2e", "--tracking-uri", uri, "--run-id", run_id)
            assert proc.returncode == 2 and proc.stderr.startswith(f"robustprune: error: {message}"), proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp / "never").exists()


def _versions(uri):
    return sorted(int(v.version) for v in MlflowClient(uri).search_model_versions("name='e2e-pruned'"))


def test_export_never_mixes_two_models_in_one_folder(search, capsys):
    tmp, _, _, uri, _, _ = search
    out = tmp / "export-twice"
    common = ["export", "--experiment", "e2e", "--tracking-uri", uri, "--out", str(out)]
    assert call_cli(capsys, *common, "--format", "torchscript,onnx,state_dict").returncode == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    versions = _versions(uri)

    refused = call_cli(capsys, *common, "--format", "state_dict", "--max-flops", "1e12")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"robustprune: error: --out: '{out}' is not empty; "
                                      f"pass --force to replace it whole")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first and _versions(uri) == versions

    replaced = call_cli(capsys, *common, "--format", "state_dict", "--force")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "model_card.json"]  # nothing of the first
    card = json.loads((out / "model_card.json").read_text())
    assert int(card["registered_model"]["version"]) == versions[-1] + 1 == _versions(uri)[-1]

    a_file = tmp / "a-file"
    a_file.write_text("x")
    proc = call_cli(capsys, "export", "--experiment", "e2e", "--tracking-uri", uri, "--out", a_file)
    assert proc.returncode == 2 and "is a file" in proc.stderr and a_file.read_text() == "x"


def test_failed_registration_leaves_no_folder_and_no_version(search, monkeypatch):
    from search.commands import export

    tmp, _, _, uri, _, _ = search
    out = tmp / "export-fails"
    out.mkdir()
    (out / "keep.txt").write_text("the folder --force would replace")
    versions = _versions(uri)
    client = MlflowClient(uri)
    best = client.get_model_version_by_alias("e2e-pruned", "best").version
    logged_models = len(client.search_logged_models(experiment_ids=[e.experiment_id for e in client.search_experiments()]))

    def disk_full(*args):  # the last step: the model is registered and the files are in place
        raise OSError("no space left on device")

    monkeypatch.setattr(export, "_write_card", disk_full)
    with pytest.raises(OSError, match="no space left"):
        export.export_model(uri, "e2e", out, ["state_dict"], export.Constraints(), force=True)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # the replaced folder is back, whole
    assert _versions(uri) == versions
    assert client.get_model_version_by_alias("e2e-pruned", "best").version == best
    assert len(client.search_logged_models(experiment_ids=[e.experiment_id for e in client.search_experiments()])) \
        == logged_models  # the pyfunc logged for the failed registration is gone too
    assert not [p for p in tmp.iterdir() if p.name.startswith(".export-fails")]  # no temporary left


def _stopped_midway(args, started, tmp: Path, signum: int) -> tuple[int, str]:
    """The CLI run as a process and sent `signum` (to its PID) once `started(pid)` holds: its
    exit status, within a bounded time, and its output."""
    log = tmp / f"{args[0]}-{signal.Signals(signum).name}.log"
    with running_cli(*args, cwd=tmp, log=log) as proc:
        wait_until(lambda: started(proc.pid), 60, f"{args[0]} to be under way", every=0.01, process=proc)
        proc.send_signal(signum)
        proc.wait(timeout=60)
    return proc.returncode, log.read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_export_stopped_midway_leaves_no_folder_and_no_version(search, signum):
    """Signalled while its files are staged (the temporary folder beside --out exists)."""
    tmp, uri, name = search.tmp, search.uri, f"stopped-{signal.Signals(signum).name}"
    out = tmp / f"export-{name}"
    status, log = _stopped_midway(["export", "--experiment", EXPERIMENT, "--tracking-uri", uri, "--out", out,
                                   "--format", "torchscript,onnx", "--name", name],
                                  lambda _: list(tmp.glob(f".{out.name}.*")), tmp, signum)
    assert status == 128 + signum, log[-2000:]
    assert not out.exists() and not list(tmp.glob(f".{out.name}.*"))
    assert not MlflowClient(uri).search_model_versions(f"name='{name}'")


def _has_open(pid: int, path: str) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess):
        return any(f.path == path for f in psutil.Process(pid).open_files())
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_report_stopped_midway_leaves_no_page(search, signum):
    """Signalled once it reads the store (the sqlite file is open)."""
    out = search.tmp / f"report-{signal.Signals(signum).name}.html"
    store = search.uri.removeprefix("sqlite:///")
    status, log = _stopped_midway(
        ["report", "--tracking-uri", search.uri, "--experiment", EXPERIMENT, "--out", out],
        lambda pid: _has_open(pid, store), search.tmp, signum)
    assert status == 128 + signum, log[-2000:]
    assert not out.exists() and not list(search.tmp.glob(f".{out.name}*"))


def test_ui_serves_the_store_on_loopback(search, mlflow_ui, capsys):
    tmp, _, _, uri, _, _ = search
    assert mlflow_ui["base"].startswith("http://127.0.0.1:")
    req = urllib.request.Request(f"{mlflow_ui['base']}/api/2.0/mlflow/experiments/get-by-name?experiment_name=e2e")
    body = json.loads(urllib.request.urlopen(req, timeout=10).read())
    assert body["experiment"]["name"] == "e2e"
    # a second UI on the same port: one line, exit 2 (not a server that dies behind exit 0)
    busy = call_cli(capsys, "ui", "--tracking-uri", uri, "--port", mlflow_ui["port"])
    assert busy.returncode == 2 and busy.stderr.startswith(f"robustprune: error: port: cannot serve on "
                                                           f"127.0.0.1:{mlflow_ui['port']}")
    assert len(busy.stderr.strip().splitlines()) == 1


def test_worker_time_is_accounted_on_the_parent(search):
    """Trials' and final evaluation's compute against slots x wall time, from the real runs."""
    _, _, proc, uri, parent, children = search
    m = parent.data.metrics
    assert m["trial_compute_s"] == pytest.approx(sum(c.data.metrics["trial_seconds"] for c in children), rel=1e-6)
    front = [c for c in children if c.data.tags["pareto"] == "true"]
    assert 0 < m["test_eval_compute_s"] <= sum(c.data.metrics["test_eval_seconds"] for c in front) + 1e-6
    wall = (parent.info.end_time - parent.info.start_time) / 1000
    assert m["trial_slots"] == 2 and m["search_wall_s"] <= wall
    assert m["tune_wall_s"] + m["test_eval_wall_s"] < m["search_wall_s"]
    assert m["efficiency"] == pytest.approx((m["trial_compute_s"] + m["test_eval_compute_s"]) /
                                            (2 * m["search_wall_s"]))
    assert 0 < m["trial_efficiency"] < m["efficiency"] <= 1
    assert f"[robustprune] workers busy {m['efficiency']:.0%} of 2 slots" in proc.stdout
    # the driver's cost per logged trial
    client = MlflowClient(uri)
    for key in ("driver_bookkeeping_ms", "driver_bookkeeping_cpu_ms", "driver_rss_mb"):
        assert len(client.get_metric_history(parent.info.run_id, key)) == N, key


def test_the_baseline_test_evaluation_is_cached_with_the_baseline(search):
    tmp, _, proc, _, parent, _ = search
    cached = list((tmp / "runs" / "baselines").glob("*/test_*.json"))
    assert len(cached) == 1
    test = json.loads(cached[0].read_text())
    m = parent.data.metrics
    assert m["test_robust_acc_baseline"] == test["test_robust_acc"]
    assert m["test_clean_acc_baseline"] == test["test_clean_acc"] and test["test_eval_seconds"] > 0
    assert f"test robust {test['test_robust_acc']:.3f} (trained)" in proc.stdout


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


def test_the_experiment_opens_on_its_runs_named_by_what_they_tried(search, mlflow_ui, browser, tmp_path):
    parent, children = search.parent, search.children
    experiment = MlflowClient(search.uri).get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert f"#/experiments/{parent.info.experiment_id}/runs" in mlflow_ui["links"]["the search's runs"]
    browser.goto(mlflow_ui["links"]["the search's runs"])
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


VIEW_COLUMNS = [*(f"params.`{p}`" for p in ("criterion", "granularity", "ratio", "iterations", "finetune_method")),
                *(f"metrics.`{m}`" for m in ("flops_reduction", "clean_acc", "robust_acc", "test_clean_acc",
                                             "test_robust_acc")), "duration"]


def test_the_printed_views_open_on_the_front_and_every_trial_without_a_click(search, mlflow_ui, tmp_path):
    links = mlflow_ui["links"]
    assert list(links) == ["the search's runs", "front", "front chart", "trials", "trials chart"]
    printed = {line.split(": ", 1)[0].strip() for line in search.proc.stdout.splitlines()
               if ": http://127.0.0.1:5000/#" in line}
    assert printed == set(links)  # the end of the search printed the same links, at ui's default address
    front = {c.info.run_name: c.data.metrics["robust_acc"] for c in search.children if c.data.tags["pareto"] == "true"}
    measured = [c for c in search.children if "robust_acc" in c.data.metrics]
    browser = Browser(tmp_path / "chromium-profile", window=(2600, 1000))  # wide: ag-grid renders only columns in view
    try:
        names = browser.run_names(links["front"], len(front))
        assert sorted(names) == sorted(front)  # exactly the front
        assert [front[n] for n in names] == sorted(front.values(), reverse=True)  # best robust accuracy first
        columns = browser.column_ids()
        assert [c for c in columns if c.startswith(("params.", "metrics.")) or c == "duration"] == VIEW_COLUMNS
        browser.screenshot(tmp_path / "front.png")
        assert browser.scatter_axes(links["front chart"], len(front)) == ["flops", "robust_acc"]
        browser.screenshot(tmp_path / "front-chart.png")
        assert sorted(browser.run_names(links["trials"], len(search.children))) == sorted(
            c.info.run_name for c in search.children)
        assert [c for c in browser.column_ids() if c in VIEW_COLUMNS] == VIEW_COLUMNS
        assert browser.scatter_axes(links["trials chart"], len(measured)) == ["flops", "robust_acc"]
    finally:
        browser.close()


def test_the_parent_run_page_shows_the_front_table(search, mlflow_ui, browser, tmp_path):
    parent = MlflowClient(search.uri).get_run(search.parent.info.run_id)  # as it ended
    front = [c for c in search.children if c.data.tags.get("pareto") == "true"]
    assert front
    browser.goto(f"{mlflow_ui['base']}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}")
    browser.wait_for("document.body.innerText.includes('Hypervolume')")
    rows = browser.wait_for("Array.from(document.querySelectorAll('table')).map(t => t.innerText)"
                            ".filter(t => t.includes('val robust'))")
    table = rows[0]
    assert "latency ratio" in table
    for run in front:  # one linked row per front model, with its test robust accuracy and latency ratio
        assert run.info.run_id[:8] in table
        assert f"{run.data.metrics['test_robust_acc']:.3f}" in table
        assert f"{run.data.metrics['latency_ratio']:.2f}" in table
    assert browser.eval(f"document.querySelectorAll('a[href*=\"{front[0].info.run_id}\"]').length") >= 1
    browser.screenshot(tmp_path / "parent-run.png")


def test_the_offline_report_plots_one_point_per_finished_trial(search, browser, tmp_path, capsys):
    out = tmp_path / "report.html"
    proc = call_cli(capsys, "report", "--tracking-uri", search.uri, "--experiment", EXPERIMENT,
                    "--run-id", search.parent.info.run_id, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = out.read_text()
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)="(https?:)?//', html)  # opens offline
    finished = [c for c in search.children if c.info.status == "FINISHED"]
    front = [c for c in finished if c.data.tags.get("pareto") == "true"]
    browser.goto(out.as_uri())
    points = browser.wait_for("document.querySelectorAll('#front-plot .scatterlayer path.point').length")
    assert points == len(finished) + 1  # every finished trial, and the baseline
    legend = browser.eval("[...document.querySelectorAll('#front-plot .legendtext')].map(e => e.textContent)")
    assert {f"front of {m} fine-tuning alone" for m in METHODS} <= set(legend)  # the space mixed two methods
    assert browser.eval("document.querySelectorAll('#front tbody tr').length") == len(front)
    assert browser.eval("document.querySelectorAll('img').length") >= 2  # hypervolume, robustness curves
    browser.screenshot(tmp_path / "report.png")
    logged = {a.path for a in MlflowClient(search.uri).list_artifacts(search.parent.info.run_id)}
    assert {"report.html", "hypervolume.png", "pareto.html"} <= logged
