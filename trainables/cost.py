"""Model cost: FLOPs (FlopCounterMode, batch 1; a multiply-add counts 2), MACs, parameters, latency."""
from __future__ import annotations

import statistics
import time

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


@torch.no_grad()
def latency_ms(model: nn.Module, input_shape: tuple[int, int, int], device: torch.device,
               repeats: int = 30, warmup: int = 5, batch_size: int = 1) -> float:
    """Median wall time of one forward pass (synchronized on CUDA)."""
    model.to(device).eval()
    x = torch.rand(batch_size, *input_shape, device=device)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def model_cost(model: nn.Module, input_shape: tuple[int, int, int], device: torch.device,
               latency_repeats: int = 30) -> dict[str, float]:
    flops = count_flops(model.to(device), input_shape)
    return {"flops": flops, "macs": flops // 2, "params": count_params(model),
            "latency_ms": latency_ms(model, input_shape, device, latency_repeats)}
