"""The final evaluation on the test split: the baseline's (before the search, cached with
it) and the front's (after the search, and on resume).

Selection is over by then: these numbers are reported (child runs, `pareto`, model
cards), never fed back to the sampler or the front. Every model's test split is cut into
fixed-size parts (trainables/test_eval.py), and every part of every model is one Ray task
with one trial's resources, so the whole cluster shares the work however few models
there are. The front's evaluation starts while the search's last trials run, on the slots
they leave idle (`FrontEvaluation`). Front members that already carry test metrics (a
resumed search) are skipped; a point sampled twice gives the same (seeded) model,
measured once.
"""
from __future__ import annotations

import ray

from trainables.store import payload_digest
from trainables.test_eval import join_test_parts, part_count

from ..config import SearchConfig
from .final_eval_task import final_eval_part_task
from ..tracking.records import SearchRecords

DONE_METRIC = "test_robust_acc"  # present on a run once its final evaluation is logged
COMPUTE_METRIC = "test_eval_seconds"  # the worker time a model's final evaluation took, all parts together


class _PartTasks:
    """Submits a model's final-evaluation parts as Ray tasks with one trial's resources."""

    def __init__(self, cfg: SearchConfig):
        template = cfg.fixed_trial_config()
        self.cpus, self.parts = cfg.resources.cpus_per_trial, part_count(template)
        self.cfg_dict = template.model_dump(mode="json")
        self.task = ray.remote(num_cpus=self.cpus, num_gpus=cfg.resources.gpus_per_trial)(final_eval_part_task)

    def submit(self, payload: dict) -> list:
        stored = ray.put(payload)
        return [self.task.remote(stored, self.cfg_dict, self.cpus, part) for part in range(self.parts)]


def _joined(refs: list) -> dict:
    done = ray.get(refs)
    return {**join_test_parts([p for p, _ in done]), COMPUTE_METRIC: sum(s for _, s in done)}


def measure_on_test(payloads: dict[str, dict], cfg: SearchConfig) -> dict[str, dict]:
    """Each model's final evaluation (`test_*`, `robustness_curve`, `test_eval_seconds`), by
    key; all parts of all models are submitted at once."""
    return joined_on_test(submit_on_test({key: (payload, cfg) for key, payload in payloads.items()}))


def submit_on_test(models: dict[str, tuple[dict, SearchConfig]]) -> dict[str, list]:
    """The final evaluation's part tasks of models each with its own config (a study's
    baselines), submitted now; `joined_on_test` waits for them."""
    return {key: _PartTasks(cfg).submit(payload) for key, (payload, cfg) in models.items()}


def joined_on_test(refs: dict[str, list]) -> dict[str, dict]:
    return {key: _joined(parts) for key, parts in refs.items()}


class FrontEvaluation:
    """The front's final evaluation, started as early as the search leaves a slot idle.

    Once every trial has started, a trial that ends frees a slot that no trial will take:
    `start_early` then submits the current front's models (the search is nearly over, and
    most of them stay on the front), so the idle slot, and the cold start of the task
    workers, go to the final evaluation. `finish` submits what is still missing, cancels the
    models that left the front, and waits. Selection is unaffected: the front is decided on
    validation whatever these tasks measure."""

    def __init__(self, records: SearchRecords, cfg: SearchConfig):
        self.records, self.cfg = records, cfg
        self._tasks: _PartTasks | None = None  # made on first use: the driver may never need Ray tasks
        self._digest: dict[str, str] = {}  # run id -> its model's digest (a point sampled twice: one model)
        self._refs: dict[str, list] = {}  # model digest -> its parts' task refs
        self.dropped = 0  # models started early that then left the front (cancelled)

    def _submit(self, run_ids: list[str]) -> None:
        if run_ids and self._tasks is None:
            self._tasks = _PartTasks(self.cfg)
        for run_id in run_ids:
            if self._digest.get(run_id) in self._refs:
                continue
            payload = self.records.trials.model_payload(run_id)
            digest = payload_digest(payload)
            if digest not in self._refs:
                self._refs[digest] = self._tasks.submit(payload)
            self._digest[run_id] = digest

    def _keep_only(self, run_ids: list[str]) -> list[str]:
        """Cancel the tasks of every model but these (which are submitted); the cancelled digests."""
        self._submit(run_ids)
        needed = {self._digest[run_id] for run_id in run_ids}
        dropped = [digest for digest in self._refs if digest not in needed]
        for digest in dropped:
            for ref in self._refs.pop(digest):
                ray.cancel(ref)
        return dropped

    def start_early(self, front: list[dict]) -> None:
        self.dropped += len(self._keep_only([row["run_id"] for row in front if DONE_METRIC not in row]))

    def finish(self, front: list[dict]) -> tuple[int, float]:
        """Measure and log the test metrics of every front member lacking them; returns how
        many, and the worker seconds that took (models measured early and then dropped from
        the front are cancelled and not counted)."""
        todo = [row["run_id"] for row in front if DONE_METRIC not in row]
        early = len(self._refs) + self.dropped
        self.dropped += len(self._keep_only(todo))
        if not todo:
            return 0, 0.0
        template = self.cfg.fixed_trial_config()
        print(f"[robustprune] final test evaluation of {len(todo)} front models ({len(self._refs)} distinct; "
              f"{early} started while the last trials ran, {self.dropped} of those left the front and were "
              f"cancelled; {template.test_eval_size()} test images in {part_count(template)} parts each, "
              f"attacks: {', '.join(s.name for s in template.final_attack_specs())})", flush=True)
        measured = {digest: _joined(refs) for digest, refs in self._refs.items()}
        for run_id in todo:
            self.records.tests.log(run_id, measured[self._digest[run_id]])
        return len(todo), sum(m[COMPUTE_METRIC] for m in measured.values())
