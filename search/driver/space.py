"""The Optuna search space, define-by-run, with one categorical for (granularity, criterion).

A single `method` parameter ("filter/l1", "layer/pls_vip", ...) keeps the space the same
for every trial: with a criterion parameter conditional on the granularity, NSGA-II and
TPE see no common (intersection) space and sample the criterion at random.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import optuna

from ..config import SearchSettings, SpaceConfig


class SearchSpace:
    """Define-by-run space for OptunaSearch (a class, not a closure: the searcher is pickled
    into the experiment's checkpoint for resume)."""

    def __init__(self, space: SpaceConfig):
        self.space = space

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        s = self.space
        steps = int((s.ratio.high - s.ratio.low) / s.ratio_step + 1e-9)  # the grid's top stays <= high
        return {"method": optuna.distributions.CategoricalDistribution(methods(s)),
                "ratio": optuna.distributions.FloatDistribution(
                    s.ratio.low, round(s.ratio.low + steps * s.ratio_step, 10), step=s.ratio_step),
                "iterations": optuna.distributions.IntDistribution(s.iterations.low, s.iterations.high),
                "finetune_epochs": optuna.distributions.IntDistribution(s.finetune_epochs.low,
                                                                        s.finetune_epochs.high),
                "finetune_method": optuna.distributions.CategoricalDistribution(s.finetune_method)}

    def __call__(self, trial: optuna.Trial) -> dict:
        d = self.distributions()
        granularity, criterion = split_method(trial.suggest_categorical("method", d["method"].choices))
        trial.suggest_float("ratio", d["ratio"].low, d["ratio"].high, step=d["ratio"].step)
        for name in ("iterations", "finetune_epochs"):
            trial.suggest_int(name, d[name].low, d[name].high)
        trial.suggest_categorical("finetune_method", d["finetune_method"].choices)
        return {"granularity": granularity, "criterion": criterion}

    def random_params(self, rng) -> dict:
        """Optuna params of a point drawn uniformly from the space's grid (`rng`: random.Random)."""
        d = self.distributions()
        steps = round((d["ratio"].high - d["ratio"].low) / d["ratio"].step)
        return {"method": rng.choice(d["method"].choices),
                "ratio": round(d["ratio"].low + rng.randint(0, steps) * d["ratio"].step, 10),
                **{name: rng.randint(d[name].low, d[name].high) for name in ("iterations", "finetune_epochs")},
                "finetune_method": rng.choice(d["finetune_method"].choices)}

    def point_of(self, params: dict) -> dict:
        """The trial point (`sampled_point`) of Optuna params, the inverse of `params_of`."""
        granularity, criterion = split_method(params["method"])
        return {"granularity": granularity, "criterion": criterion,
                **{k: params[k] for k in ("ratio", "iterations", "finetune_epochs", "finetune_method")}}

    def params_of(self, point: dict) -> dict:
        """The Optuna params of a trial point (`sampled_point`), the inverse of `__call__`."""
        return {"method": f"{point['granularity']}/{point['criterion']}", "ratio": point["ratio"],
                "iterations": point["iterations"], "finetune_epochs": point["finetune_epochs"],
                "finetune_method": point["finetune_method"]}


def methods(space: SpaceConfig) -> list[str]:
    """Every (granularity, criterion) pair the space allows, as `method` values."""
    return [f"{g}/{c}" for g in space.granularities for c in space.criteria_for(g)]


def split_method(method: str) -> tuple[str, str]:
    granularity, criterion = method.split("/")
    return granularity, criterion


def optuna_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """The study's RDB storage (optuna-dashboard reads it), or None for Optuna's in-memory one."""
    if url is None:
        return None
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url)


def _nsga2(settings: SearchSettings, seed: int) -> optuna.samplers.BaseSampler:
    # Optuna's default population (50) would leave a short search entirely random; a tiny
    # one collapses onto a few repeated points. Two generations at least, when possible.
    population = settings.population_size or max(8, min(50, settings.num_samples // 2))
    return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)


class OneThreadGPSampler(optuna.samplers.GPSampler):
    """Optuna's GP sampler (Matern kernel, log expected hypervolume improvement), fitted with
    one torch thread: the driver shares its node's cores with running trials, and torch's
    default of a thread per core oversubscribes them (here, with two trials running, a
    proposal took 1.6 s with two threads and 0.6 s with one)."""

    def sample_relative(self, study, trial, search_space):
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return super().sample_relative(study, trial, search_space)
        finally:
            torch.set_num_threads(threads)


def _random_start(settings: SearchSettings) -> int:
    """Trials a model-based sampler (TPE, GP) draws at random first: a quarter of the search
    (Optuna's default of 10 would leave a 16-trial search mostly random)."""
    return max(2, settings.num_samples // 4)


SAMPLERS: dict[str, Callable[[SearchSettings, int], optuna.samplers.BaseSampler]] = {
    "nsga2": _nsga2,
    "tpe": lambda s, seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=_random_start(s)),
    "random": lambda s, seed: optuna.samplers.RandomSampler(seed=seed),
    "gp": lambda s, seed: OneThreadGPSampler(seed=seed, n_startup_trials=_random_start(s)),
}


def make_sampler(settings: SearchSettings, seed: int) -> optuna.samplers.BaseSampler:
    return SAMPLERS[settings.sampler](settings, seed)
