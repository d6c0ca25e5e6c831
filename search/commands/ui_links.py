"""The lines that end a search or a study: how to open the UI, and the links to its views."""
from __future__ import annotations

DEFAULT_UI = "http://127.0.0.1:5000/"  # where `robustprune ui` serves without --host/--port


def print_ui_links(outcome) -> None:
    """`robustprune ui ...`, then each view's link. A store behind `mlflow server` is its own
    UI: its links are printed at that server."""
    from ..tracking.lookup import search_pages

    served = outcome.tracking_uri.startswith(("http://", "https://"))
    base = outcome.tracking_uri.rstrip("/") + "/" if served else DEFAULT_UI
    if not served:
        print(f"open the UI with: robustprune ui --tracking-uri {outcome.tracking_uri} --experiment "
              f"{outcome.experiment_name}   (parent run {outcome.parent_run_id}, its description holds the answer)")
    try:
        pages = search_pages(outcome.tracking_uri, outcome.parent_run_id)
    except Exception as e:  # the search's results stand; only its links are missing
        print(f"(the UI links could not be read from {outcome.tracking_uri}: {e!r})")
        return
    for name, route in pages:
        print(f"  {name}: {base}{route}")
