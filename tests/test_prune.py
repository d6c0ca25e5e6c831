import numpy as np
import pytest
import torch

from trainables.models import removable_blocks
from trainables.prune import FILTER_CRITERIA, LAYER_CRITERIA, vip_scores
from trainables.trial import run_trial


def test_vip_ranks_informative_features_first():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    informative = np.eye(3)[y] + 0.3 * rng.normal(size=(300, 3))
    noise = rng.normal(size=(300, 5))
    vip = vip_scores(np.hstack([informative, noise]), y)
    assert vip[:3].min() > vip[3:].max()
    # VIP's defining property: the mean of squared scores is 1
    assert np.mean(vip ** 2) == pytest.approx(1.0, rel=1e-6)


def test_activation_criteria_choose_differently_from_magnitude(synthetic_resnet20):
    cfg, baseline = synthetic_resnet20
    kept = {}
    for crit in ("l1", "expected_abs", "pls_vip"):
        model = run_trial(cfg.model_copy(update={"criterion": crit, "iterations": 1}), baseline).model
        kept[crit] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert not torch.equal(kept["l1"], kept["expected_abs"])
    assert not torch.equal(kept["l1"], kept["pls_vip"])


@pytest.mark.parametrize("criterion", sorted(LAYER_CRITERIA))
def test_layer_criteria_remove_only_identity_blocks(synthetic_resnet20, criterion):
    cfg, baseline = synthetic_resnet20
    result = run_trial(cfg.model_copy(update={"criterion": criterion, "granularity": "layer"}), baseline)
    removable = removable_blocks(baseline.model())
    # resnet20: 9 blocks; all of layer1 and 2 of layer2/layer3 keep their shape: 7 removable
    assert len(removable) == 7
    assert result.metrics["blocks_removed"] == round(0.5 * 7) == 4
    assert set(result.spec["removed_blocks"]) <= set(removable)  # never a downsampling block
    assert 0 < result.metrics["flops_reduction"] < 0.5
    assert result.model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_layer_criteria_registry_covers_paper_criteria():
    paper = {"l1", "expected_abs", "hrank", "kl", "pls_vip"}  # Jordao & Pedrini 2021, filters and layers
    assert paper | {"cka", "random"} <= set(LAYER_CRITERIA)
    assert paper | {"cka", "l2", "random", "taylor", "lamp", "bn_scale"} <= set(FILTER_CRITERIA)
