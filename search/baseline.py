"""Train each baseline once and share it with every trial.

Baselines are cached under the search's storage path, keyed by everything that
changes the trained model or its evaluation (`trainables.trial.baseline_key`), so a
second search with the same key reuses it. The storage path may be local, NFS or a
cloud URI: files go through pyarrow's filesystems, as Ray's own storage does.
"""
from __future__ import annotations

import io
import json

import pyarrow.fs
import ray
import torch

from trainables.config import TrialConfig
from trainables.trial import Baseline, baseline_key, train_baseline


def _fs_and_dir(storage_path: str, key: str) -> tuple[pyarrow.fs.FileSystem, str]:
    fs, root = pyarrow.fs.FileSystem.from_uri(storage_path)
    return fs, f"{root.rstrip('/')}/baselines/{key}"


def load_cached(storage_path: str, cfg: TrialConfig) -> Baseline | None:
    fs, folder = _fs_and_dir(storage_path, baseline_key(cfg))
    if fs.get_file_info(f"{folder}/metrics.json").type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(f"{folder}/model.pt") as f:
        payload = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
    with fs.open_input_stream(f"{folder}/metrics.json") as f:
        metrics = json.loads(f.read())
    return Baseline(payload, metrics)


def save(storage_path: str, cfg: TrialConfig, baseline: Baseline) -> str:
    """model.pt first, metrics.json last: metrics.json marks a complete cache entry."""
    fs, folder = _fs_and_dir(storage_path, baseline_key(cfg))
    fs.create_dir(folder, recursive=True)
    buf = io.BytesIO()
    torch.save(baseline.payload, buf)
    with fs.open_output_stream(f"{folder}/model.pt") as f:
        f.write(buf.getvalue())
    with fs.open_output_stream(f"{folder}/metrics.json") as f:
        f.write(json.dumps(baseline.metrics, indent=2).encode())
    return folder


def get_baseline(storage_path: str, cfg: TrialConfig, cpus: float, gpus: float) -> tuple[Baseline, bool]:
    """(baseline, reused). Trains on the cluster with one trial's resources when not cached."""
    cached = load_cached(storage_path, cfg)
    if cached is not None:
        return cached, True
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(_train_remote)
    baseline = ray.get(task.remote(cfg.model_dump(), cpus))
    save(storage_path, cfg, baseline)
    return baseline, False


def _train_remote(cfg_dict: dict, cpus: float) -> Baseline:
    torch.set_num_threads(max(1, int(cpus)))
    return train_baseline(TrialConfig.model_validate(cfg_dict), quiet=True)
