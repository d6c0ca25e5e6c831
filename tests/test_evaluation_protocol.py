"""The evaluation protocol against an independent plain-torch re-implementation, and the
records a reader needs. A real `robustprune trial`: trained, pruned LeNet, whole test split."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trainables.data import load_dataset
from trainables.store import load_model

pytestmark = pytest.mark.e2e  # real `robustprune trial` processes: not in make test-quick
CLI = [str(Path(sys.executable).parent / "robustprune")]
EPS, PATCH, FILLS = 0.1, 3, (0.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protocol")
    cfg = tmp / "trial.yaml"
    cfg.write_text(f"dataset: digits\nmodel: lenet\ncriterion: l1\nratio: 0.5\nbaseline: {{epochs: 15}}\n"
                   f"val_size: 200\neval_size: 100\nlatency: {{repeats: 2}}\n"
                   f"attacks: [{{name: fgsm, eps: {EPS}}}, {{name: occlusion, params: {{size: {PATCH}}}}}]\n")
    out = tmp / "out"
    proc = subprocess.run(CLI + ["trial", "--config", str(cfg), "--quiet", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "metrics.json").read_text()), load_model(out / "model.pt").eval()


def fgsm_by_hand(model, x, y, eps):
    x = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


@torch.no_grad()
def occlusion_survivors_by_hand(model, x, y, size):
    """Brute force: every position at stride 1, every fill, one image at a time."""
    survives = torch.ones(len(y), dtype=torch.bool)
    h, w = x.shape[2:]
    for i in range(len(y)):
        for top in range(h - size + 1):
            for left in range(w - size + 1):
                for fill in FILLS:
                    img = x[i:i + 1].clone()
                    img[..., top:top + size, left:left + size] = fill
                    if model(img).argmax(1).item() != y[i].item():
                        survives[i] = False
    return survives


def test_test_metrics_match_an_independent_reimplementation(trial):
    m, model = trial
    test = load_dataset("digits", seed=0, val_size=200).test  # whole test split
    x, y = test.x, test.y
    adv = fgsm_by_hand(model, x, y, EPS)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        fgsm_ok = clean & (model(adv).argmax(1) == y)
    occ_ok = clean & occlusion_survivors_by_hand(model, x, y, PATCH)
    n = len(y)
    one_image = 1 / n + 1e-9
    assert m["test_clean_acc"] == pytest.approx(clean.sum().item() / len(y), abs=1e-9)
    assert abs(m["test_robust_acc_fgsm"] - fgsm_ok.sum().item() / n) <= one_image
    assert abs(m["test_robust_acc_occlusion"] - occ_ok.sum().item() / n) <= one_image
    assert abs(m["test_robust_acc"] - (fgsm_ok & occ_ok).sum().item() / n) <= one_image
    # per-sample worst case, not the minimum of per-attack accuracies
    assert m["test_robust_acc"] <= min(m["test_robust_acc_fgsm"], m["test_robust_acc_occlusion"])


def test_validation_and_test_are_separate_and_recorded(trial):
    m, _ = trial
    assert m["splits"] == {"train": 1417, "val": 200, "test": 180, "eval": 100, "test_eval": 180,
                           "calibration": 256}
    for key in ("clean_acc", "robust_acc", "robust_acc_fgsm", "test_clean_acc", "test_robust_acc",
                "test_robust_acc_fgsm", "test_clean_acc_baseline", "test_robust_acc_baseline"):
        assert key in m, key
    fgsm, occlusion = m["attacks"]
    assert fgsm == {"name": "fgsm", "eps": EPS}
    assert occlusion == {"name": "occlusion", "eps": None, "size": PATCH, "stride": 1, "fills": list(FILLS)}
    assert m["final_attacks"] == m["attacks"]  # a CLI trial uses its attacks for both
    assert m["seeds"]["splits"] == 0 and m["seeds"]["calibration"] == 1


def test_dataset_default_eps_is_recorded_resolved(tmp_path):
    proc = subprocess.run(CLI + ["trial", "--dataset", "digits", "--epochs", "3", "--attacks", "fgsm,pgd",
                                 "--eval-size", "16", "--test-size", "20", "--eps-grid", "0,0.05,0.1", "--quiet",
                                 "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert [a["eps"] for a in m["attacks"]] == [0.1, 0.1]  # digits' default eps, never null
    assert m["attacks"][1] == {"name": "pgd", "eps": 0.1, "steps": 50, "alpha": pytest.approx(0.005),
                               "restarts": 5}
    curve = m["robustness_curve"]
    assert [p["eps"] for p in curve] == [0.0, 0.05, 0.1]
    assert curve[0]["test_robust_acc"] == pytest.approx(m["test_clean_acc"])
    assert curve[-1]["test_robust_acc"] == pytest.approx(m["test_robust_acc"])  # same eps, same images
    assert all(b["test_robust_acc"] <= a["test_robust_acc"] for a, b in zip(curve, curve[1:]))
    assert m["splits"]["test_eval"] == 20


