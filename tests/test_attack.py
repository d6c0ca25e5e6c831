import pytest
import torch

from trainables.attack import ATTACKS, AttackSpec, adversarial_examples, robust_accuracy
from trainables.train import accuracy

CPU = torch.device("cpu")

# Small but real budgets: each attack must hurt a naturally trained model.
SPECS = {
    "fgsm": AttackSpec("fgsm", 0.15),
    "pgd": AttackSpec("pgd", 0.15, steps=10),
    "bim": AttackSpec("bim", 0.15, steps=10),
    "cw": AttackSpec("cw", None, steps=30, params={"c": 1.0, "lr": 0.05}),
    "deepfool": AttackSpec("deepfool", None, steps=20),
    "autoattack": AttackSpec("autoattack", 0.15, params={"version": "rand"}),
    "square": AttackSpec("square", 0.15, params={"n_queries": 200}),
    "occlusion": AttackSpec("occlusion", None, params={"size": 3, "stride": 1}),
}


@pytest.fixture(scope="module")
def trained(digits_baseline):
    cfg, baseline = digits_baseline
    from trainables.trial import load_data

    data = load_data(cfg)
    subset = data.test.subset(60, 0)
    model = baseline.model()
    assert accuracy(model, subset, CPU) > 0.85  # the model really learned the task
    return model, subset, data.num_classes


def test_registry_has_every_attack():
    assert set(SPECS) == set(ATTACKS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_attack_lowers_accuracy_and_respects_its_bound(trained, name):
    model, subset, k = trained
    spec = SPECS[name]
    clean = accuracy(model, subset, CPU)
    robust = robust_accuracy(model, spec, subset, k, CPU, seed=0)
    assert robust < clean - 0.1, (name, clean, robust)
    adv = adversarial_examples(model, spec, subset.x, subset.y, k, seed=0)
    assert adv.shape == subset.x.shape and 0 <= adv.min() and adv.max() <= 1
    delta = (adv - subset.x).flatten(1)
    norm = ATTACKS[name].norm
    if norm == "linf":
        assert delta.abs().max() <= spec.eps + 1e-6
    elif norm == "patch":  # only pixels inside one size x size square may change
        changed = (adv != subset.x).any(1)  # (n, h, w)
        for mask in changed:
            rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
            if len(rows):
                assert rows.max() - rows.min() < 3 and cols.max() - cols.min() < 3


@pytest.mark.parametrize("name", ["fgsm", "pgd", "bim", "cw", "deepfool"])
def test_zero_budget_gives_clean_accuracy(trained, name):
    model, subset, k = trained
    spec = AttackSpec(name, 0.0, steps=3)
    assert robust_accuracy(model, spec, subset, k, CPU) == pytest.approx(accuracy(model, subset, CPU))


def test_l2_budget_discards_farther_examples(trained):
    model, subset, k = trained
    unbounded = robust_accuracy(model, AttackSpec("deepfool", None, steps=20), subset, k, CPU)
    tiny = robust_accuracy(model, AttackSpec("deepfool", 0.05, steps=20), subset, k, CPU)
    adv = adversarial_examples(model, AttackSpec("deepfool", 0.5, steps=20), subset.x, subset.y, k, 0)
    assert (adv - subset.x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-6
    assert unbounded < tiny


def test_pgd_is_at_least_as_strong_as_fgsm(trained):
    model, subset, k = trained
    fgsm = robust_accuracy(model, AttackSpec("fgsm", 0.1), subset, k, CPU)
    pgd = robust_accuracy(model, AttackSpec("pgd", 0.1, steps=10), subset, k, CPU)
    assert pgd <= fgsm
