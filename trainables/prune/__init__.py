"""Structural pruning: criteria registries (filters, layers) and the iterative schedule.

Add a filter criterion in `filters.py` (FILTER_CRITERIA), a layer criterion in
`layers.py` (LAYER_CRITERIA); each entry's builder docstring is its definition and source,
and its parameters are a pydantic model (`criterion.py`).
"""
from .activations import vip_scores
from .criterion import Criterion
from .filters import FILTER_CRITERIA
from .layers import LAYER_CRITERIA
from .schedule import PruneSettings, check_prunable, prune

CRITERIA: dict[str, dict[str, Criterion]] = {"filter": FILTER_CRITERIA, "layer": LAYER_CRITERIA}

__all__ = ["CRITERIA", "FILTER_CRITERIA", "LAYER_CRITERIA", "Criterion", "PruneSettings", "check_prunable", "prune", "vip_scores"]
