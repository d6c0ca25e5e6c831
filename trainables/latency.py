"""Inference latency of a model on the runtime it will be deployed with.

A runtime (`RUNTIMES`) turns a model into a callable the way a deployment would load it:

* `torch`: eager PyTorch, the model as trained;
* `torchscript`: traced (as `export` writes it), then frozen and optimized for inference
  (`torch.jit.freeze`, `torch.jit.optimize_for_inference`), as one loads it to serve;
* `onnxruntime`: the ONNX file `export` writes, run by ONNX Runtime's CPU provider.

Machines are noisy, so a pruned model and its baseline are measured in turns in the same
process: after `warmup` calls each, `repeats` rounds call each model once; the median per
model. A ratio of two such medians is what the benches and the trials report.
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

Forward = Callable[[torch.Tensor], object]


def metric_key(runtime: str, batch_size: int) -> str:
    """The metric a trial logs for one runtime and batch size, e.g. latency_ms_onnxruntime_b32."""
    return f"latency_ms_{runtime}_b{batch_size}"


def is_latency(metric: str) -> bool:
    """`latency_ms` or one of its per-runtime keys (and their `_baseline` twins)."""
    return metric.startswith("latency_ms")


def ratio_key(metric: str) -> str:
    """The ratio logged beside a latency: latency_ms_torch_b1 -> latency_ratio_torch_b1."""
    return metric.replace("latency_ms", "latency_ratio", 1)


@dataclass(frozen=True)
class LatencySettings:
    runtimes: tuple[str, ...] = ("torch",)
    batch_sizes: tuple[int, ...] = (1,)
    threads: int | None = None  # CPU threads while measuring; None: the process's current setting
    repeats: int = 30
    warmup: int = 5

    def keys(self) -> list[str]:
        """Every metric measured; the first is also logged as plain `latency_ms`."""
        return [metric_key(r, b) for r in self.runtimes for b in self.batch_sizes]


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """One self-contained .onnx file (weights inline) with a dynamic batch size: what `export`
    writes, and what the `onnxruntime` runtime measures."""
    torch.onnx.export(model, (example,), str(path), input_names=["images"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False,
                      verbose=False)
    return path


def _eager(model: nn.Module, example: torch.Tensor, threads: int) -> Forward:
    return model


def _torchscript(model: nn.Module, example: torch.Tensor, threads: int) -> Forward:
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.compile, and still deployed
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, example)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


def _onnxruntime(model: nn.Module, example: torch.Tensor, threads: int) -> Forward:
    import onnxruntime as ort  # the `export` extra; imported only when this runtime is measured

    with tempfile.TemporaryDirectory() as folder:
        path = write_onnx(model.cpu(), example.cpu(), Path(folder) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3  # warnings of the optimizer are not the user's business
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x.cpu().numpy()})


@dataclass(frozen=True)
class Runtime:
    prepare: Callable[[nn.Module, torch.Tensor, int], Forward]
    cpu_only: bool  # measured on CPU whatever the trial's device


RUNTIMES: dict[str, Runtime] = {
    "torch": Runtime(_eager, cpu_only=False),
    "torchscript": Runtime(_torchscript, cpu_only=False),
    "onnxruntime": Runtime(_onnxruntime, cpu_only=True),
}


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _timed_call(forward: Forward, x: torch.Tensor) -> float:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    forward(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return (time.perf_counter() - start) * 1000


def machine_description(threads: int | None = None) -> dict:
    """Where a latency was measured: the CPU's model, the threads used, the torch build."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "threads": threads or torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__}


def runtime_device(runtime: str, device: torch.device) -> torch.device:
    return torch.device("cpu") if RUNTIMES[runtime].cpu_only else device


@torch.no_grad()
def measure_latency(models: dict[str, nn.Module], input_shape: tuple[int, ...], settings: LatencySettings,
                    device: torch.device) -> dict[str, dict[str, float]]:
    """{model name: {metric: median ms}} for every runtime and batch size of `settings`, the
    models measured in turns (see module doc) on `device` (CPU for CPU-only runtimes). Models
    are left in eval mode where they were."""
    homes = {name: getattr(next(m.parameters(), None), "device", torch.device("cpu")) for name, m in models.items()}
    medians: dict[str, dict[str, float]] = {name: {} for name in models}
    with _torch_threads(settings.threads) as threads:
        for runtime in settings.runtimes:
            where = runtime_device(runtime, device)
            example = torch.rand(1, *input_shape, device=where)
            forwards = {name: RUNTIMES[runtime].prepare(m.to(where).eval(), example, threads)
                        for name, m in models.items()}
            for batch_size in settings.batch_sizes:
                x = torch.rand(batch_size, *input_shape, device=where)
                times: dict[str, list[float]] = {name: [] for name in models}
                for i in range(settings.warmup + settings.repeats):
                    for name, forward in forwards.items():
                        elapsed = _timed_call(forward, x)
                        if i >= settings.warmup:
                            times[name].append(elapsed)
                for name in models:
                    medians[name][metric_key(runtime, batch_size)] = statistics.median(times[name])
    for name, m in models.items():
        m.to(homes[name])
        medians[name]["latency_ms"] = medians[name][settings.keys()[0]]
    return medians


def latency_metrics(model: nn.Module, baseline: nn.Module | None, input_shape: tuple[int, ...],
                    settings: LatencySettings, device: torch.device) -> dict[str, float]:
    """A model's latency metrics; with its baseline, measured in turns with it, also the
    baseline's (`..._baseline`) and the ratio (`latency_ratio_<runtime>_b<batch>`)."""
    measured = measure_latency({"model": model, **({"baseline": baseline} if baseline is not None else {})},
                               input_shape, settings, device)
    metrics = dict(measured["model"])
    if baseline is not None:
        metrics.update({f"{k}_baseline": v for k, v in measured["baseline"].items()})
        metrics.update({ratio_key(k): measured["model"][k] / measured["baseline"][k]
                        for k in [*settings.keys(), "latency_ms"]})
    return metrics
