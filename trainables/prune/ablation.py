"""Ablation criteria: score a part of the network (a channel, a block) by how much the
network's output changes on the calibration batch when that part is removed.

Ablations are batched: the calibration batch is repeated k times and forward hooks apply
ablation j to copy j, so one forward pass measures k ablations (IMAGES_PER_PASS),
and each pass starts where the first ablated module runs (AblationProbe).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

from ..models import classifier_layer
from .activations import channels_first, leaf_modules

# Images per forward pass of batched ablations: a GPU wants large batches; on CPU, passes
# beyond the calibration batch itself are slower (measured: 2048 images 3x slower than 256).
IMAGES_PER_PASS = {"cuda": 4096, "cpu": 256}


def kl_divergence(reference: torch.Tensor, ablated: torch.Tensor) -> torch.Tensor:
    """Mean over samples of KL(p || q): p the network's class distribution, q the ablated one.
    reference (B, classes) and ablated (k, B, classes) logits -> (k,)."""
    log_p = reference.float().log_softmax(-1)
    log_q = ablated.float().log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean(-1)


def _centered_gram(features: torch.Tensor) -> torch.Tensor:
    centered = features - features.mean(-2, keepdim=True)
    return centered @ centered.transpose(-1, -2)


def one_minus_cka(reference: torch.Tensor, ablated: torch.Tensor) -> torch.Tensor:
    """1 - linear CKA (Kornblith et al. 2019) between penultimate features, computed from
    centred Gram matrices: CKA = <K, L>_F / (|K|_F |L|_F). (B, d) and (k, B, d) -> (k,)."""
    gram = _centered_gram(reference.double())
    gram_ablated = _centered_gram(ablated.double())
    num = (gram * gram_ablated).sum((-1, -2))
    den = gram.norm() * gram_ablated.norm(dim=(-1, -2))
    cka = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))
    return (1 - cka).float()


# measure -> (which output it compares, divergence)
DIVERGENCES: dict[str, tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "kl": ("logits", kl_divergence),
    "cka": ("features", one_minus_cka),
}

# (first ablation index, k copies of the batch, batch size) -> (hook handles applying the
# ablations, the modules they touch)
InstallAblations = Callable[[int, int, int], tuple[list, list[nn.Module]]]


@torch.no_grad()
def outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Logits and penultimate features (the classifier's input) for a batch."""
    captured = {}
    handle = classifier_layer(model).register_forward_pre_hook(
        lambda _m, inputs: captured.__setitem__("features", inputs[0].flatten(1)))
    try:
        captured["logits"] = model.eval()(x)
    finally:
        handle.remove()
    return captured


class AblationProbe:
    """The network's outputs on a batch, plus every leaf module call's output in execution
    order, so an ablated pass recomputes only what runs from the first touched module on: the
    leaf calls before it return their cached outputs. A leaf may run several times per forward
    (torchvision's bottlenecks call one ReLU three times): its calls before that point are
    replayed in order, its later ones computed."""

    @torch.no_grad()
    def __init__(self, model: nn.Module, x: torch.Tensor):
        self.model, self.x = model.eval(), x
        self.cached: dict[nn.Module, list[torch.Tensor]] = {}  # each leaf's outputs, call by call
        self.calls: list[nn.Module] = []  # the leaf of every call, in execution order

        def record(module, _inputs, out):
            self.cached.setdefault(module, []).append(out.detach().clone())
            self.calls.append(module)

        handles = [m.register_forward_hook(record) for m in leaf_modules(model)]
        try:
            self.reference = outputs(model, x)
        finally:
            for h in handles:
                h.remove()

    @contextmanager
    def _replay_prefix(self, touched: list[nn.Module], k: int):
        inside = {m for t in touched for m in t.modules()}
        first = min(i for i, leaf in enumerate(self.calls) if leaf in inside)
        replayed = Counter(self.calls[:first])  # leaf -> how many of its first calls are replayed
        for leaf, n in replayed.items():
            leaf.forward = self._replaying(leaf, self.cached[leaf][:n], k)
        try:
            yield
        finally:
            for leaf in replayed:
                del leaf.forward

    @staticmethod
    def _replaying(leaf: nn.Module, outs: list[torch.Tensor], k: int):
        compute, calls = leaf.forward, iter(range(len(outs)))

        def forward(*args, **kwargs):
            i = next(calls, None)
            if i is None:
                return compute(*args, **kwargs)
            return outs[i].repeat(k, *([1] * (outs[i].dim() - 1)))
        return forward

    @torch.no_grad()
    def scores(self, measure: str, count: int, install: InstallAblations) -> torch.Tensor:
        """Divergence of the output under each of `count` ablations from the reference output."""
        which, divergence = DIVERGENCES[measure]
        batch = len(self.x)
        per_pass = max(1, IMAGES_PER_PASS.get(self.x.device.type, 256) // batch)
        scores = []
        for start in range(0, count, per_pass):
            k = min(per_pass, count - start)
            handles, touched = install(start, k, batch)
            try:
                with self._replay_prefix(touched, k):
                    out = outputs(self.model, self.x.repeat(k, *([1] * (self.x.dim() - 1))))[which]
            finally:
                for h in handles:
                    h.remove()
            scores.append(divergence(self.reference[which], out.view(k, batch, -1)))
        return torch.cat(scores).cpu()


def channel_ablations(layers: list[tuple[nn.Module, list[int], list[int]]]) -> InstallAblations:
    """Ablation r zeroes root channel r in every layer of a coupled group: (layer, its channel
    indices, the root channel each one belongs to). Zeroing a normalisation layer's output
    is what removing the channel does for every layer that reads it."""
    def install(start: int, k: int, batch: int) -> list:
        handles = []
        for layer, idxs, root_idxs in layers:
            mask = torch.ones(k, layer.weight.shape[0], device=layer.weight.device)
            for idx, root in zip(idxs, root_idxs):
                if start <= root < start + k:
                    mask[root - start, idx] = 0

            def hook(module, _i, out, mask=mask):
                first = channels_first(module, out)
                shape = (k, 1, first.shape[1]) + (1,) * (first.dim() - 2)
                masked = (first.reshape(k, batch, *first.shape[1:]) * mask.view(shape)).view_as(first)
                return masked.movedim(1, -1) if first is not out else masked
            handles.append(layer.register_forward_hook(hook))
        return handles, [layer for layer, _, _ in layers]
    return install


def block_ablations(blocks: list[nn.Module]) -> InstallAblations:
    """Ablation j bypasses blocks[j]: the block passes its input on (identity shortcut)."""
    def install(start: int, k: int, batch: int) -> list:
        handles = []
        for j, block in enumerate(blocks[start:start + k]):
            def hook(_m, inputs, out, j=j):
                out = out.clone()
                out.view(k, batch, *out.shape[1:])[j] = inputs[0].view(k, batch, *out.shape[1:])[j]
                return out
            handles.append(block.register_forward_hook(hook))
        return handles, blocks[start:start + k]
    return install
