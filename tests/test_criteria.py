"""Criteria against their published definitions, on really trained models.

Each check re-computes a criterion independently (plain forward passes, explicit model
surgery) and compares it with the registry's batched, hook-based implementation.
"""
import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
import torch_pruning as tp
from pydantic import ValidationError

from trainables.config import TrialConfig, format_validation_error
from trainables.cost import model_cost
from trainables.data import Split
from trainables.models import removable_blocks, remove_block
from trainables.prune import CRITERIA, FILTER_CRITERIA, LAYER_CRITERIA, PruneSettings, prune, vip_scores
from trainables.trial import load_data, train_baseline

CPU = torch.device("cpu")


def _kl(p_logits, q_logits):
    return F.kl_div(q_logits.log_softmax(-1), p_logits.log_softmax(-1), reduction="batchmean", log_target=True)


def _one_minus_cka(x, y):
    """Feature-space form of linear CKA: |Y'X|^2 / (|X'X| |Y'Y|) on centred features."""
    x, y = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    return 1 - (y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())


def _lenet_penultimate(model, x):
    return model.classifier[:-1](model.pool(model.features(model.normalize(x))))


@pytest.fixture(scope="module")
def lenet(digits_baseline):
    cfg, baseline = digits_baseline
    return baseline.model().eval(), load_data(cfg).train.subset(64, 1)


@pytest.mark.parametrize("measure", ["kl", "cka"])
def test_filter_ablation_scores_equal_removing_each_channel(lenet, measure):
    model, calib = lenet
    bn = model.features[1]
    importance = FILTER_CRITERIA[measure].make()
    importance.prepare(model, calib, CPU)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=calib.x[:1])
    group = graph.get_pruning_group(model.features[0], tp.prune_conv_out_channels, idxs=list(range(bn.num_features)))
    batched = importance(group)

    with torch.no_grad():
        reference_logits, reference_features = model(calib.x), _lenet_penultimate(model, calib.x)
        direct = []
        for c in range(bn.num_features):
            ablated = copy.deepcopy(model)
            ablated.features[1].weight[c] = 0  # BatchNorm output 0 -> ReLU 0: the channel is gone
            ablated.features[1].bias[c] = 0
            direct.append(_kl(reference_logits, ablated(calib.x)) if measure == "kl" else
                          _one_minus_cka(reference_features, _lenet_penultimate(ablated, calib.x)))
    direct = torch.stack(direct).float()
    best = int(direct.argmax())
    assert batched[best] == float("inf")  # a layer always keeps its best channel
    keep = torch.arange(len(direct)) != best
    assert torch.allclose(batched[keep], direct[keep], rtol=1e-3, atol=1e-6)
    assert direct.std() > 0  # channels really differ: the comparison is not vacuous


@pytest.mark.parametrize("measure", ["kl", "cka"])
def test_layer_ablation_scores_equal_removing_each_block(synthetic_resnet20, measure):
    cfg, baseline = synthetic_resnet20
    model = baseline.model().eval()
    calib = load_data(cfg).train.subset(32, 1)
    blocks = removable_blocks(model)
    scores = LAYER_CRITERIA[measure].make()(model, blocks, calib, CPU, 0)

    def penultimate(m, x):
        return torch.flatten(m.pool(m.layer3(m.layer2(m.layer1(m.stem(m.normalize(x)))))), 1)

    with torch.no_grad():
        for name in blocks:
            without = copy.deepcopy(model)
            remove_block(without, name)
            expected = (_kl(model(calib.x), without(calib.x)) if measure == "kl" else
                        _one_minus_cka(penultimate(model, calib.x), penultimate(without, calib.x)))
            assert scores[name] == pytest.approx(float(expected), rel=1e-3, abs=1e-6), name


@pytest.mark.parametrize("criterion", sorted(set(LAYER_CRITERIA) - {"random"}))
def test_a_useless_early_block_is_removed_first(synthetic_resnet20, criterion):
    """A stage-1 block whose residual branch is zeroed computes nothing: every criterion but
    random must rank it last, whatever its depth (raw rank or magnitude would favour stage 3)."""
    cfg, baseline = synthetic_resnet20
    model = baseline.model().eval()
    with torch.no_grad():
        for p in model.layer1[1].branch.parameters():
            p.zero_()
    calib = load_data(cfg).train.subset(32, 1)
    scores = LAYER_CRITERIA[criterion].make()(model, removable_blocks(model), calib, CPU, 0)
    assert min(scores, key=scores.get) == "layer1.1", scores
    ranked = sorted(scores.values())
    assert ranked[0] < ranked[1]  # strictly first, not a tie


def test_layer_scores_do_not_encode_depth(synthetic_resnet20):
    cfg, baseline = synthetic_resnet20
    model = baseline.model().eval()
    calib = load_data(cfg).train.subset(32, 1)
    blocks = removable_blocks(model)
    for criterion in ("l1", "expected_abs"):  # relative to their stage: every stage averages 1
        scores = LAYER_CRITERIA[criterion].make()(model, blocks, calib, CPU, 0)
        for stage in ("layer1", "layer2", "layer3"):
            values = [v for k, v in scores.items() if k.startswith(stage)]
            assert sum(values) / len(values) == pytest.approx(1.0)
    ranks = LAYER_CRITERIA["hrank"].make()(model, blocks, calib, CPU, 0)
    assert all(0 <= v <= 1 for v in ranks.values())  # a fraction of the largest possible rank


