"""Model size: FLOPs (FlopCounterMode, batch 1; a multiply-add counts 2), MACs, parameters."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    model.eval()
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape, device=device))
    return int(counter.get_total_flops())


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_cost(model: nn.Module, input_shape: tuple[int, int, int], device: torch.device) -> dict[str, float]:
    """The size of a model; its time is trainables/latency.py's."""
    flops = count_flops(model.to(device), input_shape)
    return {"flops": flops, "macs": flops // 2, "params": count_params(model)}
