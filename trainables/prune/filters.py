"""Filter (channel) criteria for torch-pruning's dependency graph.

torch-pruning removes *groups*: a channel together with everything coupled to it (the
next layers' inputs, residual additions, depthwise convolutions). Every criterion scores
every group the magnitude criteria prune, so at equal ratio with per-layer allocation all
criteria yield the same architecture.

Activation and ablation criteria read the output that stands for a group's channels: its
BatchNorm's output, or the layer's own output when no BatchNorm follows (e.g. LeNet's
hidden Linear layer), passed through the activation the network applies right after it.
An importance object may have `prepare(model, calib, device)`, run before every pruning
step on the current (partly pruned) model; torch-pruning scores all groups of a step
before it removes any, so stored scores stay aligned with channel indices.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..data import Split
from ..models import classifier_layer
from .ablation import AblationProbe, channel_ablations
from .activations import JointVip, MeanOverSamples, activation_after, collect_scores, execution_order, mean_abs, \
    relative_rank
from .criterion import Criterion, PlsVipParams
from .torch_pruning_import import tp, tp_fn

OUT_CHANNEL_FNS = (tp_fn.prune_batchnorm_out_channels, tp_fn.prune_conv_out_channels,
                   tp_fn.prune_linear_out_channels)


def scored_layers(model: nn.Module, order: list[nn.Module]) -> dict[nn.Module, Callable]:
    """The layers whose outputs stand for channels, each with the activation that follows it
    (`order`: the model's leaf modules as a forward pass runs them): every BatchNorm, and
    every Conv/Linear not followed by one (the classifier excepted)."""
    classifier = classifier_layer(model)
    scored = {}
    for i, m in enumerate(order):
        followed_by_bn = i + 1 < len(order) and isinstance(order[i + 1], nn.BatchNorm2d)
        if isinstance(m, nn.BatchNorm2d) or (isinstance(m, (nn.Conv2d, nn.Linear)) and not followed_by_bn
                                              and m is not classifier):
            scored[m] = activation_after(order, i)
    return scored


def group_layers(group, scored) -> list[tuple[nn.Module, list[int], list[int]]]:
    """(layer, channel indices, root channel of each) for the group's scored output channels."""
    return [(dep.layer, list(idxs), list(group[i].root_idxs)) for i, (dep, idxs) in enumerate(group)
            if dep.pruning_fn in OUT_CHANNEL_FNS and dep.layer in scored]


def keep_best_channel(scores: torch.Tensor) -> torch.Tensor:
    """Under a global threshold a layer must keep a channel: its best one scores +inf."""
    scores = scores.clone()
    scores[scores.argmax()] = float("inf")
    return scores


class ActivationImportance(tp.importance.GroupMagnitudeImportance):
    """Scores from a channel statistic of the scored layers' outputs on the calibration batch
    (the mean over a coupled group's layers)."""

    def __init__(self, stat, normalizer: str | None = "mean"):
        super().__init__(p=1, group_reduction="mean", normalizer=normalizer)
        self.stat = stat
        self.scores: dict[nn.Module, torch.Tensor] = {}

    def prepare(self, model: nn.Module, calib: Split, device: torch.device) -> None:
        scored = scored_layers(model, execution_order(model, calib.x[:1].to(device)))
        self.scores = collect_scores(model, {m: (m, act) for m, act in scored.items()}, self.stat, calib, device)

    @torch.no_grad()
    def __call__(self, group):
        layers = group_layers(group, self.scores)
        if not layers:
            return None
        imps = [self.scores[layer][idxs] for layer, idxs, _ in layers]
        reduced = self._reduce(imps, [roots for _, _, roots in layers])
        return keep_best_channel(self._normalize(reduced, self.normalizer))


class AblationImportance(tp.importance.Importance):
    """Scores a channel by the divergence of the network's output when the channel is
    zeroed in every layer of its group (batched ablations, see ablation.py)."""

    def __init__(self, measure: str):
        self.measure = measure

    def prepare(self, model: nn.Module, calib: Split, device: torch.device) -> None:
        self.probe = AblationProbe(model, calib.x.to(device))
        self.scored = scored_layers(model, self.probe.calls)

    @torch.no_grad()
    def __call__(self, group):
        layers = group_layers(group, self.scored)
        if not layers:
            return None
        count = len(group[0].root_idxs)
        scores = self.probe.scores(self.measure, count, channel_ablations(layers))
        return keep_best_channel(scores)


class BNScaleImportance(tp.importance.BNScaleImportance):
    """Groups without a BatchNorm have no gamma: they fall back to the L1 norm of their weights."""

    def __init__(self):
        super().__init__()
        self.fallback = tp.importance.GroupMagnitudeImportance(p=1)

    def __call__(self, group):
        scores = super().__call__(group)
        return self.fallback(group) if scores is None else scores


class TaylorImportance(tp.importance.GroupTaylorImportance):
    def prepare(self, model: nn.Module, calib: Split, device: torch.device) -> None:
        """First-order Taylor importance reads .grad: one backward pass on the calibration batch."""
        model.eval()
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(calib.x.to(device)), calib.y.to(device))
        loss.backward()