def _built_for_digits(name: str):
    """The model built for the embedded digits, untrained: which channels a criterion picks
    depends on the weights, how many each layer keeps only on the ratio and the dependency
    graph, which is what this test compares (each test builds only its own model)."""
    cfg = TrialConfig(dataset="digits", model=name, baseline={"epochs": 0}, eval_size=8,
                      latency={"repeats": 1}, attacks=[{"name": "fgsm", "eps": 0.1}])
    return cfg, train_baseline(cfg)


@pytest.mark.parametrize("model_name, round_to", [("lenet", None), ("resnet20", None), ("vgg16_bn", None),
                                                   ("mobilenetv2", None), ("resnet20", 8), ("mobilenetv2", 8)])
def test_every_filter_criterion_prunes_the_same_architecture(model_name, round_to):
    """Also with channel counts rounded (`round_to`): rounding changes how many channels a
    layer keeps, never which criterion keeps more."""
    cfg, baseline = _built_for_digits(model_name)
    data = load_data(cfg)
    calib = data.train.subset(1, 1)  # one image: only the coverage matters (and ablations cost)
    costs, widths = {}, {}
    for criterion in FILTER_CRITERIA:
        model = baseline.model()
        prune(model, PruneSettings("filter", criterion, 0.5, 1, round_to=round_to), calib, CPU, lambda m, r: None)
        cost = model_cost(model, data.shape, CPU)
        costs[criterion] = (cost["params"], cost["flops"])
        widths[criterion] = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(set(costs.values())) == 1, costs
    if round_to:
        pruned_widths = next(iter(widths.values()))
        assert all(w % round_to == 0 for w in pruned_widths), pruned_widths
    params, flops = next(iter(costs.values()))
    assert params < baseline.metrics["params"]
    assert flops < 0.6 * baseline.metrics["flops"]  # half the channels of every layer: most of the FLOPs


def _lenet_pooled_outputs(model, x):
    """Globally max-pooled post-ReLU outputs of LeNet's two convolutions and its hidden layer."""
    with torch.no_grad():
        z = model.normalize(x)
        conv1 = model.features[:3](z)
        conv2 = model.features[3:7](conv1)
        hidden = model.classifier[:3](model.pool(model.features[7:](conv2)))
    return [conv1.amax((2, 3)), conv2.amax((2, 3)), hidden]


def _widths(model):
    return [model.features[0].out_channels, model.features[4].out_channels, model.classifier[1].out_features]


def test_global_pls_vip_is_one_threshold_on_raw_vip(lenet):
    """Jordao et al. 2020: one PLS on max-pooled outputs of all layers, one VIP threshold."""
    model, calib = lenet
    pooled = _lenet_pooled_outputs(model, calib.x)
    vip = torch.from_numpy(vip_scores(torch.cat(pooled, 1).double().numpy(), calib.y.numpy()))
    per_layer = torch.split(vip, [p.shape[1] for p in pooled])
    protected = torch.cat([torch.where(v == v.max(), torch.inf, v) for v in per_layer])
    total = len(vip)
    threshold = protected.sort().values[total - int(total * 0.5) - 1]
    expected = [int((torch.where(v == v.max(), torch.inf, v) > threshold).sum()) for v in per_layer]

    pruned = copy.deepcopy(model)
    prune(pruned, PruneSettings("filter", "pls_vip", 0.5, 1, global_pruning=True), calib, CPU, lambda m, r: None)
    assert _widths(pruned) == expected
    assert len(set(e / w for e, w in zip(expected, _widths(model)))) > 1  # layers kept different shares


def test_global_pls_vip_never_empties_a_layer(lenet):
    model, calib = lenet
    model = copy.deepcopy(model)
    prune(model, PruneSettings("filter", "pls_vip", 0.95, 1, global_pruning=True), calib, CPU, lambda m, r: None)
    widths = _widths(model)
    assert min(widths) >= 1
    assert sum(widths) == int(224 * 0.05)


def test_pls_vip_pooling_is_a_parameter(lenet):
    model, calib = lenet
    kept = {}
    for pooling in ("max", "mean"):
        pruned = copy.deepcopy(model)
        prune(pruned, PruneSettings("filter", "pls_vip", 0.5, 1, params={"pooling": pooling}), calib, CPU,
              lambda m, r: None)
        kept[pooling] = torch.cat([p.detach().flatten() for p in pruned.parameters()])
    assert kept["max"].shape == kept["mean"].shape  # same architecture, other channels
    assert not torch.equal(kept["max"], kept["mean"])


