"""Structural pruning: criteria registries (filters and layers) and the iterative schedule.

Filter pruning removes output channels with torch-pruning's dependency graph, so
coupled layers (residual additions, depthwise convolutions, the classifier's inputs)
shrink together. Layer pruning removes whole blocks with identity shortcuts.

The paper's activation criteria (Jordao & Pedrini 2021) score a channel from what it
outputs on a seeded calibration batch:
  expected_abs  mean |activation|
  hrank         average matrix rank of the channel's feature maps (Lin et al. 2020)
  pls_vip       VIP score of the channel's pooled activation in one PLS regression of
                every scored channel on the one-hot labels (Jordao et al. 2020)
Filters are scored on relu(BatchNorm output), the activation the next layer sees;
blocks on their residual branch's output, the part that removing the block deletes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function as tp_fn

from .data import Split
from .models import classifier_layer, removable_blocks, remove_block

# --------------------------------------------------------------------------- activation statistics


def _expected_abs(maps: torch.Tensor) -> torch.Tensor:
    return maps.abs().mean(2)


def _rank(maps: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    n, c, _ = maps.shape
    if hw[0] * hw[1] == 1:
        return (maps[..., 0] != 0).float()
    return torch.linalg.matrix_rank(maps.reshape(n, c, *hw).float()).float()


def _pooled(maps: torch.Tensor) -> torch.Tensor:
    return maps.mean(2)


def vip_scores(features: np.ndarray, labels: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Variable importance in projection of each feature column for a PLS fit on one-hot labels."""
    from sklearn.cross_decomposition import PLSRegression

    n, p = features.shape
    targets = np.eye(int(labels.max()) + 1)[labels]
    a = max(1, min(n_components, p, n - 1))
    pls = PLSRegression(n_components=a, scale=True).fit(features, targets)
    t, w, q = pls.x_scores_, pls.x_weights_, pls.y_loadings_
    explained = (t ** 2).sum(0) * (q ** 2).sum(0)  # Y variance explained by each component
    w_norm = (w / np.linalg.norm(w, axis=0, keepdims=True)) ** 2
    return np.sqrt(p * (w_norm @ explained) / explained.sum())


@dataclass(frozen=True)
class ActivationStat:
    """per_sample: (n, C, H*W) maps, (H, W) -> (n, C); reduce: all layers' (N, C) + labels -> (C,) each."""
    per_sample: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]
    joint: bool = False  # scored jointly across layers (PLS) instead of a mean over samples

    def reduce(self, features: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.joint:
            return {k: f.mean(0) for k, f in features.items()}
        names = list(features)
        stacked = torch.cat([features[k] for k in names], dim=1).double().numpy()
        vip = torch.from_numpy(vip_scores(stacked, labels.numpy())).float()
        return dict(zip(names, torch.split(vip, [features[k].shape[1] for k in names])))


ACTIVATION_STATS = {
    "expected_abs": ActivationStat(lambda m, hw: _expected_abs(m)),
    "hrank": ActivationStat(_rank),
    "pls_vip": ActivationStat(lambda m, hw: _pooled(m), joint=True),
}


@torch.no_grad()
def collect_scores(model: nn.Module, modules: dict[str, nn.Module], stat: ActivationStat, calib: Split,
                   device: torch.device, post_relu: bool, chunk: int = 128) -> dict[str, torch.Tensor]:
    """Per-channel scores of each module's output on the calibration batch."""
    feats: dict[str, list[torch.Tensor]] = {k: [] for k in modules}

    def hook_for(name):
        def hook(_module, _inputs, out):
            out = torch.relu(out) if post_relu else out
            hw = tuple(out.shape[2:]) if out.dim() == 4 else (1, 1)
            maps = out.reshape(out.shape[0], out.shape[1], -1)
            feats[name].append(stat.per_sample(maps, hw).cpu())
        return hook

    handles = [m.register_forward_hook(hook_for(k)) for k, m in modules.items()]
    model.eval()
    try:
        for i in range(0, len(calib), chunk):
            model(calib.x[i:i + chunk].to(device))
    finally:
        for h in handles:
            h.remove()
    return stat.reduce({k: torch.cat(v) for k, v in feats.items()}, calib.y)


# --------------------------------------------------------------------------- filter criteria


class ActivationImportance(tp.importance.GroupMagnitudeImportance):
    """torch-pruning importance from per-channel activation scores of each BatchNorm.

    `refresh` recomputes the scores on the current (partly pruned) model before each
    pruning step; channel indices then match the ones torch-pruning asks about.
    """

    def __init__(self, stat: ActivationStat):
        super().__init__(p=1, group_reduction="mean", normalizer="mean")
        self.stat = stat
        self.scores: dict[nn.Module, torch.Tensor] = {}

    def refresh(self, model: nn.Module, calib: Split, device: torch.device) -> None:
        bns = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
        by_name = collect_scores(model, bns, self.stat, calib, device, post_relu=True)
        self.scores = {bns[k]: v for k, v in by_name.items()}

    @torch.no_grad()
    def __call__(self, group):
        imps, idxs_list = [], []
        for i, (dep, idxs) in enumerate(group):
            if dep.pruning_fn == tp_fn.prune_batchnorm_out_channels and dep.layer in self.scores:
                imps.append(self.scores[dep.layer][idxs])
                idxs_list.append(group[i].root_idxs)
        if not imps:
            return None
        return self._normalize(self._reduce(imps, idxs_list), self.normalizer)


def _taylor_gradients(model: nn.Module, calib: Split, device: torch.device) -> None:
    """First-order Taylor importance reads .grad: one backward pass on the calibration batch."""
    model.eval()
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(calib.x.to(device)), calib.y.to(device))
    loss.backward()


