"""The study's Tune callback: logs each finished cell as a child run (with its test metrics),
and refreshes the study's statistics on the parent as they become computable.

Like the search's TrialLogger it runs on Tune's event loop, so MLflow never runs ahead of
the cells Tune has recorded; a cell's run is keyed by the cell (not by Tune's trial id), so a
resumed study skips what MLflow holds and no cell is logged twice.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ray import tune

from ...tracking.records import SearchRecords
from ...tracking.schema import ROLE_TAG
from .. import console
from ...tracking.study_report import log_study_outputs
from .cells import Cell

REFRESH_EVERY_S = 30.0  # the parent's statistics (its plots at the end): at most this often while cells run


def cell_params(cell: dict, finetune_epochs: int) -> dict:
    return {**cell, "finetune_epochs": finetune_epochs}


class StudyLogger(tune.Callback):
    def __init__(self, records: SearchRecords, finetune_epochs: int, total: int):
        self.records, self.finetune_epochs, self.total = records, finetune_epochs, total
        self.logged = 0
        self._refreshed = time.monotonic()

    def on_trial_complete(self, iteration, trials, trial, **info):
        # a tracking problem is reported, not counted as the cell's failure (Tune would rerun it)
        try:
            if trial.checkpoint is not None:
                self._log_cell(trial.config["cell"], trial.checkpoint)
            if time.monotonic() - self._refreshed >= REFRESH_EVERY_S:
                self.refresh()
        except Exception as e:
            print(f"[robustprune] WARNING: MLflow logging of cell {trial.config['cell']} failed: {e!r}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        print(f"[robustprune] cell {trial.config['cell']} FAILED: {trial.get_error()!r}"[:400], flush=True)
        console.trial_ended()
        try:
            self.records.trials.log_failed(cell_key(trial.config["cell"]),
                                           cell_params(trial.config["cell"], self.finetune_epochs),
                                           repr(trial.get_error()))
        except Exception as e:
            print(f"[robustprune] WARNING: MLflow logging of a failed cell failed: {e!r}", flush=True)

    def refresh(self) -> None:
        log_study_outputs(self.records, plots=False)
        self._refreshed = time.monotonic()

    def _log_cell(self, cell: dict, checkpoint) -> None:
        with checkpoint.as_directory() as d:
            metrics = json.loads((Path(d) / "metrics.json").read_text())
            run_id = self.records.trials.log_finished(cell_key(cell), cell_params(cell, self.finetune_epochs),
                                                      metrics, Path(d), {ROLE_TAG: "cell"})
        if run_id is None:
            return
        # its test metrics came with the run's metrics; the robustness curve is a metric history
        self.records.tests.log(run_id, {"robustness_curve": metrics.get("robustness_curve", [])})
        self.logged += 1
        print(f"[robustprune] cell {self.logged}/{self.total} {cell_key(cell)} | FLOPs "
              f"-{metrics['flops_reduction']:.1%} | test clean {metrics['test_clean_acc']:.3f} "
              f"robust {metrics['test_robust_acc']:.3f}", flush=True)
        console.trial_ended()


def cell_key(cell: dict) -> str:
    return Cell(**cell).key
