"""The front as text: CSV, a fixed-width table, formatted cells and markdown."""
from __future__ import annotations

import csv
import io

from .objectives import finetune_method_of
from .seeds import SEED_METRICS, SEEDS_METRIC, has_seeds, indistinguishable, mean_and_interval

NOT_DISTINGUISHABLE = "not distinguishable from the next point"


FRONT_COLUMNS = ["run_id", "trial_id", "criterion", "granularity", "ratio", "iterations", "finetune_method",
                 "flops", "flops_reduction", "params", "clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc",
                 "latency_ms", "latency_ratio", SEEDS_METRIC,
                 *(f"{m}_{part}" for m in SEED_METRICS for part in ("mean", "std", "ci_low", "ci_high"))]


def front_notes(front: list[dict], objectives: dict[str, str]) -> dict[str, str]:
    """A note per front model that its seeds cannot tell from its neighbour (by run id)."""
    return {run_id: NOT_DISTINGUISHABLE for run_id in indistinguishable(front, objectives)}


def _formatted(r: dict, metric: str, spec: str) -> str:
    """A metric's value, or "–" where it is missing (test metrics before the final evaluation)."""
    v = r.get(metric)
    return format(v, spec) if isinstance(v, float) else "–"


def _value(r: dict, metric: str, spec: str = ".3f") -> str:
    """A metric's mean ± half its 95 % interval over the seeds, or its single value."""
    return mean_and_interval(r, metric, spec) or _formatted(r, metric, spec)


def front_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FRONT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def front_table(rows: list[dict], notes: dict[str, str] | None = None) -> str:
    """Fixed-width text table of the front, best robust accuracy first. clean_acc / robust_acc
    are validation (what the front was selected on); test_* come from the final evaluation;
    over several seeds, each is the mean ± half its 95 % interval (`notes`: by run id)."""
    seeded = any(has_seeds(r) for r in rows)
    cols = ["criterion", "granularity", "ratio", "iterations", "finetune_method", "flops_reduction", "latency_ratio",
            "clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc", *([SEEDS_METRIC, "note"] if seeded else []),
            "run_id"]

    def fmt(r, c):
        if c in SEED_METRICS:
            return _value(r, c)
        if c == "note":
            return (notes or {}).get(r["run_id"], "")
        v = r.get(c, "")
        return f"{int(v)}" if c == SEEDS_METRIC else f"{v:.3f}" if isinstance(v, float) else str(v)

    body = [[fmt(r, c) for c in cols] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


FRONT_HEADERS = ["criterion", "granularity", "ratio", "it", "fine-tune", "FLOPs red.", "latency ratio", "val clean",
                 "val robust", "test clean", "test robust", "seeds", "note", "run"]


def front_cells(r: dict, note: str = "") -> list[str]:
    """One front row as formatted text, every FRONT_HEADERS column but the run ("–" where a
    metric is missing, e.g. test metrics before the final evaluation; accuracies over several
    seeds as mean ± half their 95 % interval)."""
    return [str(r["criterion"]), str(r["granularity"]), f"{r['ratio']:.2f}", str(r["iterations"]),
            finetune_method_of(r), _formatted(r, "flops_reduction", ".1%"), _formatted(r, "latency_ratio", ".2f"),
            *(_value(r, m) for m in SEED_METRICS),
            str(int(r.get(SEEDS_METRIC, 1))), note]


def front_markdown(front: list[dict], experiment_id: str, notes: dict[str, str] | None = None) -> str:
    """The front as a markdown table (MLflow renders a run's description as markdown), each
    row linking to its run in the UI."""
    lines = ["| " + " | ".join(FRONT_HEADERS) + " |", "|" + "---|" * len(FRONT_HEADERS)]
    for r in front:
        link = f"[{r['run_id'][:8]}](#/experiments/{experiment_id}/runs/{r['run_id']})"
        lines.append("| " + " | ".join([*front_cells(r, (notes or {}).get(r["run_id"], "")), link]) + " |")
    return "\n".join(lines)

