"""Base of every attack's parameter model."""
from __future__ import annotations

from ..registry import Strict


class AttackParams(Strict):
    """Unknown keys are refused, values are frozen (see Strict)."""
