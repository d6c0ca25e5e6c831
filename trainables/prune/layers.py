"""Layer (block) criteria: one score per removable block, lowest removed first.

A block's output is x + F(x) (then an activation on ResNets); removing it deletes the
residual branch F. Scores must not encode depth: deeper stages have smaller weights
(larger fan-in) and smaller maps, so raw weight magnitude, activation magnitude and rank
would always point at the same stage whatever the blocks compute. Hence:
  * magnitude scores (l1, expected_abs) are divided by the mean over the remaining
    blocks of the same stage (same width), so a block competes with its peers' scale;
  * hrank is a rank relative to the largest possible, min(H, W);
  * VIP, KL and CKA are unit-free already (one PLS fit; the network's own output).
A scorer takes (model, remaining blocks, calibration batch, device, seed).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split
from ..models import ResidualBlock
from .ablation import AblationProbe, block_ablations
from .activations import JointVip, MeanOverSamples, collect_scores, mean_abs, relative_rank
from .criterion import Criterion, PlsVipParams

BlockScorer = Callable[[nn.Module, dict[str, ResidualBlock], Split, torch.device, int], dict[str, float]]


def stage_width(block: ResidualBlock) -> int:
    """Blocks of one stage share their width: the channels of the branch's last BatchNorm (or
    the block's, where the branch ends in e.g. a drop-path); without one (ConvNeXt's LayerNorm
    blocks), the outputs of the block's last convolution, linear layer or norm."""
    norms = [m for m in block.branch.modules() if isinstance(m, nn.BatchNorm2d)] or \
        [m for m in block.module.modules() if isinstance(m, nn.BatchNorm2d)]
    if norms:
        return norms[-1].num_features
    last = [m for m in block.module.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.LayerNorm))][-1]
    return last.out_channels if isinstance(last, nn.Conv2d) else \
        last.out_features if isinstance(last, nn.Linear) else last.normalized_shape[-1]


def relative_to_stage(scores: dict[str, float], blocks: dict[str, ResidualBlock]) -> dict[str, float]:
    """Each score over the mean score of the same stage's blocks (0 when they are all 0)."""
    stages: dict[int, list[str]] = {}
    for name in scores:
        stages.setdefault(stage_width(blocks[name]), []).append(name)
    out = {}
    for names in stages.values():
        mean = sum(scores[n] for n in names) / len(names)
        out.update({n: scores[n] / mean if mean > 0 else 0.0 for n in names})
    return out


def _branch_statistic(stat, activation=lambda t: t) -> BlockScorer:
    def score(model, blocks, calib, device, seed):
        per_channel = collect_scores(model, {n: (b.branch, activation) for n, b in blocks.items()}, stat, calib,
                                     device)
        return {n: s.mean().item() for n, s in per_channel.items()}
    return score


def _ablation(measure: str) -> BlockScorer:
    def score(model, blocks, calib, device, seed):
        names = list(blocks)
        probe = AblationProbe(model, calib.x.to(device))
        scores = probe.scores(measure, len(names), block_ablations([blocks[n].module for n in names]))
        return dict(zip(names, scores.tolist()))
    return score


def l1(params) -> BlockScorer:
    """Mean |weight| of the block's convolutions (the layer version of Li et al. 2017's
    filter norm, as in Jordao & Pedrini 2021), divided by its stage's mean (module docstring)."""
    def score(model, blocks, calib, device, seed):
        raw = {name: torch.cat([m.weight.detach().abs().flatten() for m in block.module.modules()
                                if isinstance(m, nn.Conv2d)]).mean().item() for name, block in blocks.items()}
        return relative_to_stage(raw, blocks)
    return score


def random(params) -> BlockScorer:
    """Uniformly random scores, seeded per round: the control every criterion must beat."""
    def score(model, blocks, calib, device, seed):
        gen = torch.Generator().manual_seed(seed)
        return dict(zip(blocks, torch.rand(len(blocks), generator=gen).tolist()))
    return score


def expected_abs(params) -> BlockScorer:
    """Mean |residual branch output| on the calibration batch (expectedABS, Jordao & Pedrini
    2021, on what removing the block deletes), divided by its stage's mean."""
    raw = _branch_statistic(MeanOverSamples(mean_abs))

    def score(model, blocks, calib, device, seed):
        return relative_to_stage(raw(model, blocks, calib, device, seed), blocks)
    return score


def hrank(params) -> BlockScorer:
    """Average rank of the post-ReLU residual-branch maps over min(H, W) (HRank, Lin et al.
    2020, per block). Post-ReLU: the pre-activation branch output is full rank whatever the
    block computes; its positive part is what survives the block's activation."""
    return _branch_statistic(MeanOverSamples(relative_rank), F.relu)


def pls_vip(params: PlsVipParams) -> BlockScorer:
    """Mean VIP of the block's branch channels in one PLS regression of all blocks' pooled
    branch outputs on the labels (Jordao et al. 2020, applied to blocks as in Jordao &
    Pedrini 2021); global max pooling by default."""
    return _branch_statistic(JointVip(params.pooling, params.components))


def kl(params) -> BlockScorer:
    """Mean KL divergence between the network's class distribution with and without the block
    (bypassed: it passes its input on) on the calibration batch (Jordao & Pedrini 2021's
    KL-divergence criterion)."""
    return _ablation("kl")


def cka(params) -> BlockScorer:
    """1 - linear CKA (Kornblith et al. 2019) between the penultimate features of the network
    with and without the block: a block whose removal leaves the representation unchanged
    goes first."""
    return _ablation("cka")


LAYER_CRITERIA: dict[str, Criterion] = {
    "l1": Criterion(l1), "random": Criterion(random), "expected_abs": Criterion(expected_abs),
    "hrank": Criterion(hrank), "pls_vip": Criterion(pls_vip, PlsVipParams), "kl": Criterion(kl),
    "cka": Criterion(cka),
}
