"""What the search's trial actors run: the Tune trainable.

Kept apart from the driver's modules (MLflow, Optuna, plotting), so that a fresh Ray
worker imports what it needs and nothing more.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import ray
from ray import tune

from trainables.store import save_model
from trainables.test_eval import final_evaluation
from trainables.train import resolve_device, use_cpus
from trainables.trial import Baseline, Progress, load_data, run_trial

from ..config import SearchConfig, sampled_point
from ..front.objectives import objective_values
from .dry_run import dry_run_trial


def with_objectives(metrics: dict, cfg: SearchConfig) -> dict:
    """The metrics plus what the searcher and scheduler rank on (`objective_*`) and `feasible`."""
    drop = cfg.search.max_clean_acc_drop
    feasible = drop is None or metrics["clean_acc_baseline"] - metrics["clean_acc"] <= drop
    return {**metrics, **objective_values(metrics, cfg.search.objectives, feasible), "feasible": int(feasible)}


def pruning_trial(config: dict, baseline: Baseline, search_config: dict) -> None:
    """Ray Tune function trainable: one trial, reported once with its pruned model (`final`
    1); under mo_asha also after every fine-tune epoch (`final` 0, no checkpoint)."""
    started = time.time()
    cfg = SearchConfig.model_validate(search_config)
    use_cpus(cfg.resources.cpus_per_trial)
    trial_cfg = cfg.trial_config(sampled_point(config))
    base = {f"{k}_baseline": v for k, v in baseline.metrics.items()}
    progress = None
    if cfg.search.scheduler == "mo_asha":
        progress = Progress(lambda m: tune.report({**with_objectives({**m, **base}, cfg), "final": 0}),
                            cfg.search.rung_eval_size)
    result = (dry_run_trial if cfg.search.dry_run else run_trial)(trial_cfg, baseline, progress=progress)
    m = result.metrics  # validation only: the test split is measured after the search, for the front
    _report_final(result, {**m, **trial_cfg.records()}, with_objectives(m, cfg), started)


def wall_clock(started: float) -> dict:
    """When a trial ran (epoch ms), so its MLflow run shows its real start, end and duration."""
    return {"timing": {"started_ms": int(started * 1000), "ended_ms": int(time.time() * 1000)}}


def _report_final(result, logged: dict, reported: dict, started: float) -> None:
    """Report a trial's end to Tune with its pruned model and metrics.json (`logged`, with when
    it ran) as checkpoint."""
    logged = {**logged, **wall_clock(started)}
    with tempfile.TemporaryDirectory() as d:
        save_model(result.model, result.spec, Path(d) / "model.pt")
        (Path(d) / "metrics.json").write_text(json.dumps(logged, indent=2))
        tune.report({**reported, "final": 1, "node_id": ray.get_runtime_context().get_node_id()},
                    checkpoint=tune.Checkpoint.from_directory(d))


def study_cell(config: dict, baselines: dict[str, Baseline], search_configs: dict[str, dict]) -> None:
    """Ray Tune function trainable of a study: one cell (`config["cell"]`), pruned and measured
    on validation, then given the front's final test evaluation, reported once. `baselines`
    and `search_configs` are keyed by "<setup>/s<seed>"."""
    started, wall_started = time.perf_counter(), time.time()
    cell = config["cell"]
    key = f"{cell['setup']}/s{cell['seed']}"
    cfg = SearchConfig.model_validate(search_configs[key])
    use_cpus(cfg.resources.cpus_per_trial)
    trial_cfg = cfg.trial_config(sampled_point({**cell, "finetune_epochs": cfg.space.finetune_epochs.low}))
    result = run_trial(trial_cfg, baselines[key])
    test = final_evaluation(result.model, load_data(trial_cfg), trial_cfg, resolve_device(trial_cfg.device))
    metrics = {**result.metrics, **test, "cell_seconds": time.perf_counter() - started}
    _report_final(result, {**metrics, **trial_cfg.records()},
                  {k: v for k, v in metrics.items() if k != "robustness_curve"}, wall_started)
