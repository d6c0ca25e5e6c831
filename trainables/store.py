"""Save / load pruned models safely.

A pruned model's layers no longer match its constructor, and pickling the module
needs `weights_only=False` to load (arbitrary code). Instead a model file holds only
tensors and plain data: the state_dict, the constructor arguments, the removed
blocks and every layer's shape. `load_model` rebuilds the architecture from that
spec and loads with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from .errors import first_line
from .models import build_model, remove_block

FORMAT_VERSION = 1


def _layer_spec(m: nn.Module) -> dict | None:
    if isinstance(m, nn.Conv2d):
        return {"type": "conv2d", "in": m.in_channels, "out": m.out_channels, "k": list(m.kernel_size),
                "stride": list(m.stride), "padding": list(m.padding), "groups": m.groups,
                "bias": m.bias is not None}
    if isinstance(m, nn.BatchNorm2d):
        return {"type": "bn2d", "n": m.num_features}
    if isinstance(m, nn.Linear):
        return {"type": "linear", "in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    return None


def _make_layer(spec: dict) -> nn.Module:
    kind = spec["type"]
    if kind == "conv2d":
        return nn.Conv2d(spec["in"], spec["out"], tuple(spec["k"]), tuple(spec["stride"]),
                         tuple(spec["padding"]), groups=spec["groups"], bias=spec["bias"])
    if kind == "bn2d":
        return nn.BatchNorm2d(spec["n"])
    return nn.Linear(spec["in"], spec["out"], bias=spec["bias"])


def architecture_spec(model: nn.Module, arch: dict, removed_blocks: list[str],
                      input_shape: tuple[int, int, int], expected_input: dict | None = None) -> dict:
    """arch: the build_model keyword arguments (name, in_channels, num_classes, mean, std);
    expected_input: the preprocessing its images went through (resize, crop, interpolation)."""
    layers = {name: s for name, m in model.named_modules() if (s := _layer_spec(m)) is not None}
    return {"arch": dict(arch), "input_shape": list(input_shape), "removed_blocks": list(removed_blocks),
            "layers": layers, "expected_input": dict(expected_input or {})}


def rebuild(spec: dict) -> nn.Module:
    """An untrained model with exactly the architecture the spec describes."""
    model = build_model(**spec["arch"])
    for name in spec["removed_blocks"]:
        remove_block(model, name)
    for name, layer in spec["layers"].items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, _make_layer(layer))
    return model


def model_payload(model: nn.Module, spec: dict) -> dict:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"format_version": FORMAT_VERSION, "spec": spec, "state_dict": state}


def payload_digest(payload: dict) -> str:
    """Identifies a model by content (spec and weights), whatever file or run it came from."""
    digest = hashlib.sha256(json.dumps(payload["spec"], sort_keys=True).encode())
    for name, tensor in sorted(payload["state_dict"].items()):
        digest.update(name.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def model_from_payload(payload: dict) -> nn.Module:
    model = rebuild(payload["spec"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def save_model(model: nn.Module, spec: dict, path: str | os.PathLike) -> Path:
    """Atomic write: a crash never leaves a partial model file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make exported models private
    try:
        torch.save(model_payload(model, spec), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write beside `path`, then rename over it: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:  # an error or a stop (KeyboardInterrupt) between the two leaves no temporary behind
        tmp.unlink(missing_ok=True)


def load_payload(path: str | os.PathLike) -> dict:
    """The file's spec and state_dict, read with the safe loader (tensors and plain data only)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated zip, garbage bytes, a pickle the safe loader refuses
        raise ValueError(f"{path}: not a readable model file, truncated or damaged ({first_line(e, 160)})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a robustprune model file (format {FORMAT_VERSION})")
    return payload


def load_model(path: str | os.PathLike) -> nn.Module:
    """Rebuild a saved (pruned) model on the CPU, in eval mode."""
    return model_from_payload(load_payload(path))
