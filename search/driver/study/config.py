"""A study's config: setups (networks, each with its own model, data and baseline over shared
defaults) crossed with the factors (granularity, criterion, ratio, iterations, fine-tuning
method, seed). Every cell of the grid becomes one trial of the search's trial engine, run
by the search config of its setup and seed (`StudyConfig.search_config`).
"""
from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from trainables.config import AttackConfig, LatencyConfig, Strict, TrainConfig, format_validation_error
from trainables.methods import METHODS
from trainables.prune import CRITERIA
from trainables.registry import one_of

from ...config import (ConfigError, EvaluationConfig, ExperimentConfig, FailuresConfig, ResourcesConfig, SearchConfig,
                       default_attacks, read_yaml_mapping, validated)

SETUP_NAME = r"^[A-Za-z0-9_.-]+$"


class SetupConfig(Strict):
    """One network of the study: what it overrides of the shared `model`, `data`, `baseline`,
    and optionally the granularities and iterations it is studied at (default: the study's)."""
    name: str = Field(min_length=1, pattern=SETUP_NAME, description="the setup's name in runs and tables")
    model: dict[str, Any] | None = Field(None, description="a search config's model section, over the "
                                                          "study's")
    data: dict[str, Any] | None = Field(None, description="a search config's data section, over the study's")
    baseline: dict[str, Any] | None = Field(None, description="a search config's baseline section, over the "
                                                             "study's")
    granularities: list[Literal["filter", "layer"]] | None = Field(None, min_length=1,
                                                                    description="default: the study's")
    iterations: list[int] | None = Field(None, min_length=1, description="default: the study's")

    @field_validator("iterations")
    @classmethod
    def _at_least_one_round(cls, v):
        if v is not None and min(v) < 1:
            raise ValueError(f"got {min(v)}; allowed: >= 1")
        return v


class Factors(Strict):
    setups: list[SetupConfig] = Field(min_length=1, description="the networks (and data) studied")
    granularities: list[Literal["filter", "layer"]] = Field(default_factory=lambda: ["filter"], min_length=1,
                                                            description="filter and/or layer pruning")
    criteria: list[str] = Field(default_factory=lambda: ["l1"], min_length=1, description="pruning criteria "
                                                                                         "compared")
    ratios: list[float] = Field(default_factory=lambda: [0.5], min_length=1, description="pruning ratios, "
                                                                                        "each in (0, 1)")
    iterations: list[int] = Field(default_factory=lambda: [1], min_length=1, description="prune-and-fine-tune "
                                                                                        "rounds")
    finetune_methods: list[str] = Field(default_factory=lambda: ["natural"], min_length=1,
                                        description="natural, pgd_at, trades, fgsm_rs")
    seeds: int | list[int] = Field(3, validate_default=True,
                                   description="a count (seeds 0..n-1) or the seeds themselves")
    max_concurrent: int | None = Field(None, ge=1, description="cells at once; default: as many as the cluster fits")

    @field_validator("setups")
    @classmethod
    def _names_unique(cls, v):
        names = [s.name for s in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"setup name '{twice[0]}' is given twice; each setup needs its own name")
        return v

    @field_validator("criteria")
    @classmethod
    def _criteria_known(cls, v):
        return _unique([one_of(c, set().union(*CRITERIA.values()), "criterion") for c in v], "criterion")

    @field_validator("granularities", "iterations")
    @classmethod
    def _listed_once(cls, v, info):
        return _unique(v, info.field_name)

    @field_validator("ratios")
    @classmethod
    def _ratios_inside_unit(cls, v):
        for r in v:
            if not 0 < r < 1:
                raise ValueError(f"got {r}; allowed: a pruning ratio strictly between 0 and 1")
        return _unique(v, "ratio")

    @field_validator("iterations")
    @classmethod
    def _at_least_one_round(cls, v):
        if min(v) < 1:
            raise ValueError(f"got {min(v)}; allowed: >= 1")
        return v

    @field_validator("finetune_methods")
    @classmethod
    def _methods_known(cls, v):
        return _unique([one_of(m, METHODS, "method") for m in v], "method")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if isinstance(v, int):
            if v < 1:
                raise ValueError(f"got {v}; allowed: a count >= 1 or a non-empty list of seeds")
            return list(range(v))
        if not v:
            raise ValueError("must not be empty")
        return _unique(v, "seed")

    @model_validator(mode="after")
    def _criteria_fit_granularities(self):
        granularities = set(self.granularities).union(*(s.granularities or [] for s in self.setups))
        for c in self.criteria:
            if not any(c in CRITERIA[g] for g in granularities):
                raise ValueError(f"criteria: '{c}' fits none of the granularities {sorted(granularities)}")
        return self


def _unique(values: list, what: str) -> list:
    twice = [v for i, v in enumerate(values) if v in values[:i]]
    if twice:
        raise ValueError(f"{what} {twice[0]!r} is listed twice")
    return values


