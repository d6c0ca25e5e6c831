"""torch_pruning, imported without timm.

torch_pruning's FLOP counter (`utils/op_counter.py`, which this package does not use: FLOPs
come from torch's FlopCounterMode) imports timm when it is installed, and timm imports
torchvision: 1.5-2 s more for every process that prunes, Ray workers included. timm is hidden
during that import only; a `timm:` model source imports it as usual afterwards.
"""
from __future__ import annotations

import sys

_hidden = "timm" not in sys.modules
if _hidden:
    sys.modules["timm"] = None  # `import timm` raises ImportError: torch_pruning's has_timm is False
try:
    import torch_pruning as tp  # noqa: E402
    from torch_pruning.pruner import function as tp_fn  # noqa: E402
finally:
    if _hidden:
        del sys.modules["timm"]

__all__ = ["tp", "tp_fn"]