@pytest.mark.parametrize("granularity", ["filter", "layer"])
def test_every_criterion_documents_its_definition_and_source(granularity):
    for name, criterion in CRITERIA[granularity].items():
        assert len(criterion.doc) > 60, name
        if name != "random":
            assert re.search(r"(19|20)\d\d", criterion.doc), f"{name}: no source year in its docstring"


@pytest.mark.parametrize("fields, message", [
    ({"criterion": "l1", "criterion_params": {"pooling": "max"}},
     "criterion_params: 'pooling' is not a parameter of filter criterion 'l1'; allowed: none"),
    ({"criterion": "pls_vip", "criterion_params": {"pooling": "median"}},
     "criterion_params.pooling: invalid value 'median'; allowed: 'max' or 'mean' (filter criterion 'pls_vip')"),
    ({"criterion": "pls_vip", "criterion_params": {"components": 0}},
     "criterion_params.components: got 0; allowed: >= 1 (filter criterion 'pls_vip')"),
    ({"criterion": "cka", "granularity": "layer", "model": "vgg16_bn"},
     "granularity: model 'vgg16_bn' has no removable blocks; layer pruning allowed for: mobilenetv2, resnet110, "
     "resnet18, resnet20, resnet32, resnet56 and networks with residual blocks from other sources"),
])
def test_bad_criterion_combinations_are_one_line(fields, message):
    with pytest.raises(ValidationError) as err:
        TrialConfig(**fields)
    assert format_validation_error(err.value) == message


def test_criterion_params_are_recorded_with_defaults():
    records = TrialConfig(criterion="pls_vip", criterion_params={"pooling": "mean"}).records()
    assert records["criterion_params"] == {"pooling": "mean", "components": 2}


def test_block_ablation_scores_hold_when_one_activation_module_runs_several_times():
    """torchvision's bottlenecks call one ReLU three times per forward: the probe replays only
    the calls made before the ablated block, so its scores still equal removing each block."""
    from trainables.models import build_model

    torch.manual_seed(0)
    model = build_model(name="torchvision:resnet50", in_channels=3, num_classes=10, mean=[0.5] * 3,
                        std=[0.25] * 3).eval()
    calib = Split(torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    blocks = removable_blocks(model)
    scores = LAYER_CRITERIA["kl"].make()(model, blocks, calib, CPU, 0)
    with torch.no_grad():
        reference = model(calib.x)
        for name in ("net.layer1.1", "net.layer3.2", "net.layer4.2"):
            without = copy.deepcopy(model)
            remove_block(without, name)
            assert scores[name] == pytest.approx(float(_kl(reference, without(calib.x))), rel=1e-3, abs=1e-6)


def test_vip_of_features_that_never_vary_is_zero():
    """An untrained timm block's branch ends in a BatchNorm initialised to zero: its pooled
    outputs are all 0, and PLS cannot be fitted; none of them carries information."""
    import numpy as np

    assert vip_scores(np.zeros((6, 4)), np.array([0, 1, 2, 0, 1, 2])).tolist() == [0.0] * 4


class _ChannelsLast(nn.Module):
    """ConvNeXt's pattern: pointwise Linear layers on a channels-last map (N, H, W, C)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1, self.act, self.fc2 = nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.fc2(self.act(self.fc1(self.conv(x).permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        return self.head(x.mean((2, 3)))


@pytest.mark.parametrize("criterion", ["kl", "expected_abs"])
def test_filter_criteria_read_the_channels_of_a_linear_layer_on_a_channels_last_map(criterion):
    torch.manual_seed(0)
    model = _ChannelsLast().eval()
    calib = Split(torch.rand(16, 3, 6, 6), torch.randint(0, 4, (16,)))
    importance = FILTER_CRITERIA[criterion].make()
    importance.prepare(model, calib, CPU)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=calib.x[:1])
    group = graph.get_pruning_group(model.fc1, tp.prune_linear_out_channels, idxs=list(range(16)))
    scores = importance(group)
    with torch.no_grad():
        if criterion == "expected_abs":  # the mean |GELU(fc1)| of each of its 16 channels (last dim)
            hidden = F.gelu(model.fc1(model.conv(calib.x).permute(0, 2, 3, 1)))
            direct = hidden.abs().mean((1, 2)).mean(0)
            kept = scores.isfinite()  # the best channel scores +inf: a layer keeps it
            assert int(kept.sum()) == 15 and int(direct.argmax()) == int((~kept).nonzero())
            assert torch.allclose(scores[kept] / scores[kept].mean(), direct[kept] / direct[kept].mean(), rtol=1e-4)
            return
        reference = model(calib.x)
        direct = []
        for c in range(16):
            ablated = copy.deepcopy(model)
            ablated.fc1.weight[c] = 0  # fc1's channel c is 0, GELU(0) = 0: the channel is gone
            ablated.fc1.bias[c] = 0
            direct.append(_kl(reference, ablated(calib.x)))
    direct = torch.stack(direct).float()
    keep = torch.arange(16) != int(direct.argmax())  # a layer keeps its best channel (+inf)
    assert torch.allclose(scores[keep], direct[keep], rtol=1e-3, atol=1e-6) and direct.std() > 0
