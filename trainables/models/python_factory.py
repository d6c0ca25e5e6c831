"""`model: python:MODULE:CALLABLE` or `python:path/to/nets.py:CALLABLE`: the user's own
network, from a callable called with `model.args` as keyword arguments.

A module must be importable on every node. A file is read by the driver and travels with
each trial's config (`TrialConfig.model_code`), so workers on other machines build the same
network; there it is written once under the cache folder, named by its content's hash.
Model files record the target, never the code: loading one imports the callable again.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

from torch import nn

from .sources import model_source

_STAGED: dict[str, Path] = {}  # a file target's path -> the copy of its code this process imports


def split_target(target: str) -> tuple[str, str]:
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise ValueError(f"python:{target}: expected python:MODULE:CALLABLE or python:FILE.py:CALLABLE")
    return where, attr


def is_file_target(target: str) -> bool:
    return split_target(target)[0].endswith(".py")


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def stage_code(path: str, code: str) -> None:
    """Make `path`'s code (sent by the driver) importable here, even where the file is not."""
    from ..data.cache import cache_dir

    staged = cache_dir() / "user_models" / f"{code_digest(code)}-{Path(path).name}"
    if not staged.exists():
        staged.parent.mkdir(parents=True, exist_ok=True)
        tmp = staged.with_name(f".{staged.name}.{os.getpid()}.tmp")
        tmp.write_text(code)
        tmp.replace(staged)
    _STAGED[path] = staged


def carried_code(model_name: str, code: str | None) -> str | None:
    """For a `python:FILE.py:CALLABLE` model: its code, read here when not given (the
    driver), made importable here when given (a worker); None for any other model."""
    if not model_name.startswith("python:"):
        return None
    target = model_name[len("python:"):]
    if not is_file_target(target):
        return None
    path = split_target(target)[0]
    if code is None:
        try:
            code = Path(path).read_text()
        except OSError as e:
            raise ValueError(f"python:{target}: cannot read {path}: {e.strerror}") from None
    stage_code(path, code)
    return code


def _module_from_file(path: str):
    source = _STAGED.get(path, Path(path))
    if not source.is_file():
        raise ValueError(f"python:{path}: file not found")
    name = f"robustprune_user_{code_digest(source.read_text())}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, source)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def load_callable(target: str) -> Callable[..., nn.Module]:
    where, attr = split_target(target)
    try:
        module = _module_from_file(where) if where.endswith(".py") else importlib.import_module(where)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"python:{target}: importing {where} failed: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ValueError(f"python:{target}: {where} has no attribute '{attr}'")
    if not callable(factory):
        raise ValueError(f"python:{target}: {attr} is a {type(factory).__name__}, not callable")
    return factory


@model_source("python")
class PythonFactory:
    @staticmethod
    def check(target: str) -> None:
        load_callable(target)

    @staticmethod
    def build(target: str, args: dict, in_channels: int, num_classes: int, mean, std) -> nn.Module:
        factory = load_callable(target)
        try:
            return factory(**args)
        except Exception as e:
            raise ValueError(f"python:{target}: calling {split_target(target)[1]}(**model.args) raised "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
