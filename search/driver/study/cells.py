"""A study's grid: its cells (one trial each), the ones that cannot run and why, and the
search config of each setup and seed that runs them."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from trainables.prune import CRITERIA

from ...config import ConfigError, SearchConfig
from ..preflight import unprunable_by_name, unprunable_granularities
from .config import SetupConfig, StudyConfig

@dataclass(frozen=True)
class Cell:
    setup: str
    granularity: str
    criterion: str
    ratio: float
    iterations: int
    finetune_method: str
    seed: int

    @property
    def key(self) -> str:
        """The cell's name in MLflow (its child run's trial tag): one run per cell, ever."""
        return (f"{self.setup}/{self.granularity}/{self.criterion}/r{self.ratio:g}/it{self.iterations}/"
                f"{self.finetune_method}/s{self.seed}")

    def as_dict(self) -> dict:
        return asdict(self)


def cells_of(cfg: StudyConfig, setup: SetupConfig) -> list[Cell]:
    """Every cell of a setup, applicable or not, in the config's order."""
    f = cfg.study
    return [Cell(setup.name, g, c, r, it, m, s)
            for g in cfg.granularities(setup) for c in f.criteria if c in CRITERIA[g]
            for r in f.ratios for it in cfg.iterations(setup) for m in f.finetune_methods for s in cfg.seeds]


@dataclass
class SetupPlan:
    """One setup: its cells, the granularities it cannot be pruned at (with why; `checked`
    false when that needs the network built, which a dry run leaves to the study's start), and
    its search config per seed (none, and the `problem`, when the setup cannot run yet)."""
    setup: SetupConfig
    cells: list[Cell]
    not_applicable: dict[str, str]
    configs: dict[int, SearchConfig]
    checked: bool = True
    problem: str | None = None

    @property
    def runnable(self) -> list[Cell]:
        return [c for c in self.cells if c.granularity not in self.not_applicable]


def plan_setup(cfg: StudyConfig, setup: SetupConfig, build: bool) -> SetupPlan:
    """The setup's plan. A built-in network without weights is judged by name; another is
    built (when `build`) to learn which granularities prune it. A setup that cannot be
    configured raises ConfigError, unless not `build` (a dry run), which records the problem."""
    cells = cells_of(cfg, setup)
    model = {**cfg.model, **(setup.model or {})}
    by_name = unprunable_by_name(model.get("name", "lenet"), model.get("weights"))
    granularities = cfg.granularities(setup)
    not_applicable = {g: why for g, why in (by_name or {}).items() if g in granularities}
    try:
        if by_name is None and build:
            probe_at = next(g for g in granularities if any(c in CRITERIA[g] for c in cfg.study.criteria))
            probe = cfg.search_config(setup, cfg.seeds[0], [probe_at])
            not_applicable = {g: why for g, why in unprunable_granularities(probe).items() if g in granularities}
        runnable = [g for g in granularities if g not in not_applicable]
        configs = {seed: cfg.search_config(setup, seed, runnable) for seed in cfg.seeds} if runnable else {}
        return SetupPlan(setup, cells, not_applicable, configs, checked=by_name is not None or build)
    except ConfigError as e:
        if build:
            raise
        return SetupPlan(setup, cells, not_applicable, {}, checked=by_name is not None, problem=str(e))


def plan(cfg: StudyConfig, build: bool = True) -> list[SetupPlan]:
    return [plan_setup(cfg, setup, build) for setup in cfg.study.setups]