@dataclass(frozen=True)
class FilterCriterion:
    make: Callable[[], tp.importance.Importance]
    prepare: Callable[[tp.importance.Importance, nn.Module, Split, torch.device], None] = (
        lambda imp, model, calib, device: None)


def _activation_criterion(stat_name: str) -> FilterCriterion:
    return FilterCriterion(make=lambda: ActivationImportance(ACTIVATION_STATS[stat_name]),
                           prepare=lambda imp, model, calib, device: imp.refresh(model, calib, device))


FILTER_CRITERIA: dict[str, FilterCriterion] = {
    "l1": FilterCriterion(lambda: tp.importance.GroupMagnitudeImportance(p=1)),
    "l2": FilterCriterion(lambda: tp.importance.GroupMagnitudeImportance(p=2)),
    "random": FilterCriterion(lambda: tp.importance.RandomImportance()),
    "taylor": FilterCriterion(lambda: tp.importance.GroupTaylorImportance(),
                              lambda imp, model, calib, device: _taylor_gradients(model, calib, device)),
    "lamp": FilterCriterion(lambda: tp.importance.LAMPImportance(p=2)),
    "bn_scale": FilterCriterion(lambda: tp.importance.BNScaleImportance()),
    **{name: _activation_criterion(name) for name in ACTIVATION_STATS},
}

# --------------------------------------------------------------------------- layer criteria
# A layer criterion maps (model, remaining blocks, calibration batch, device, seed) to
# one score per block; the lowest-scoring blocks are removed first.

BlockScorer = Callable[[nn.Module, dict[str, nn.Module], Split, torch.device, int], dict[str, float]]


def _block_l1(model, blocks, calib, device, seed):
    """Mean |weight| of the block's convolutions (size-normalized so blocks compare)."""
    out = {}
    for name, block in blocks.items():
        ws = [m.weight.detach().abs().flatten() for m in block.modules() if isinstance(m, nn.Conv2d)]
        out[name] = torch.cat(ws).mean().item()
    return out


def _block_activation(stat_name: str) -> BlockScorer:
    def score(model, blocks, calib, device, seed):
        branches = {name: b.branch for name, b in blocks.items()}
        per_channel = collect_scores(model, branches, ACTIVATION_STATS[stat_name], calib, device, post_relu=False)
        return {name: s.mean().item() for name, s in per_channel.items()}
    return score


def _block_random(model, blocks, calib, device, seed):
    gen = torch.Generator().manual_seed(seed)
    return dict(zip(blocks, torch.rand(len(blocks), generator=gen).tolist()))


LAYER_CRITERIA: dict[str, BlockScorer] = {
    "l1": _block_l1,
    "random": _block_random,
    **{name: _block_activation(name) for name in ACTIVATION_STATS},
}

CRITERIA = {"filter": FILTER_CRITERIA, "layer": LAYER_CRITERIA}


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class PruneSettings:
    granularity: str  # filter | layer
    criterion: str
    ratio: float  # filter: fraction of channels removed per layer; layer: fraction of removable blocks
    iterations: int
    global_pruning: bool = False


FineTune = Callable[[nn.Module, int], None]  # (model, round index) -> None, trains in place


def prune_filters(model: nn.Module, s: PruneSettings, calib: Split, device: torch.device,
                  finetune: FineTune) -> None:
    criterion = FILTER_CRITERIA[s.criterion]
    importance = criterion.make()
    model.to(device).eval()
    pruner = tp.pruner.MetaPruner(
        model, calib.x[:1].to(device), importance=importance, pruning_ratio=s.ratio,
        iterative_steps=s.iterations, global_pruning=s.global_pruning,
        ignored_layers=[classifier_layer(model)])
    for r in range(s.iterations):
        criterion.prepare(importance, model, calib, device)
        pruner.step()
        model.zero_grad(set_to_none=True)
        finetune(model, r)


def prune_layers(model: nn.Module, s: PruneSettings, calib: Split, device: torch.device,
                 finetune: FineTune, seed: int) -> list[str]:
    """Remove ratio x (removable blocks), spread over the rounds; returns the removed names."""
    total = len(removable_blocks(model))
    if total == 0:
        raise ValueError("granularity: layer pruning needs a model with removable blocks "
                         "(resnet*, mobilenetv2)")
    removed: list[str] = []
    model.to(device)
    for r in range(s.iterations):
        target = int(round(s.ratio * total * (r + 1) / s.iterations))
        blocks = removable_blocks(model)
        scores = LAYER_CRITERIA[s.criterion](model, blocks, calib, device, seed + r)
        for name in sorted(scores, key=scores.get)[:target - len(removed)]:
            remove_block(model, name)
            removed.append(name)
        finetune(model, r)
    return removed


def prune(model: nn.Module, s: PruneSettings, calib: Split, device: torch.device, finetune: FineTune,
          seed: int = 0) -> list[str]:
    """Prune in place to reach s.ratio in s.iterations rounds, fine-tuning after each round.

    Returns the names of removed blocks (empty for filter pruning) for the model spec.
    """
    if s.granularity == "filter":
        prune_filters(model, s, calib, device, finetune)
        return []
    return prune_layers(model, s, calib, device, finetune, seed)
