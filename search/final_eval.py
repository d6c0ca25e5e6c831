"""The final evaluation of the front on the test split, after the search (and on resume).

Selection is over by then: these numbers are reported (child runs, `pareto`, model
cards), never fed back to the sampler or the front. Each front member is measured once,
as a Ray task with one trial's resources; members that already carry test metrics (a
resumed search) are skipped. The baseline is measured the same way, once per search.
"""
from __future__ import annotations

import ray
import torch

from trainables.config import TrialConfig
from trainables.store import model_from_payload, payload_digest
from trainables.train import resolve_device
from trainables.trial import Baseline, final_evaluation, load_data

from .config import SearchConfig
from .tracking import Tracker

DONE_METRIC = "test_robust_acc"  # present on a run once its final evaluation is logged


def _evaluate_remote(payload: dict, cfg_dict: dict, cpus: float) -> dict:
    torch.set_num_threads(max(1, int(cpus)))
    cfg = TrialConfig.model_validate(cfg_dict)
    return final_evaluation(model_from_payload(payload), load_data(cfg), cfg, resolve_device(cfg.device))


def evaluate_front(tracker: Tracker, cfg: SearchConfig, baseline: Baseline, front: list[dict]) -> int:
    """Measure and log the test metrics of every front member lacking them; returns how many."""
    template = cfg.fixed_trial_config()
    cpus, gpus = cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(_evaluate_remote)
    cfg_dict = template.model_dump(mode="json")
    todo = [row["run_id"] for row in front if DONE_METRIC not in row]
    # A point sampled twice gives the same (seeded) model: measure it once, log it on both runs.
    refs, by_model = {}, {}
    for run_id in todo:
        payload = tracker.model_payload(run_id)
        digest = payload_digest(payload)
        if digest not in by_model:
            by_model[digest] = task.remote(payload, cfg_dict, cpus)
        refs[run_id] = by_model[digest]
    parent = tracker.client.get_run(tracker.parent_run_id).data.metrics
    if f"{DONE_METRIC}_baseline" not in parent:
        tracker.log_final_evaluation(tracker.parent_run_id, ray.get(task.remote(baseline.payload, cfg_dict, cpus)),
                                     suffix="_baseline")
    if todo:
        print(f"[robustprune] final test evaluation of {len(todo)} front models ({len(by_model)} distinct, "
              f"{template.test_size or 'all'} test images, attacks: "
              f"{', '.join(s.name for s in template.final_attack_specs())})", flush=True)
    for run_id, ref in refs.items():
        tracker.log_final_evaluation(run_id, ray.get(ref))
    return len(todo)
