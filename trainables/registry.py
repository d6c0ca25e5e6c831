"""Looking names up in the registries (datasets, models, criteria, attacks)."""
from __future__ import annotations

from typing import Iterable

from pydantic import BaseModel, ConfigDict


def one_of(value: str, registry: Iterable[str], field: str) -> str:
    """The value if the registry knows it, else a ValueError listing what it knows."""
    known = set(registry)
    if value not in known:
        raise ValueError(f"unknown {field} '{value}'; allowed: {', '.join(sorted(known))}")
    return value


class Strict(BaseModel):
    """Base of every config and parameter model: unknown keys are refused, values are frozen."""
    model_config = ConfigDict(extra="forbid", frozen=True)
