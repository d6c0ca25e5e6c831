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

from trainables.errors import first_line
from trainables.trial import Baseline

from ..config import SearchConfig
from ..front.seeds import SEEDS_METRIC
from ..tracking.records import SearchRecords
from ..tracking.schema import point_of
from .final_eval_task import final_eval_part_task, replica_task

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
    validation whatever these tasks measure.

    With `evaluation.seeds` k > 1, each front model's point is also run again with k - 1
    more trial seeds (`replica_task`, one trial's resources each, submitted with the model's
    test parts); each replica is logged as it ends, so an interrupted evaluation keeps what
    it measured and a resume runs only the seeds still missing; then the model's run gets
    its summaries over the k seeds (search/tracking/replica_runs.py)."""

    def __init__(self, records: SearchRecords, cfg: SearchConfig, baseline: Baseline | None = None):
        self.records, self.cfg, self.baseline = records, cfg, baseline
        self._tasks: _PartTasks | None = None  # made on first use: the driver may never need Ray tasks
        self._digest: dict[str, str] = {}  # run id -> its model's digest (a point sampled twice: one model)
        self._refs: dict[str, list] = {}  # model digest -> its parts' task refs
        self._replicas: dict[tuple[str, int], ray.ObjectRef] = {}  # (run id, trial seed) -> its replica task
        self._replica_task = None  # these three made on the first replica: most searches run none
        self._baseline_ref = None
        self._cfg_doc: dict | None = None
        self.dropped = 0  # models started early that then left the front (cancelled)

    def _unfinished(self, row: dict) -> bool:
        return DONE_METRIC not in row or (self.cfg.evaluation.seeds > 1 and SEEDS_METRIC not in row)

    def _submit(self, rows: list[dict]) -> None:
        if rows and self._tasks is None:
            self._tasks = _PartTasks(self.cfg)
        for row in rows:
            run_id = row["run_id"]
            if DONE_METRIC not in row and self._digest.get(run_id) not in self._refs:
                payload = self.records.trials.model_payload(run_id)
                digest = payload_digest(payload)
                if digest not in self._refs:
                    self._refs[digest] = self._tasks.submit(payload)
                self._digest[run_id] = digest
            if self.cfg.evaluation.seeds > 1 and SEEDS_METRIC not in row:
                self._submit_replicas(run_id)

    def _submit_replicas(self, run_id: str) -> None:
        """The replica tasks of a front model's seeds that are neither logged nor running."""
        wanted = [s for s in self.cfg.evaluation.replica_seeds(self.cfg.experiment.seed)
                  if (run_id, s) not in self._replicas]
        if not wanted:
            return
        logged = self.records.replicas.of(run_id)
        point = point_of(self.records.parent.client.get_run(run_id).data.params)
        if self._replica_task is None:
            resources = self.cfg.resources
            self._replica_task = ray.remote(num_cpus=resources.cpus_per_trial,
                                            num_gpus=resources.gpus_per_trial)(replica_task)
            self._baseline_ref = ray.put(self.baseline)
            self._cfg_doc = self.cfg.model_dump(mode="json")
        for seed in wanted:
            self._replicas[(run_id, seed)] = None if seed in logged else self._replica_task.remote(
                self._baseline_ref, self._cfg_doc, point, seed, self.cfg.resources.cpus_per_trial)

    def _keep_only(self, rows: list[dict]) -> list[str]:
        """Cancel the tasks of every model but these (which are submitted); the cancelled digests."""
        self._submit(rows)
        needed = {self._digest[r["run_id"]] for r in rows if r["run_id"] in self._digest}
        dropped = [digest for digest in self._refs if digest not in needed]
        for digest in dropped:
            for ref in self._refs.pop(digest):
                ray.cancel(ref)
        kept = {r["run_id"] for r in rows}
        for key in [key for key in self._replicas if key[0] not in kept]:
            if self._replicas[key] is not None:
                ray.cancel(self._replicas[key])
            del self._replicas[key]
        return dropped

    def start_early(self, front: list[dict]) -> None:
        self.dropped += len(self._keep_only([row for row in front if self._unfinished(row)]))

    def finish(self, front: list[dict]) -> tuple[int, float]:
        """Measure and log the test metrics of every front member lacking them (and, with
        seeds > 1, its replicas and summaries); returns how many, and the worker seconds the
        test parts took (models measured early and then dropped from the front are cancelled
        and not counted; the replicas' time is theirs, `trial_seconds`)."""
        todo = [row for row in front if self._unfinished(row)]
        early = len(self._refs) + self.dropped
        self.dropped += len(self._keep_only(todo))
        if not todo:
            return 0, 0.0
        template = self.cfg.fixed_trial_config()
        replicas = sum(ref is not None for ref in self._replicas.values())
        print(f"[robustprune] final test evaluation of {len(todo)} front models ({len(self._refs)} distinct; "
              f"{early} started while the last trials ran, {self.dropped} of those left the front and were "
              f"cancelled; {template.test_eval_size()} test images in {part_count(template)} parts each, "
              f"attacks: {', '.join(s.name for s in template.final_attack_specs())})"
              + (f"; {replicas} replicas ({self.cfg.evaluation.seeds} seeds per model)" if replicas else ""),
              flush=True)
        measured = {digest: _joined(refs) for digest, refs in self._refs.items()}
        for row in todo:
            if row["run_id"] in self._digest:
                self.records.tests.log(row["run_id"], measured[self._digest[row["run_id"]]])
        self._log_replicas()
        if self.cfg.evaluation.seeds > 1:
            for row in todo:
                self.records.replicas.summarize(row["run_id"])
        return len(todo), sum(m[COMPUTE_METRIC] for m in measured.values())

    def _log_replicas(self) -> None:
        """Each replica logged as it ends (one that failed is reported and left out)."""
        waiting = {ref: key for key, ref in self._replicas.items() if ref is not None}
        originals = {}
        while waiting:
            (ref,), _ = ray.wait(list(waiting), num_returns=1)
            run_id, seed = waiting.pop(ref)
            try:
                metrics = ray.get(ref)
            except Exception as e:
                print(f"[robustprune] WARNING: replica seed {seed} of run {run_id} failed ({first_line(e)}); "
                      f"its summary covers the seeds that ran", flush=True)
                continue
            original = originals.setdefault(run_id, self.records.parent.client.get_run(run_id))
            self.records.replicas.log(original, seed, metrics)
            self._replicas[(run_id, seed)] = None
            print(f"[robustprune] replica seed {seed} of {original.info.run_name}: val robust "
                  f"{metrics['robust_acc']:.3f}, test robust {metrics['test_robust_acc']:.3f}", flush=True)
