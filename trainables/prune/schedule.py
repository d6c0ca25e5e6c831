"""The iterative schedule: prune a share of the target in each round, fine-tune after each."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..data import Split
from ..models import classifier_layer, removable_blocks, remove_block
from .filters import FILTER_CRITERIA
from .layers import LAYER_CRITERIA
from .torch_pruning_import import tp


@dataclass(frozen=True)
class PruneSettings:
    granularity: str  # filter | layer
    criterion: str
    ratio: float  # filter: fraction of channels removed per layer; layer: fraction of removable blocks
    iterations: int
    global_pruning: bool = False
    params: dict = field(default_factory=dict)  # the criterion's parameters
    round_to: int | None = None  # filter: every pruned layer keeps a multiple of this many channels


FineTune = Callable[[nn.Module, int], None]  # (model, round index) -> None, trains in place


@contextmanager
def dependency_graph_errors():
    """torch-pruning's failures to trace a network's channel dependencies, as one line."""
    try:
        yield
    except Exception as e:
        cause = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:100]}"
        raise ValueError(f"granularity: filter pruning cannot trace which channels this network couples "
                         f"(torch-pruning: {cause}); channel shuffles (ShuffleNet) are one such case; "
                         f"allowed: layer, where it has residual blocks") from None


@contextmanager
def scoring_errors(criterion: str):
    """A criterion that cannot score a network's coupled channels (torch-pruning's index errors on
    GhostNet's sliced concatenations, say), as one line naming it."""
    try:
        yield
    except (RuntimeError, IndexError) as e:
        raise ValueError(f"criterion: filter criterion '{criterion}' cannot score this network's coupled channels "
                         f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:100]}); allowed: another "
                         f"filter criterion, or layer pruning") from None


NO_RESIDUAL_BLOCKS = ("granularity: layer pruning needs residual blocks (output = input + branch, same shape); "
                      "this model has none")


def check_prunable(model: nn.Module, granularities, example: torch.Tensor) -> None:
    """Before any training: ValueError ("granularity: ...") when the network cannot be pruned at
    one of `granularities` (filter: the channel dependency graph is built once, as pruning will;
    layer: it has residual blocks)."""
    if "filter" in granularities:
        with dependency_graph_errors():
            tp.DependencyGraph().build_dependency(model.eval(), example_inputs=example)
    if "layer" in granularities and not removable_blocks(model):
        raise ValueError(NO_RESIDUAL_BLOCKS)


def prune_filters(model: nn.Module, s: PruneSettings, calib: Split, device: torch.device,
                  finetune: FineTune) -> None:
    importance = FILTER_CRITERIA[s.criterion].make(s.params)
    prepare = getattr(importance, "prepare", None)  # criteria that read the current model
    model.to(device).eval()
    with dependency_graph_errors():
        pruner = tp.pruner.MetaPruner(
            model, calib.x[:1].to(device), importance=importance, pruning_ratio=s.ratio,
            iterative_steps=s.iterations, global_pruning=s.global_pruning, round_to=s.round_to,
            ignored_layers=[classifier_layer(model)])
    for r in range(s.iterations):
        if prepare:
            prepare(model, calib, device)
        with scoring_errors(s.criterion):
            pruner.step()
        model.zero_grad(set_to_none=True)
        finetune(model, r)


def prune_layers(model: nn.Module, s: PruneSettings, calib: Split, device: torch.device,
                 finetune: FineTune, seed: int) -> list[str]:
    """Remove ratio x (removable blocks), spread over the rounds; returns the removed names."""
    total = len(removable_blocks(model))
    if total == 0:
        raise ValueError(NO_RESIDUAL_BLOCKS)
    scorer = LAYER_CRITERIA[s.criterion].make(s.params)
    removed: list[str] = []
    model.to(device)
    for r in range(s.iterations):
        target = int(round(s.ratio * total * (r + 1) / s.iterations))
        blocks = removable_blocks(model)
        scores = scorer(model, blocks, calib, device, seed + r)
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
