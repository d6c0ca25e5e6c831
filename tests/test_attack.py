"""Every attack in the registry really attacks, respects its budget, and is sane in it."""
import pytest
import torch

from trainables.attacks import ATTACKS, adversarial_examples
from trainables.attacks.evaluation import evaluate_robustness
from trainables.config import AttackConfig, TrialConfig
from trainables.train import accuracy

CPU = torch.device("cpu")


def spec(name, eps=None, **params):
    return AttackConfig(name=name, eps=eps, params=params).spec(default_eps=0.1)


# Small but real budgets: each attack must hurt a naturally trained model.
SPECS = {
    "fgsm": spec("fgsm", 0.15),
    "pgd": spec("pgd", 0.15, steps=10, restarts=2),
    "bim": spec("bim", 0.15, steps=10),
    "cw": spec("cw", None, steps=30, c=1.0, lr=0.05),
    "deepfool": spec("deepfool", None, steps=20),
    "autoattack": spec("autoattack", 0.15, version="rand"),
    "square": spec("square", 0.15, n_queries=200),
    "apgd": spec("apgd", 0.15, steps=20),
    "occlusion": spec("occlusion", size=3),
    "spatial": spec("spatial", max_rotation=30, max_translation=2, rotations=7, translations=3),
}

# Each attack's budget over a grid whose first point is "no attack" (clean accuracy).
BUDGETS = {
    **{name: [spec(name, eps, **({"steps": 10, "restarts": 2} if name == "pgd" else {}))
              for eps in (0.0, 0.05, 0.1, 0.2)] for name in ("fgsm", "pgd", "bim")},
    "cw": [spec("cw", eps, steps=30, lr=0.05) for eps in (0.0, 0.3, 0.6, 1.2)],
    "deepfool": [spec("deepfool", eps, steps=20) for eps in (0.0, 0.3, 0.6, 1.2)],
    "autoattack": [spec("autoattack", eps, version="rand") for eps in (0.0, 0.05, 0.1, 0.2)],
    "square": [spec("square", eps, n_queries=100) for eps in (0.0, 0.05, 0.1, 0.2)],
    "apgd": [spec("apgd", eps, steps=20) for eps in (0.0, 0.05, 0.1, 0.2)],
    "occlusion": [spec("occlusion", size=s) for s in (0, 1, 2, 3)],
    "spatial": [spec("spatial", max_rotation=r, max_translation=t, rotations=5, translations=3)
                for r, t in ((0, 0), (10, 0.5), (20, 1), (30, 2))],
}

