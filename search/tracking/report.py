"""A search's report: one self-contained HTML page per search (no script or image
fetched from anywhere: plotly.js and the PNGs are inlined), so it opens offline and can
be mailed. It holds what the search is, its hypervolume, the front table, the
interactive front (one point per finished trial), the hypervolume and robustness-curve
plots, and the config. A study's page is study_report.py's. Read-only on the store, apart
from logging the page to the parent run (the driver does at the end of a search;
`robustprune report` on demand)."""
from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

from ..front.plots import front_figure, plot_hypervolume
from ..front.table import FRONT_HEADERS, front_cells, front_notes
from .records import SearchRecords
from .schema import KIND_TAG, objectives_of, run_row

REPORT_FILE = "report.html"


def png_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _front_table(front: list[dict], objectives: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in FRONT_HEADERS)
    notes = front_notes(front, objectives)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in front_cells(r, notes.get(r["run_id"], ""))) +
                   f"<td>{html.escape(r['run_id'])}</td></tr>" for r in front)
    return f'<table id="front"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def build_report(records: SearchRecords) -> str:
    """The page's HTML, from the parent run and its children as they are now."""
    client, parent_id = records.parent.client, records.parent.run_id
    parent = client.get_run(parent_id)
    if parent.data.tags.get(KIND_TAG) == "study":
        from .study_report import build_study_report  # the study's page imports this module's helpers

        return build_study_report(records)
    objectives = objectives_of(parent)
    baseline = records.parent.baseline_metrics()
    finished = [r for r in records.trials.runs("FINISHED") if all(m in r.data.metrics for m in objectives)]
    rows = [run_row(r) for r in finished]
    front_ids = {r.info.run_id for r in finished if r.data.tags.get("pareto") == "true"}
    front = sorted((row for row in rows if row["run_id"] in front_ids), key=lambda r: -r["robust_acc"])
    plot = (front_figure(rows, front_ids, objectives, baseline).to_html(
        full_html=False, include_plotlyjs=True, div_id="front-plot") if rows else "<p>No finished trial yet.</p>")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        plot_hypervolume(records.parent.hypervolume_history(), folder / "hypervolume.png")
        images = [png_tag(folder / "hypervolume.png", "hypervolume against wall time and finished trials")]
        logged = {a.path for a in client.list_artifacts(parent_id)}
        if "robustness_curves.png" in logged:
            images.append(png_tag(Path(client.download_artifacts(parent_id, "robustness_curves.png",
                                                                   d)), "robustness curves of the front"))
        config = (Path(client.download_artifacts(parent_id, "config.yaml", d)).read_text()
                  if "config.yaml" in logged else "")
    hv = parent.data.metrics.get("hypervolume", 0.0)
    title = f"robustprune search {parent.info.run_name}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} img{{max-width:100%}}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p id="summary">{html.escape(records.parent.summary().replace("**", ""))}</p>
<p>Status {parent.info.status}. <b>Hypervolume {hv:.4f}</b> after {len(rows)} finished trials;
{len(front)} models on the front (validation metrics select; test metrics come from the final evaluation).
Parent run <code>{parent.info.run_id}</code>.</p>
<h2>Front</h2>
{_front_table(front, objectives)}
<h2>Trials (interactive: hover a point)</h2>
{plot}
<h2>Search progress and robustness</h2>
{"".join(images)}
<h2>Config</h2>
<pre>{html.escape(config)}</pre>
</body></html>
"""


def log_report(records: SearchRecords, page: str | None = None) -> str:
    """Log the page (built now unless given) to the parent run as report.html."""
    page = page or build_report(records)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / REPORT_FILE).write_text(page)
        records.parent.client.log_artifact(records.parent.run_id, str(Path(d) / REPORT_FILE))
    return page
