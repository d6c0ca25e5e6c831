"""Latency on each runtime (real TorchScript and ONNX Runtime), timed in turns with the
baseline; the latency settings' bad input."""
import time

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from trainables.config import LatencyConfig, format_validation_error
from trainables.latency import RUNTIMES, LatencySettings, latency_metrics, measure_latency
from trainables.models import build_model

CPU = torch.device("cpu")
SHAPE = (3, 32, 32)


def _resnet20() -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet20", in_channels=3, num_classes=10, mean=[0.5] * 3, std=[0.25] * 3).eval()


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_each_runtime_computes_what_the_eager_model_computes(runtime):
    model, x = _resnet20(), torch.rand(4, *SHAPE)
    with torch.no_grad():
        expected = model(x).numpy()
        forward = RUNTIMES[runtime].prepare(model, x[:1], torch.get_num_threads())
        got = forward(x)
    got = got[0] if isinstance(got, list) else got.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)  # batch 4 through a batch-1 trace or file


def test_every_runtime_and_batch_size_is_timed_and_the_first_is_plain_latency_ms():
    settings = LatencySettings(("torch", "torchscript", "onnxruntime"), (1, 8), threads=1, repeats=3, warmup=1)
    threads_before = torch.get_num_threads()
    measured = measure_latency({"a": _resnet20()}, SHAPE, settings, CPU)["a"]
    assert set(measured) == {"latency_ms", *settings.keys()}
    assert settings.keys() == ["latency_ms_torch_b1", "latency_ms_torch_b8", "latency_ms_torchscript_b1",
                               "latency_ms_torchscript_b8", "latency_ms_onnxruntime_b1", "latency_ms_onnxruntime_b8"]
    assert all(v > 0 for v in measured.values())
    assert measured["latency_ms"] == measured["latency_ms_torch_b1"]
    for runtime in settings.runtimes:  # 8 images take longer than one
        assert measured[f"latency_ms_{runtime}_b8"] > measured[f"latency_ms_{runtime}_b1"]
    assert torch.get_num_threads() == threads_before  # the thread setting is given back


class Sleeps(nn.Module):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.layer = seconds, nn.Linear(1, 1)

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def test_a_model_and_its_baseline_are_timed_in_turns_into_a_ratio():
    settings = LatencySettings(repeats=5, warmup=1)
    calls = []
    model, baseline = Sleeps(0.002), Sleeps(0.008)
    for name, m in (("model", model), ("baseline", baseline)):
        m.register_forward_hook(lambda *_, name=name: calls.append(name))
    metrics = latency_metrics(model, baseline, (1,), settings, CPU)
    assert calls == ["model", "baseline"] * 6  # alternating, warm-up included
    assert 2 <= metrics["latency_ms"] < metrics["latency_ms_baseline"] and metrics["latency_ms_baseline"] >= 8
    assert metrics["latency_ratio"] == metrics["latency_ratio_torch_b1"] == pytest.approx(
        metrics["latency_ms"] / metrics["latency_ms_baseline"])
    assert 0.1 < metrics["latency_ratio"] < 0.5


@pytest.mark.parametrize("latency, message", [
    ({"runtimes": ["tensorrt"]}, "latency.runtimes: unknown runtime 'tensorrt'; allowed: onnxruntime, torch, "
                                 "torchscript"),
    ({"runtimes": []}, "latency.runtimes: must not be empty"),
    ({"runtimes": ["torch", "torch"]}, "latency.runtimes: a runtime is listed twice"),
    ({"batch_sizes": [0]}, "latency.batch_sizes.0: got 0; allowed: >= 1"),
    ({"batch_sizes": [1, -4]}, "latency.batch_sizes.1: got -4; allowed: >= 1"),
    ({"threads": 0}, "latency.threads: got 0; allowed: >= 1"),
    ({"repeats": 0}, "latency.repeats: got 0; allowed: >= 1"),
])
def test_bad_latency_settings_are_one_line_naming_the_field(latency, message):
    from pydantic import BaseModel

    class Holder(BaseModel):
        latency: LatencyConfig

    with pytest.raises(ValidationError) as e:
        Holder(latency=latency)
    assert format_validation_error(e.value) == message
