"""Base of every attack's parameter model: unknown keys are refused, values are frozen."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AttackParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
