"""Train each baseline once and share it with every trial.

Baselines are cached under the search's storage path, keyed by everything that
changes the trained model or its evaluation (`trainables.trial.baseline_key`), so a
second search with the same key reuses it. Its final (test) evaluation is cached beside
it, one file per final-evaluation setting (`trainables.test_eval.final_eval_key`), measured
before the search.
The storage path may be local, NFS or a cloud URI: files go through pyarrow's
filesystems, as Ray's own storage does.
"""
from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass
from typing import Callable

import ray
import torch

from trainables.config import TrialConfig
from trainables.errors import first_line
from trainables.test_eval import final_eval_key
from trainables.train import use_cpus
from trainables.trial import Baseline, baseline_key, train_baseline

from ..tracking.storage import read_bytes, write_bytes


def _folder(storage_path: str, cfg: TrialConfig, device_type: str) -> str:
    return f"{storage_path.rstrip('/')}/baselines/{baseline_key(cfg, device_type)}"


def load_cached(storage_path: str, cfg: TrialConfig, device_type: str) -> Baseline | None:
    """The cached baseline, or None when there is none or it cannot be read back whole (a
    truncated or corrupt entry is reported on stderr and will be retrained and overwritten)."""
    folder = _folder(storage_path, cfg, device_type)
    metrics = read_bytes(folder, "metrics.json")
    if metrics is None:
        return None
    try:
        model_bytes = read_bytes(folder, "model.pt")
        if model_bytes is None:
            raise FileNotFoundError("model.pt missing")
        baseline = Baseline(torch.load(io.BytesIO(model_bytes), map_location="cpu", weights_only=True),
                            json.loads(metrics))
        baseline.model()  # the weights fit the architecture they claim
        return baseline
    except Exception as e:  # any unreadable entry is a cache miss, never a failed search
        print(f"[robustprune] cached baseline {folder} is unreadable ({first_line(e)}); training it again",
              file=sys.stderr)
        return None


def save(storage_path: str, cfg: TrialConfig, device_type: str, baseline: Baseline) -> None:
    """model.pt first, metrics.json last: metrics.json marks a complete cache entry."""
    folder = _folder(storage_path, cfg, device_type)
    buf = io.BytesIO()
    torch.save(baseline.payload, buf)
    write_bytes(folder, "model.pt", buf.getvalue())
    write_bytes(folder, "metrics.json", json.dumps(baseline.metrics, indent=2).encode())


@dataclass(frozen=True)
class BaselineRequest:
    """A baseline to train (or find cached), where, and with one trial's resources."""
    storage_path: str
    cfg: TrialConfig
    device_type: str
    cpus: float
    gpus: float


def get_baselines(requests: dict[str, BaselineRequest]) -> dict[str, tuple[Baseline, bool, float]]:
    """(baseline, reused, training seconds) by key. Those not cached are trained on the cluster
    at once (as Ray tasks with one trial's resources), each then cached; `device_type` is part
    of the key."""
    out, training = {}, {}
    for key, r in requests.items():
        cached = load_cached(r.storage_path, r.cfg, r.device_type)
        if cached is not None:
            out[key] = cached, True, 0.0
        else:
            task = ray.remote(num_cpus=r.cpus, num_gpus=r.gpus)(_train_remote)
            training[key] = task.remote(r.cfg.model_dump(), r.cpus)
    for key, ref in training.items():
        r, (baseline, seconds) = requests[key], ray.get(ref)
        save(r.storage_path, r.cfg, r.device_type, baseline)
        out[key] = baseline, False, seconds
    return out


def get_baseline(storage_path: str, cfg: TrialConfig, device_type: str, cpus: float,
                 gpus: float) -> tuple[Baseline, bool]:
    """(baseline, reused): `get_baselines` of one."""
    baseline, reused, _ = get_baselines({"": BaselineRequest(storage_path, cfg, device_type, cpus, gpus)})[""]
    return baseline, reused


def _train_remote(cfg_dict: dict, cpus: float) -> tuple[Baseline, float]:
    started = time.perf_counter()
    use_cpus(cpus)
    return train_baseline(TrialConfig.model_validate(cfg_dict), quiet=True), time.perf_counter() - started


def _test_file(cfg: TrialConfig) -> str:
    return f"test_{final_eval_key(cfg)}.json"


def cached_test_metrics(storage_path: str, cfg: TrialConfig, device_type: str) -> dict | None:
    """The baseline's cached final evaluation, or None (an unreadable entry is measured again)."""
    folder, name = _folder(storage_path, cfg, device_type), _test_file(cfg)
    cached = read_bytes(folder, name)
    if cached is not None:
        try:
            return json.loads(cached)
        except ValueError:
            print(f"[robustprune] cached baseline test metrics {folder}/{name} are unreadable; measuring again",
                  file=sys.stderr)
    return None


def save_test_metrics(storage_path: str, cfg: TrialConfig, device_type: str, metrics: dict) -> None:
    write_bytes(_folder(storage_path, cfg, device_type), _test_file(cfg), json.dumps(metrics, indent=2).encode())


def baseline_test_metrics(storage_path: str, cfg: TrialConfig, device_type: str, baseline: Baseline,
                          measure: Callable[[dict], dict]) -> tuple[dict, bool]:
    """(the baseline's final evaluation, reused): from the cache, else `measure(payload)`,
    then cached."""
    cached = cached_test_metrics(storage_path, cfg, device_type)
    if cached is not None:
        return cached, True
    metrics = measure(baseline.payload)
    save_test_metrics(storage_path, cfg, device_type, metrics)
    return metrics, False