class StudyConfig(Strict):
    experiment: ExperimentConfig = Field(ExperimentConfig(name="robustprune-study"),
                                         description="names, seed, where results are kept")
    study: Factors = Field(description="the grid: setups x granularities x criteria x ratios x iterations x "
                                       "fine-tuning methods x seeds")
    model: dict[str, Any] = Field(default_factory=dict, description="shared model settings (setups override)")
    data: dict[str, Any] = Field(default_factory=dict, description="shared data settings (setups override)")
    baseline: dict[str, Any] = Field(default_factory=dict, description="shared baseline training (setups override)")
    finetune: TrainConfig = Field(TrainConfig(epochs=1, lr=0.01), description="the fine-tuning loop; its "
                                                                            "method is the factor "
                                                                            "finetune_methods")
    attacks: list[AttackConfig] = Field(default_factory=default_attacks, min_length=1,
                                        description="the validation suite every cell is measured with")
    evaluation: EvaluationConfig = Field(EvaluationConfig(), description="each cell's test evaluation")
    latency: LatencyConfig = Field(LatencyConfig(), description="how cells time the pruned model")
    resources: ResourcesConfig = Field(ResourcesConfig(), description="what each cell reserves on the cluster")
    failures: FailuresConfig = Field(FailuresConfig(), description="what happens when a cell's worker dies")

    @field_validator("finetune")
    @classmethod
    def _method_is_a_factor(cls, v):
        if v.method != "natural" or v.method_budget():
            raise ValueError("the method is a factor; set study.finetune_methods instead")
        return v

    @model_validator(mode="after")
    def _seeds_are_a_factor(self):
        if self.evaluation.seeds != 1:
            raise ValueError("evaluation.seeds: a study runs every cell with each of study.seeds; allowed here: 1")
        return self

    @property
    def seeds(self) -> list[int]:
        return list(self.study.seeds)

    def granularities(self, setup: SetupConfig) -> list[str]:
        return setup.granularities or self.study.granularities

    def iterations(self, setup: SetupConfig) -> list[int]:
        return setup.iterations or self.study.iterations

    def search_doc(self, setup: SetupConfig, seed: int, granularities: list[str]) -> dict:
        """The search config (as a document) that runs this setup's cells of one seed."""
        f = self.study
        criteria = [c for c in f.criteria if any(c in CRITERIA[g] for g in granularities)]
        return {
            "experiment": {**self.experiment.model_dump(mode="json"), "seed": seed},
            "model": {**self.model, **(setup.model or {})},
            "data": {**self.data, **(setup.data or {})},
            "baseline": {**self.baseline, **(setup.baseline or {})},
            "space": {"granularities": granularities, "criteria": criteria,
                      "ratio": [min(f.ratios), max(f.ratios)],
                      "iterations": [min(self.iterations(setup)), max(self.iterations(setup))],
                      "finetune_epochs": self.finetune.epochs,
                      "finetune": self.finetune.model_dump(mode="json", exclude={"method", "epochs"},
                                                           exclude_none=True),
                      "finetune_method": f.finetune_methods},
            "attacks": [a.model_dump(mode="json", exclude_none=True) for a in self.attacks],
            "evaluation": self.evaluation.model_dump(mode="json", exclude_none=True),
            "latency": self.latency.model_dump(mode="json"),
            "resources": self.resources.model_dump(mode="json"),
            "failures": self.failures.model_dump(mode="json"),
        }

    def search_config(self, setup: SetupConfig, seed: int, granularities: list[str]) -> SearchConfig:
        """ConfigError (one line, the field named as in the study config) when it does not hold."""
        try:
            return SearchConfig.model_validate(self.search_doc(setup, seed, granularities))
        except ValidationError as e:
            raise ConfigError(study_field(format_validation_error(e), setup)) from None


def study_field(line: str, setup: SetupConfig) -> str:
    """A search config's error line in the study's terms: a section the setup overrides is
    named under it (by the setup's name), the space's under study."""
    field, sep, rest = line.partition(":")
    head = field.split(".")[0]
    if head in ("model", "data", "baseline") and getattr(setup, head) is not None:
        return f"study.setups.{setup.name}.{field}{sep}{rest}"
    if head == "space":
        return f"study.{field.removeprefix('space.')}{sep}{rest}"
    return line


def load_study_config(path: str | os.PathLike, overrides: list[str] = ()) -> StudyConfig:
    """Read YAML, apply --set overrides, validate. Raises ConfigError with one line."""
    raw = read_yaml_mapping(path)
    if "study" not in raw and ("search" in raw or "space" in raw):
        raise ConfigError(f"config: {path} is a search config (it has no 'study' section); run it with "
                          f"`robustprune run`")
    return validated(StudyConfig, raw, overrides)
