"""The final evaluation's numbers in MLflow: `test_*` metrics per run, and the robustness
curve as a metric history (`test_robust_acc_curve` at step = eps x CURVE_STEP_SCALE)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from mlflow.entities import Metric

from ..front.plots import plot_robustness_curves
from .parent_run import ParentRun, metric_batch
from .schema import numeric_metrics

CURVE_METRIC = "test_robust_acc_curve"
CURVE_STEP_SCALE = 10_000  # MLflow steps are integers: eps 0.0314 is logged at step 314


class TestMetrics:
    """Writes and reads the test metrics of a search's runs (children, and the parent's baseline)."""
    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, parent: ParentRun):
        self.parent = parent

    def log(self, run_id: str, metrics: dict, suffix: str = "") -> None:
        """Test metrics (`test_*{suffix}`) and the robustness curve of one run."""
        client = self.parent.client
        client.log_batch(run_id, metrics=metric_batch({f"{k}{suffix}": v
                                                       for k, v in numeric_metrics(metrics).items()}))
        now = int(time.time() * 1000)
        points = [Metric(f"{CURVE_METRIC}{suffix}", p["test_robust_acc"], now, round(p["eps"] * CURVE_STEP_SCALE))
                  for p in metrics.get("robustness_curve", [])]
        if points:
            client.log_batch(run_id, metrics=points)

    def log_baseline(self, metrics: dict) -> None:
        """The baseline's final evaluation on the parent run (`test_*_baseline`), once."""
        if "test_robust_acc_baseline" not in self.parent.client.get_run(self.parent.run_id).data.metrics:
            self.log(self.parent.run_id, metrics, suffix="_baseline")

    def robustness_curve(self, run_id: str, suffix: str = "") -> list[tuple[float, float]]:
        """(eps, test robust accuracy) pairs logged by `log`, by eps."""
        history = self.parent.client.get_metric_history(run_id, f"{CURVE_METRIC}{suffix}")
        return sorted({h.step / CURVE_STEP_SCALE: h.value for h in history}.items())

    def log_robustness_curves(self, front: list[dict]) -> None:
        """`robustness_curves.png` on the parent: test robust accuracy vs eps, front and baseline."""
        curves = {f"{r['criterion']} {r['granularity']} r={r['ratio']:.2f} it={r['iterations']}":
                  self.robustness_curve(r["run_id"]) for r in front}
        curves["baseline"] = self.robustness_curve(self.parent.run_id, "_baseline")
        curves = {label: points for label, points in curves.items() if points}
        if curves:
            with tempfile.TemporaryDirectory() as d:
                plot_robustness_curves(curves, Path(d) / "robustness_curves.png")
                self.parent.client.log_artifacts(self.parent.run_id, d)
