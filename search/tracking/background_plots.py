"""Drawing the parent run's plots on one background thread.

Matplotlib takes about a second per redraw of the live views here. Drawn on Tune's event
loop, that second is a worker left idle with no next trial, and at the search's end it
delays the final evaluation. Plots only show what MLflow already holds, so nothing is lost
if they lag; the parent run waits for them before it is marked ended.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable


class BackgroundPlots:
    """One drawing thread; a redraw still waiting is superseded by a newer one (it would
    draw older data), so redraws never pile up behind a slow one."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robustprune-plots")
        self._last: Future | None = None

    def submit(self, draw: Callable[[], None]) -> None:
        if self._last is not None:
            self._last.cancel()  # a no-op once it has started
        self._last = self._pool.submit(self._draw, draw)

    @staticmethod
    def _draw(draw: Callable[[], None]) -> None:
        try:
            draw()
        except Exception as e:  # the plots are views of logged results: a warning, not an error
            print(f"[robustprune] WARNING: the parent run's plots were not updated ({e!r})", flush=True)

    def wait(self) -> None:
        """Block until every submitted drawing is done (they run in order: the last ends last)."""
        if self._last is not None:
            self._last.result()
            self._last = None
