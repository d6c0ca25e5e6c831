"""A study's answer in MLflow: its rows read back from the child runs, and on the parent run
study_cells.csv, study_stats.json, the plots, the description and the self-contained
report page (report.html). Rewritten as cells finish and once more at the end."""
from __future__ import annotations

import html
import json
import tempfile
from pathlib import Path

from mlflow.entities import RunTag

from ..front import study_plots
from ..front.study_stats import METRIC, attack_metrics, cells_csv, study_statistics
from .records import SearchRecords
from .report import REPORT_FILE, png_tag
from .schema import NOTE_TAG, ROLE_TAG

PARAM_TYPES = {"setup": str, "granularity": str, "criterion": str, "ratio": float, "iterations": int,
               "finetune_method": str, "seed": int}


def study_rows(records: SearchRecords) -> list[dict]:
    """One row per finished cell and baseline run: its factors (typed) and metrics."""
    rows = []
    for run in sorted(records.trials.runs("FINISHED"), key=lambda r: r.info.start_time):  # the grid's order
        if run.data.tags.get(ROLE_TAG) not in ("cell", "baseline"):
            continue
        p = run.data.params
        rows.append({**{k: cast(p[k]) for k, cast in PARAM_TYPES.items() if k in p},
                     **run.data.metrics, "run_id": run.info.run_id})
    return rows


def _plots(stats: dict, rows: list[dict], folder: Path) -> list[tuple[str, str]]:
    """Draw every plot the statistics allow into `folder`: (file name, caption) pairs."""
    drawn = []
    if stats["cells"]:
        for metric in (METRIC, *attack_metrics(rows)):
            name = f"study_{metric}_vs_flops.png"
            study_plots.plot_accuracy_vs_flops(stats, metric, folder / name)
            drawn.append((name, f"{metric} against FLOPs reduction (mean, 95% CI over seeds)"))
    for granularity, ranking in stats["ranking"].items():
        name = f"study_cd_{granularity}.png"
        if study_plots.plot_critical_difference(ranking, granularity, folder / name):
            drawn.append((name, f"critical-difference diagram, {granularity} pruning"))
    if stats["variance_shares"]:
        study_plots.plot_variance_shares(stats["variance_shares"], folder / "study_variance_shares.png")
        drawn.append(("study_variance_shares.png", f"share of the variance of {METRIC} by factor"))
    return drawn


def build_study_report(records: SearchRecords) -> str:
    """The study's page from what MLflow holds now (`robustprune report`)."""
    rows = study_rows(records)
    stats = study_statistics(rows)
    with tempfile.TemporaryDirectory() as d:
        plots = _plots(stats, rows, Path(d))
        return study_page(records, stats, [(Path(d) / n, c) for n, c in plots])


def log_study_outputs(records: SearchRecords, plots: bool = True) -> dict:
    """Compute the statistics from what MLflow holds now and log every output to the parent
    (the plots only when `plots`: a refresh while cells run leaves the driver's CPU to them);
    returns the statistics."""
    rows = study_rows(records)
    stats = study_statistics(rows)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "study_cells.csv").write_text(cells_csv(rows))
        (folder / "study_stats.json").write_text(json.dumps(stats, indent=2))
        drawn = _plots(stats, rows, folder) if plots else []
        (folder / REPORT_FILE).write_text(study_page(records, stats, [(folder / n, c) for n, c in drawn]))
        records.parent.artifacts().log_artifacts(d)
    records.parent.client.log_batch(records.parent.run_id, tags=[RunTag(NOTE_TAG, _description(stats))])
    counts = stats["counts"]
    records.parent.log_metrics({"cells_finished": counts["cells"], "cells_more_robust": counts["more_robust"],
                                "cells_less_robust": counts["less_robust"]})
    return stats


def _description(stats: dict) -> str:
    lines = [f"**Study**: {stats['summary']}."]
    lines += [f"* {g}: {r['answer']}" for g, r in stats["ranking"].items()]
    lines += [f"* {note}" for note in stats["notes"]]
    return "\n".join(lines) + "\n\nreport.html, study_cells.csv and study_stats.json are this run's artifacts."


