"""The final evaluation on the test split: the baseline's (before the search, cached with
it) and the front's (after the search, and on resume).

Selection is over by then: these numbers are reported (child runs, `pareto`, model
cards), never fed back to the sampler or the front. Every model's test split is cut into
fixed-size parts (trainables/test_eval.py), and every part of every model is one Ray task
with one trial's resources, so the whole cluster shares the work however few models
there are. Front members that already carry test metrics (a resumed search) are skipped;
a point sampled twice gives the same (seeded) model, measured once.
"""
from __future__ import annotations

import ray

from trainables.store import payload_digest
from trainables.test_eval import join_test_parts, part_count

from .config import SearchConfig
from .tracking import Tracker
from .trial_worker import final_eval_part_task

DONE_METRIC = "test_robust_acc"  # present on a run once its final evaluation is logged
COMPUTE_METRIC = "test_eval_seconds"  # the worker time a model's final evaluation took, all parts together


def measure_on_test(payloads: dict[str, dict], cfg: SearchConfig) -> dict[str, dict]:
    """Each model's final evaluation (`test_*`, `robustness_curve`, `test_eval_seconds`), by
    key; all parts of all models are submitted at once."""
    template = cfg.fixed_trial_config()
    cpus = cfg.resources.cpus_per_trial
    task = ray.remote(num_cpus=cpus, num_gpus=cfg.resources.gpus_per_trial)(final_eval_part_task)
    cfg_dict = template.model_dump(mode="json")
    refs = {}
    for key, payload in payloads.items():
        stored = ray.put(payload)
        refs[key] = [task.remote(stored, cfg_dict, cpus, part) for part in range(part_count(template))]
    results = {}
    for key, parts in refs.items():
        done = ray.get(parts)
        results[key] = {**join_test_parts([p for p, _ in done]), COMPUTE_METRIC: sum(s for _, s in done)}
    return results


def evaluate_front(tracker: Tracker, cfg: SearchConfig, front: list[dict]) -> tuple[int, float]:
    """Measure and log the test metrics of every front member lacking them; returns how many,
    and the worker seconds that took."""
    todo = [row["run_id"] for row in front if DONE_METRIC not in row]
    if not todo:
        return 0, 0.0
    digests, payloads = {}, {}
    for run_id in todo:
        payload = tracker.model_payload(run_id)
        digests[run_id] = payload_digest(payload)
        payloads.setdefault(digests[run_id], payload)
    template = cfg.fixed_trial_config()
    print(f"[robustprune] final test evaluation of {len(todo)} front models ({len(payloads)} distinct, "
          f"{template.test_eval_size()} test images in {part_count(template)} parts each, attacks: "
          f"{', '.join(s.name for s in template.final_attack_specs())})", flush=True)
    measured = measure_on_test(payloads, cfg)
    for run_id in todo:
        tracker.log_final_evaluation(run_id, measured[digests[run_id]])
    return len(todo), sum(m[COMPUTE_METRIC] for m in measured.values())