# DeepFool runs image by image (a Jacobian per step): its tests use fewer images.
IMAGES = {"deepfool": 24}


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
    assert set(SPECS) == set(ATTACKS) == set(BUDGETS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_attack_lowers_accuracy_and_respects_its_bound(trained, name):
    model, subset, k = trained
    subset = subset.subset(IMAGES.get(name, len(subset)), 0)
    s = SPECS[name]
    clean = accuracy(model, subset, CPU)
    robust = evaluate_robustness(model, [s], subset, k, CPU).metrics()["robust_acc"]
    assert robust < clean - 0.1, (name, clean, robust)
    adv = adversarial_examples(model, s, subset.x, subset.y, k, seed=0)
    assert adv.shape == subset.x.shape and 0 <= adv.min() and adv.max() <= 1
    delta = (adv - subset.x).flatten(1)
    norm = ATTACKS[name].norm
    if norm == "linf":
        assert delta.abs().max() <= s.eps + 1e-6
    elif norm == "patch":  # only pixels inside one size x size square may change, to one of the fills
        changed = (adv != subset.x).any(1)  # (n, h, w)
        for img, mask in zip(adv, changed):
            rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
            if len(rows):
                assert rows.max() - rows.min() < 3 and cols.max() - cols.min() < 3
                assert set(img[:, mask].flatten().tolist()) <= {0.0, 0.5, 1.0}


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_zero_budget_is_clean_accuracy_and_accuracy_never_rises_with_budget(trained, name):
    model, subset, k = trained
    small = subset.subset(min(40, IMAGES.get(name, 40)), 1)
    accs = [evaluate_robustness(model, [s], small, k, CPU).metrics()["robust_acc"] for s in BUDGETS[name]]
    assert accs[0] == pytest.approx(accuracy(model, small, CPU)), accs
    assert all(b <= a for a, b in zip(accs, accs[1:])), (name, accs)
    assert accs[-1] < accs[0], (name, accs)  # the largest budget really attacks


def test_l2_budget_discards_farther_examples(trained):
    model, subset, k = trained
    subset = subset.subset(IMAGES["deepfool"], 0)
    unbounded = evaluate_robustness(model, [spec("deepfool", steps=20)], subset, k, CPU).metrics()["robust_acc"]
    tiny = evaluate_robustness(model, [spec("deepfool", 0.05, steps=20)], subset, k, CPU).metrics()["robust_acc"]
    adv = adversarial_examples(model, spec("deepfool", 0.5, steps=20), subset.x, subset.y, k, 0)
    assert (adv - subset.x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-6
    assert unbounded < tiny


def test_pgd_with_restarts_is_at_least_as_strong_as_fgsm_and_fewer_restarts(trained):
    model, subset, k = trained

    def acc(s):
        return evaluate_robustness(model, [s], subset, k, CPU).metrics()["robust_acc"]
    fgsm, pgd1, pgd3 = acc(spec("fgsm", 0.1)), acc(spec("pgd", 0.1, steps=10, restarts=1)), \
        acc(spec("pgd", 0.1, steps=10, restarts=3))
    assert pgd3 <= pgd1 <= fgsm


def test_pgd_at_large_eps_breaks_an_mnist_model():
    """A check that the attack really attacks: PGD at eps 0.5 leaves (almost) nothing robust."""
    from trainables.trial import load_data, train_baseline

    cfg = TrialConfig(dataset="mnist5k", model="lenet", baseline={"epochs": 2}, eval_size=100, latency={"repeats": 1},
                      attacks=[{"name": "fgsm"}])
    model = train_baseline(cfg).model()
    test = load_data(cfg).test.subset(200, 0)
    assert accuracy(model, test, CPU) > 0.85
    r = evaluate_robustness(model, [spec("pgd", 0.5, steps=20, restarts=1)], test, 10, CPU).metrics()
    assert r["robust_acc"] <= 0.05, r


def test_worst_case_is_per_sample_and_cascade_agrees_image_by_image(trained):
    model, subset, k = trained
    suite = [spec("fgsm", 0.1), spec("pgd", 0.1, steps=10, restarts=2), spec("occlusion", size=2)]
    full = evaluate_robustness(model, suite, subset, k, CPU, per_attack=True)
    cascade = evaluate_robustness(model, suite, subset, k, CPU, per_attack=False, batch_size=17)
    assert torch.equal(full.robust, cascade.robust)
    every = full.clean.clone()
    for mask in full.per_attack.values():
        assert not (mask & ~full.clean).any()  # robust implies correct clean
        every &= mask
    assert torch.equal(full.robust, every)
    m = full.metrics()
    assert m["robust_acc"] <= min(m[f"robust_acc_{s.name}"] for s in suite)


def test_full_strength_raises_effort_not_budget():
    weak = AttackConfig(name="pgd", eps=0.03, steps=10, params={"restarts": 1}).at_full_strength().spec(0.1)
    assert (weak.eps, weak.params["steps"], weak.params["restarts"]) == (0.03, 50, 5)
    occ = AttackConfig(name="occlusion", params={"size": 4, "stride": 3, "fills": [0.2]}).at_full_strength()
    assert occ.spec(0.1).params == {"size": 4, "stride": 1, "fills": [0.0, 0.2, 0.5, 1.0]}
    strong = AttackConfig(name="cw", steps=200).at_full_strength().spec(0.1)
    assert strong.params["steps"] == 200  # already stronger than the default: kept
