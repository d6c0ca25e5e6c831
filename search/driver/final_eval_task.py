"""What the final evaluation's Ray tasks run: one part of one model's test evaluation, or one
replica of a front model (its point again with another trial seed, measured on validation
and test).

A module of its own, apart from the trainable's (which needs Ray Tune, and with it pandas:
about a second of imports), since every task worker of the final evaluation starts cold,
one of them after the search's last trial, while the cluster waits for it.
"""
from __future__ import annotations

import time

from trainables.config import TrialConfig
from trainables.store import model_from_payload
from trainables.test_eval import FinalEvalPart, evaluate_test_part, final_evaluation
from trainables.train import resolve_device, use_cpus
from trainables.trial import Baseline, load_data, run_trial

from ..config import SearchConfig


def final_eval_part_task(payload: dict, trial_config: dict, cpus: float, part: int) -> tuple[FinalEvalPart, float]:
    """Ray task body: one part of a model's final evaluation, and the seconds it took."""
    start = time.perf_counter()
    use_cpus(cpus)
    cfg = TrialConfig.model_validate(trial_config)
    result = evaluate_test_part(model_from_payload(payload), load_data(cfg), cfg, resolve_device(cfg.device), part)
    return result, time.perf_counter() - start


def replica_task(baseline: Baseline, search_config: dict, point: dict, trial_seed: int, cpus: float) -> dict:
    """Ray task body: a front model's point pruned and fine-tuned again from the search's
    baseline with another trial seed, then measured like the trial (validation) and like the
    front (test split); its metrics, `trial_seconds` the whole task's time."""
    start, wall_start = time.perf_counter(), time.time()
    use_cpus(cpus)
    cfg = SearchConfig.model_validate(search_config).trial_config(point, trial_seed)
    result = run_trial(cfg, baseline)
    test = final_evaluation(result.model, load_data(cfg), cfg, resolve_device(cfg.device))
    return {**result.metrics, **test, "trial_seconds": time.perf_counter() - start,
            "timing": {"started_ms": int(wall_start * 1000), "ended_ms": int(time.time() * 1000)}}