def _fmt(x, spec=".3f") -> str:
    return "–" if x is None else format(x, spec)


def _interval(i: dict) -> str:
    if i.get("mean") is None:
        return "–"
    if i.get("ci_low") is None:
        return _fmt(i["mean"])
    return f"{i['mean']:.3f} [{i['ci_low']:.3f}, {i['ci_high']:.3f}]"


def _table(table_id: str, head: list[str], rows: list[list[str]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<table id="{table_id}"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head) +
            f"</tr></thead><tbody>{cells}</tbody></table>")


def _cells_table(stats: dict) -> str:
    head = ["setup", "granularity", "criterion", "ratio", "it", "fine-tune", "seeds", "FLOPs red.",
            "test clean", "test robust", "Δ robust vs baseline [95% CI]", "p", "p (Holm)"]
    rows = []
    for c in stats["cells"]:
        v = c["vs_baseline"]
        diff = "–" if v["mean_diff"] is None else (
            f"{v['mean_diff']:+.3f}" + ("" if v["ci_low"] is None else f" [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]"))
        rows.append([c["setup"], c["granularity"], c["criterion"], f"{c['ratio']:g}", str(c["iterations"]),
                     c["finetune_method"], str(c["n"]), _fmt(c["flops_reduction"]["mean"], ".1%"),
                     _interval(c["test_clean_acc"]), _interval(c[METRIC]), diff, _fmt(v["p"], ".3g"),
                     _fmt(v["p_holm"], ".3g")])
    return _table("cells", head, rows)


def _ranking_table(stats: dict) -> str:
    rows = []
    for g, r in stats["ranking"].items():
        ranks = ", ".join(f"{c} {rank:.2f}" for c, rank in sorted(r["average_ranks"].items(), key=lambda x: x[1]))
        rows.append([g, str(r["blocks"]), ranks, r["test"], _fmt(r["friedman_stat"]), _fmt(r["friedman_p"], ".3g"),
                     _fmt(r["critical_difference"], ".2f"), r["answer"]])
    return _table("ranking", ["granularity", "blocks", "average ranks (1 best)", "test", "statistic", "p",
                              "critical difference", "is one criterion best on average?"], rows)


def study_page(records: SearchRecords, stats: dict, plots: list[tuple[Path, str]]) -> str:
    """The study's self-contained page (the PNGs inlined)."""
    parent = records.parent.client.get_run(records.parent.run_id)
    title = f"robustprune study {parent.info.run_name}"
    baselines = _table("baselines", ["setup", "seeds", "test clean", "test robust"],
                       [[s, str(b["n"]), _interval(b["test_clean_acc"]), _interval(b[METRIC])]
                        for s, b in stats["baselines"].items()])
    shares = _table("variance", ["factor", "share of variance"],
                    [[f, f"{v:.1%}"] for f, v in stats["variance_shares"].items()])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in stats["notes"])
    prefix = "resolved.not_applicable."
    not_applicable = _table("not-applicable", ["setup", "granularity", "why not"],
                            [[*k.removeprefix(prefix).rsplit(".", 1), v] for k, v in parent.data.params.items()
                             if k.startswith(prefix)])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} img{{max-width:100%}}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p id="summary">{html.escape(stats['summary'])}.</p>
<ul id="notes">{notes}</ul>
<p>Status {parent.info.status}. Parent run <code>{parent.info.run_id}</code>. Test metrics over seeds: mean
[95% Student-t interval]; each cell is paired with the unpruned baseline of the same setup and seed.</p>
<h2>Is one criterion best on average?</h2>
{_ranking_table(stats)}
<h2>Which factor matters</h2>
{shares}
<h2>Cells</h2>
{_cells_table(stats)}
<h2>Unpruned baselines</h2>
{baselines}
<h2>Cells not applicable</h2>
{not_applicable}
<h2>Plots</h2>
{"".join(png_tag(path, caption) for path, caption in plots)}
</body></html>
"""
