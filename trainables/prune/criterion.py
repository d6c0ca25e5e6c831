"""A criterion registry entry: a builder (whose docstring is the criterion's definition and
source) and the pydantic model of its parameters."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import Field

from ..registry import Strict


class NoParams(Strict):
    """The criterion takes no parameters."""


class PlsVipParams(Strict):
    pooling: Literal["max", "mean"] = Field("max", description="how a feature map becomes one PLS input")
    components: int = Field(2, ge=1, description="PLS components")


@dataclass(frozen=True)
class Criterion:
    build: Callable[[Any], Any]
    params: type[Strict] = NoParams

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.build) or ""

    def make(self, params: dict | None = None) -> Any:
        return self.build(self.params(**(params or {})))

    def resolve(self, params: dict) -> dict:
        """The parameters with their defaults filled in ({} for a criterion that takes none)."""
        return self.params(**params).model_dump()

    def check_names(self, params: dict, label: str) -> None:
        """ValueError naming the first parameter this criterion (`label`) does not take, and those it does."""
        unknown = [k for k in params if k not in self.params.model_fields]
        if unknown:
            allowed = ", ".join(self.params.model_fields) or "none"
            raise ValueError(f"'{unknown[0]}' is not a parameter of {label}; allowed: {allowed}")
