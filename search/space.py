"""The Optuna search space, define-by-run: the criterion is conditional on the granularity.

Each granularity has its own criterion parameter (`criterion_filter`, `criterion_layer`)
because Optuna keeps one distribution per parameter name; the chosen one is passed to
the trial as `criterion`.
"""
from __future__ import annotations

from typing import Callable

import optuna

from .config import SearchSettings, SpaceConfig


class SearchSpace:
    """Define-by-run space for OptunaSearch (a class, not a closure: the searcher is pickled
    into the experiment's checkpoint for resume)."""

    def __init__(self, space: SpaceConfig):
        self.space = space

    def __call__(self, trial: optuna.Trial) -> dict:
        s = self.space
        granularity = trial.suggest_categorical("granularity", s.granularities)
        criterion = trial.suggest_categorical(f"criterion_{granularity}", s.criteria_for(granularity))
        steps = int((s.ratio.high - s.ratio.low) / s.ratio_step + 1e-9)  # the grid's top stays <= high
        trial.suggest_float("ratio", s.ratio.low, round(s.ratio.low + steps * s.ratio_step, 10), step=s.ratio_step)
        trial.suggest_int("iterations", s.iterations.low, s.iterations.high)
        trial.suggest_int("finetune_epochs", s.finetune_epochs.low, s.finetune_epochs.high)
        return {"criterion": criterion}


def sampled_point(config: dict) -> dict:
    """The trial-relevant values of a Tune config produced by `define_space`."""
    return {k: config[k] for k in ("granularity", "criterion", "ratio", "iterations", "finetune_epochs")}


def _nsga2(settings: SearchSettings, seed: int) -> optuna.samplers.BaseSampler:
    # Optuna's default population (50) would leave a short search entirely random; a tiny
    # one collapses onto a few repeated points. Two generations at least, when possible.
    population = settings.population_size or max(8, min(50, settings.num_samples // 2))
    return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)


SAMPLERS: dict[str, Callable[[SearchSettings, int], optuna.samplers.BaseSampler]] = {
    "nsga2": _nsga2,
    "tpe": lambda s, seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, s.num_samples // 4)),
    "random": lambda s, seed: optuna.samplers.RandomSampler(seed=seed),
}


def make_sampler(settings: SearchSettings, seed: int) -> optuna.samplers.BaseSampler:
    return SAMPLERS[settings.sampler](settings, seed)
