"""The parent's live front: which finished, feasible trials are non-dominated, tagged
(`pareto`), measured (`hypervolume`), described (the parent's markdown) and plotted."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow.entities import RunTag

from ..front.dominance import hypervolume, non_dominated
from ..front.objectives import front_value, reference_point, to_minimization
from ..front.seeds import front_on_means, has_seeds
from ..front import plots as front_plots
from ..front.table import front_csv, front_markdown, front_notes
from .schema import LEFT_FRONT_TAG, NOTE_TAG
from .trial_runs import ChildRecord, TrialRuns

PLOT_EVERY_S = 30.0  # the parent's live views: at least this often, and the description whenever the front changes


@dataclass
class FrontState:
    front: list[dict]  # rows of the front, best robust accuracy first
    finished: int  # finished child runs so far
    hypervolume: float


def _finished_among(children, objectives: dict[str, str]) -> list[ChildRecord]:
    return [c for c in children if c.status == "FINISHED" and c.row is not None
            and all(m in c.row for m in objectives)]


class LiveFront:
    """Keeps the front current as trials are logged, at a cost per trial that does not grow."""

    def __init__(self, trials: TrialRuns):
        self.trials, self.parent = trials, trials.parent
        self._last_plot = 0.0
        self._shown: set[str] | None = None  # the front that the description and pareto.csv show
        self._front: list[ChildRecord] | None = None  # the front so far; None: recompute from every child
        self._considered = 0  # children (in `known` order) that `_front` has taken into account
        self._finished_count = 0  # finished children with every objective, among those considered

    def __getstate__(self):
        return {**self.__dict__, "_front": None}

    def _advance(self, objectives: dict[str, str]) -> tuple[list[ChildRecord], float]:
        """The front after the children logged since the last call, and its hypervolume; the
        children whose `pareto` tag may have changed. A point once dominated stays dominated,
        so the front of every finished child is the front of the last front and the new
        children: the cost per trial does not grow with the search."""
        children = list(self.trials.known().values())
        if self._front is None:
            self._front, self._considered, self._finished_count = [], 0, 0
        new = _finished_among(children[self._considered:], objectives)
        self._considered, self._finished_count = len(children), self._finished_count + len(new)
        candidates = self._front + [c for c in new if c.feasible]
        hv = 0.0
        if candidates:
            baseline = self.parent.baseline_metrics()
            values = np.array([[front_value(c.row, m, baseline) for m in objectives] for c in candidates])
            points = to_minimization(values, objectives, baseline)
            self._front = [c for c, on in zip(candidates, non_dominated(points)) if on]
            hv = hypervolume(points, reference_point(objectives))
        return candidates + [c for c in new if not c.feasible], hv

    def _decide_on_means(self, objectives: dict[str, str]) -> None:
        """With summaries over seeds (evaluation.seeds > 1), the front is the non-dominated set
        of its members' means: one that is not leaves it, tagged `left_front_on_means`."""
        replicated = [c for c in self._front if has_seeds(c.row)]
        if not replicated:
            return
        kept = front_on_means([c.row for c in replicated], objectives, self.parent.baseline_metrics())
        left = {c.run_id for c, on in zip(replicated, kept) if not on}
        for run_id in left:
            self.parent.client.set_tag(run_id, LEFT_FRONT_TAG, "true")
        self._front = [c for c in self._front if c.run_id not in left]

    def _description(self, front: list[dict], finished: int, hv: float, final: bool,
                     objectives: dict[str, str]) -> str:
        """The parent run's description (markdown): the search, its hypervolume and its front."""
        state = "final" if final else f"live: refreshed when the front changes and every {PLOT_EVERY_S:.0f} s"
        test = "" if final else " Test columns fill in after the search (final evaluation)."
        return (f"{self.parent.summary()}\n\n**Hypervolume {hv:.4f}** after {finished} finished trials ({state})."
                f" Front: {len(front)} models, best validation robust accuracy first.{test}\n\n"
                f"{front_markdown(front, self.parent.experiment_id, front_notes(front, objectives))}\n\n"
                f"Filter the runs table with `tags.pareto = 'true'` to list the front.")

    def plot(self, objectives: dict[str, str], front_ids: set[str]) -> None:
        """pareto.png, pareto.html (every finished trial, the front marked) and hypervolume.png,
        drawn and logged on the plotting thread from what MLflow holds now."""
        rows = [c.row for c in _finished_among(self.trials.known().values(), objectives)]
        if not rows:
            return
        baseline, history, store = (self.parent.baseline_metrics(), self.parent.hypervolume_history(),
                                    self.parent.artifacts())

        def draw():
            with tempfile.TemporaryDirectory() as d:
                folder = Path(d)
                front_plots.plot_png(rows, front_ids, objectives, baseline, folder / "pareto.png")
                front_plots.plot_html(rows, front_ids, objectives, baseline, folder / "pareto.html")
                front_plots.plot_hypervolume(history, folder / "hypervolume.png")
                store.log_artifacts(d)

        self.parent.plot_in_background(draw)
        self._last_plot = time.monotonic()

    def update(self, objectives: dict[str, str], final: bool = False, plots: bool = True) -> FrontState:
        """Bring the front up to date with the finished, feasible children; tag, measure and plot it.

        During the search the parent is written only when the front changes, and at least every
        PLOT_EVERY_S (each MLflow call costs the driver milliseconds per trial): the progress
        metrics (`hypervolume`, `finished_trials`, `pareto_size`, stamped when measured) wait
        until then, and the plots are redrawn on the interval only. `final` re-reads every child
        from MLflow (the final evaluation adds test metrics) and writes everything, the plots
        too unless `plots` is false (they show validation results only). The plots are drawn
        on a thread; the parent's `finish` waits for them."""
        if final:
            self.trials.forget()
            self._front = None
        touched, hv = self._advance(objectives)
        self._decide_on_means(objectives)
        front_ids = {c.run_id for c in self._front}
        for c in touched:
            flag = "true" if c.run_id in front_ids else "false"
            if c.pareto != flag:
                self.parent.client.set_tag(c.run_id, "pareto", flag)
                c.pareto = flag
        front = sorted((c.row for c in self._front), key=lambda r: -r["robust_acc"])
        finished = self._finished_count
        self.parent.queue_metrics({"hypervolume": hv, "finished_trials": finished,
                                   "pareto_size": len(front_ids)}, step=finished)
        redraw = plots and (final or time.monotonic() - self._last_plot >= PLOT_EVERY_S)
        if final or redraw or front_ids != self._shown:
            self.parent.client.log_batch(  # one round trip: the queued metrics and the description
                self.parent.run_id, metrics=self.parent.take_pending_metrics(),
                tags=[RunTag(NOTE_TAG, self._description(front, finished, hv, final, objectives))])
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "pareto.csv").write_text(front_csv(front))
                self.parent.artifacts().log_artifacts(d)
            if redraw:
                self.plot(objectives, front_ids)
            self._shown = front_ids
        return FrontState(front, finished, hv)
