"""The `robustprune trial` command: run as a user runs it (a real subprocess) for the
metrics.json contract; its other cases call the same `main` in-process (`call_cli`: the
exit status and output are the command's, without an interpreter start per call)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from e2e_helpers import call_cli
from trainables.store import load_model

pytestmark = pytest.mark.e2e  # the command as a subprocess: not in make test-quick
CLI = [str(Path(sys.executable).parent / "robustprune")]


def run_cli(*args, timeout=600):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def lenet_trial(tmp_path_factory):
    out = tmp_path_factory.mktemp("trial")
    # PGD-10 rather than the command's full-strength default (PGD-50 x 5 restarts on val and
    # test, for the baseline and the pruned model): the contract is what is checked here
    attacks = out.parent / "attacks.yaml"
    attacks.write_text("attacks: [{name: fgsm}, {name: pgd, steps: 10, params: {restarts: 1}}]\n")
    proc = run_cli("trial", "--config", str(attacks), "--dataset", "mnist5k", "--model", "lenet", "--criterion", "l1",
                   "--granularity", "filter", "--ratio", "0.5", "--iterations", "2", "--epochs", "2",
                   "--eval-size", "200", "--test-size", "200", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "metrics.json").read_text())


REQUIRED = ["flops", "macs", "params", "flops_baseline", "params_baseline", "flops_reduction", "clean_acc",
            "clean_acc_baseline", "robust_acc", "robust_acc_fgsm", "robust_acc_pgd", "robust_acc_baseline",
            "robust_acc_fgsm_baseline", "robust_acc_pgd_baseline", "latency_ms", "latency_ms_baseline",
            "test_clean_acc", "test_robust_acc", "test_robust_acc_fgsm", "test_robust_acc_pgd",
            "test_clean_acc_baseline", "test_robust_acc_baseline"]


def test_metrics_json_holds_the_contract(lenet_trial):
    _, m = lenet_trial
    assert not [k for k in REQUIRED if k not in m]
    assert m["flops_reduction"] >= 0.4
    assert m["flops_reduction"] == pytest.approx(1 - m["flops"] / m["flops_baseline"])
    assert m["macs"] * 2 == m["flops"]
    assert m["robust_acc"] <= min(m["robust_acc_fgsm"], m["robust_acc_pgd"])  # per-sample worst case
    assert m["test_robust_acc"] <= min(m["test_robust_acc_fgsm"], m["test_robust_acc_pgd"])
    assert m["clean_acc_baseline"] > 0.8  # a really trained baseline
    assert m["config"]["criterion"] == "l1" and m["config"]["iterations"] == 2 and m["config"]["ratio"] == 0.5


def test_model_file_loads_safely_and_flops_recount_matches(lenet_trial):
    out, m = lenet_trial
    torch.load(out / "model.pt", weights_only=True)  # the safe loader accepts the file as is
    model = load_model(out / "model.pt")
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 28, 28))
    assert counter.get_total_flops() == m["flops"]
    assert sum(p.numel() for p in model.parameters()) == m["params"]


def test_saved_baseline_is_reused(lenet_trial, tmp_path, capsys):
    out, first = lenet_trial
    proc = call_cli(capsys, "trial", "--baseline", str(out / "baseline.pt"), "--criterion", "expected_abs",
                   "--ratio", "0.3", "--eval-size", "200", "--finetune-epochs", "1", "--attacks", "fgsm",
                   "--test-size", "100", "--quiet", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["clean_acc_baseline"] == first["clean_acc_baseline"]  # same model, not retrained
    assert "training baseline" not in proc.stderr
    assert 0 < m["flops_reduction"] < first["flops_reduction"]


def test_baseline_file_problems_are_one_line_errors(lenet_trial, tmp_path, capsys):
    out, _ = lenet_trial
    proc = call_cli(capsys, "trial", "--baseline", str(out / "baseline.pt"), "--model", "resnet20", "--out",
                    str(tmp_path / "a"))
    assert proc.returncode == 2 and "model: --baseline holds a 'lenet'" in proc.stderr
    proc = call_cli(capsys, "trial", "--baseline", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "b"))
    assert proc.returncode == 2 and proc.stderr.startswith("robustprune: error: baseline: cannot read")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # a LeNet trained on MNIST-5k does not fit digits (8x8 images): refused before any compute
    proc = call_cli(capsys, "trial", "--baseline", str(out / "baseline.pt"), "--dataset", "digits", "--out",
                    str(tmp_path / "c"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("robustprune: error: baseline: --baseline was trained on input (1, 28, 28)")
    assert "dataset 'digits' has (1, 8, 8)" in proc.stderr and not (tmp_path / "c").exists()


def test_resnet20_layer_pruning_from_cli(tmp_path, capsys):
    proc = call_cli(capsys, "trial", "--dataset", "synthetic", "--model", "resnet20", "--granularity", "layer",
                   "--criterion", "pls_vip", "--criterion-param", "pooling=mean", "--ratio", "0.5",
                   "--iterations", "1", "--epochs", "1",
                   "--finetune-epochs", "0", "--attacks", "fgsm", "--eval-size", "32", "--quiet",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["blocks_removed"] == 4 and m["flops_reduction"] > 0
    assert m["criterion_params"] == {"pooling": "mean", "components": 2}
    assert load_model(tmp_path / "model.pt")(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_trial_reads_a_yaml_config_and_flags_override_it(tmp_path, capsys):
    cfg = tmp_path / "trial.yaml"
    cfg.write_text("dataset: digits\nmodel: lenet\ncriterion: pls_vip\nratio: 0.6\nbaseline: {epochs: 8}\n"
                   "attacks: [{name: fgsm, eps: 0.1}, {name: occlusion, params: {size: 3}}]\neval_size: 60\n")
    proc = call_cli(capsys, "trial", "--config", str(cfg), "--ratio", "0.3", "--quiet", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["config"]["dataset"] == "digits" and m["config"]["criterion"] == "pls_vip"
    assert m["config"]["ratio"] == 0.3  # the flag wins over the file
    assert m["robust_acc"] <= min(m["robust_acc_fgsm"], m["robust_acc_occlusion"])


def test_trial_config_with_unknown_key_is_refused(tmp_path, capsys):
    cfg = tmp_path / "trial.yaml"
    cfg.write_text("dataset: digits\nlearning_rate: 0.1\n")
    proc = call_cli(capsys, "trial", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "robustprune: error: learning_rate: unknown key"
    assert not (tmp_path / "out").exists()
