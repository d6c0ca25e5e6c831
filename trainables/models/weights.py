"""`model.weights`: the user's trained weights, read without unpickling code.

A local path or an s3:// / gs:// URL. Accepted: a state_dict file (`torch.save(model.state_dict())`), a checkpoint dict holding
one under `state_dict` or `model`, or a `.safetensors` file. `module.` prefixes that
DataParallel / DistributedDataParallel add are stripped.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from ..remote_files import file_stamp, read_bytes
from .normalize import inner_network

CHECKPOINT_KEYS = ("state_dict", "model")


def _tensors_only(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _load(path: str) -> object:
    """The file's object: safetensors' tensors, or torch.load's with weights_only (no code runs)."""
    data = read_bytes(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load

        return load(data)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = str(path)
    try:
        if file_stamp(path) is None:
            raise ValueError(f"model.weights: {path} not found")
    except OSError as e:  # a URL this machine cannot reach, or a bucket it may not read
        raise ValueError(f"model.weights: cannot reach {path} ({str(e).splitlines()[0][:120]})") from None
    try:
        obj = _load(path)
    except Exception as e:
        raise ValueError(f"model.weights: {path} is not a readable state_dict, checkpoint or .safetensors file "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if not _tensors_only(obj) and isinstance(obj, dict):
        obj = next((obj[k] for k in CHECKPOINT_KEYS if _tensors_only(obj.get(k))), obj)
    if not _tensors_only(obj):
        raise ValueError(f"model.weights: {path} holds no state_dict (a mapping of names to tensors, at the top "
                         f"or under {' or '.join(CHECKPOINT_KEYS)})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load the file into the model's own network; a ValueError names the first key that
    is missing, unexpected or of another shape."""
    net = inner_network(model)
    state = read_state_dict(path)
    expected = net.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise ValueError(f"model.weights: {path} does not fit the architecture: missing key '{key}'")
        if state[key].shape != tensor.shape:
            raise ValueError(f"model.weights: {path} does not fit the architecture: '{key}' has shape "
                             f"{tuple(state[key].shape)}, the model {tuple(tensor.shape)}")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise ValueError(f"model.weights: {path} does not fit the architecture: unexpected key '{unexpected[0]}'")
    net.load_state_dict(state)