def l1(params):
    """L1 norm of a group's weights (Li et al. 2017, "Pruning filters for efficient ConvNets"),
    torch-pruning's GroupMagnitudeImportance(p=1): summed over the coupled layers."""
    return tp.importance.GroupMagnitudeImportance(p=1)


def l2(params):
    """L2 norm of a group's weights (the L2 variant of Li et al. 2017's filter norm),
    torch-pruning's GroupMagnitudeImportance(p=2)."""
    return tp.importance.GroupMagnitudeImportance(p=2)


def random(params):
    """Uniformly random scores: the control every criterion must beat."""
    return tp.importance.RandomImportance()


def taylor(params):
    """|weight x gradient| of the loss on the calibration batch, first-order Taylor expansion
    of the loss change (Molchanov et al. 2019), torch-pruning's GroupTaylorImportance."""
    return TaylorImportance()


def lamp(params):
    """Layer-adaptive magnitude (Lee et al. 2021, LAMP): squared weight norm over the sum of
    the larger ones in its layer, torch-pruning's LAMPImportance(p=2)."""
    return tp.importance.LAMPImportance(p=2)


def bn_scale(params):
    """|gamma| of the channel's BatchNorm (Liu et al. 2017, network slimming),
    torch-pruning's BNScaleImportance; a group without a BatchNorm (LeNet's hidden Linear
    layer) is ranked by the L1 norm of its weights instead, so bn_scale prunes every layer."""
    return BNScaleImportance()


def expected_abs(params):
    """Mean |activation| of the channel on the calibration batch ("expectedABS" in Jordao &
    Pedrini 2021). Unchanged from the paper apart from what every activation criterion reads
    (module docstring)."""
    return ActivationImportance(MeanOverSamples(mean_abs))


def hrank(params):
    """Average matrix rank of the channel's feature maps on the calibration batch (Lin et al.
    2020, HRank), here divided by min(H, W) so layers of different resolution compare under
    global allocation; 1x1 maps count as rank 1 when non-zero."""
    return ActivationImportance(MeanOverSamples(relative_rank))


def pls_vip(params: PlsVipParams):
    """VIP score of the channel in one PLS regression of every scored channel's pooled
    output on the one-hot labels (Jordao et al. 2020, "Deep network compression based on
    partial least squares"): global max pooling by default (`pooling: mean` optional),
    `components` latent components. Raw VIP scores, never normalised per layer, so with
    `global_pruning: true` one threshold applies to all layers as in the authors' method
    (each layer keeps at least its best filter); with per-layer allocation it ranks within
    each layer like every other criterion."""
    return ActivationImportance(JointVip(params.pooling, params.components), normalizer=None)


def kl(params):
    """Mean KL divergence between the network's class distribution and that of the network
    with the channel zeroed in every layer of its group, on the calibration batch (the
    KL-divergence criterion compared by Jordao & Pedrini 2021). Comparable across layers as
    it is: raw scores under global allocation."""
    return AblationImportance("kl")


def cka(params):
    """1 - linear CKA (Kornblith et al. 2019) between the penultimate features of the network
    and of the network with the channel zeroed: a channel whose removal leaves the
    representation unchanged goes first. Our extension of the layer criterion to filters."""
    return AblationImportance("cka")


FILTER_CRITERIA: dict[str, Criterion] = {
    "l1": Criterion(l1), "l2": Criterion(l2), "random": Criterion(random), "taylor": Criterion(taylor),
    "lamp": Criterion(lamp), "bn_scale": Criterion(bn_scale), "expected_abs": Criterion(expected_abs),
    "hrank": Criterion(hrank), "pls_vip": Criterion(pls_vip, PlsVipParams), "kl": Criterion(kl),
    "cka": Criterion(cka),
}
