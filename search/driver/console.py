"""What a search or a study prints. By default: its own lines (the baseline, one line per
trial, the final evaluation, the front, the links) and, on a terminal, a live progress bar;
the logs of Ray, Tune, MLflow and Optuna go to a log file in the experiment folder instead
(their warnings still show, but for the known noise below). `--verbose` prints everything
as the libraries do, with Tune's status tables.

Only the driver process is concerned: the trials' workers print nothing to it
(`ray.init(log_to_driver=False)`); their output is in Ray's session logs."""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

LIBRARY_LOGGERS = ("ray", "mlflow", "optuna", "alembic")
LOG_FILE = "robustprune.log"
TUNE_REPORTER = "RAY_AIR_NEW_OUTPUT"
# Warnings that say nothing to a robustprune user: kept in the log file, not shown.
KNOWN_NOISE = ("Token authentication is enabled for this Ray cluster",)


class _NotNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in KNOWN_NOISE)


def log_file_of(experiment_path: str, name: str) -> Path:
    """The log file: in the experiment folder, or, for a folder at a cloud URI, in the
    working directory under the search's name."""
    if "://" in experiment_path:
        return Path.cwd() / f"{name}.{LOG_FILE}"
    return Path(experiment_path) / LOG_FILE


def tune_verbosity(verbose: bool) -> int:
    """Tune's own output: its status tables and per-trial boxes (1), or errors only (0)."""
    return 1 if verbose else 0


class _FileMadeOnFirstRecord(logging.FileHandler):
    """A log file (and its folder) made when the first record comes: a command that stops
    before any library logs (bad input found late) leaves no folder behind."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


@contextmanager
def libraries_logged_to(path: Path, verbose: bool):
    """The libraries' logs into `path` (INFO and up), their warnings and errors still on the
    console; as they were, with `verbose`. Tune's newer reporter prints its configuration box
    and a TensorBoard hint whatever its verbosity: without `verbose`, Tune is asked for its
    older one (`RAY_AIR_NEW_OUTPUT=0`), which at verbosity 0 prints nothing. The loggers and
    the variable are put back on the way out."""
    if verbose:
        yield
        return
    reporter = os.environ.get(TUNE_REPORTER)
    os.environ[TUNE_REPORTER] = "0"
    to_file = _FileMadeOnFirstRecord(path, encoding="utf-8", delay=True)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setLevel(logging.WARNING)
    to_console.addFilter(_NotNoise())
    to_console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.level, logger.propagate))
        logger.handlers, logger.propagate = [to_file, to_console], False
        logger.setLevel(logging.INFO)
    print(f"[robustprune] the logs of Ray, Tune, MLflow and Optuna: {path} (--verbose shows them here)", flush=True)
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        to_file.close()
        if reporter is None:
            os.environ.pop(TUNE_REPORTER, None)
        else:
            os.environ[TUNE_REPORTER] = reporter


class _AboveTheBar:
    """stdout while the bar shows: each line printed is written above the bar."""

    def __init__(self, bar, stream):
        self.bar, self.stream, self.pending = bar, stream, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.bar.write(line, file=self.stream)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


class Progress:
    """The live bar: trials ended out of the total, the front's size, the hypervolume, ETA."""

    def __init__(self, bar):
        self.bar = bar

    def trial_ended(self, front_size: int | None = None, hypervolume: float | None = None) -> None:
        if front_size is not None:
            self.bar.set_postfix_str(f"front {front_size} | hypervolume {hypervolume:.4f}", refresh=False)
        self.bar.update(1)


_progress: Progress | None = None


def trial_ended(front_size: int | None = None, hypervolume: float | None = None) -> None:
    """Move the bar of the search running in this process on by one trial (none: nothing)."""
    if _progress is not None:
        _progress.trial_ended(front_size, hypervolume)


@contextmanager
def progress_bar(total: int, done: int, unit: str, verbose: bool):
    """A bar on stderr while the search runs, when stderr is a terminal and not `verbose`;
    otherwise the trial lines are the progress (`trial 5/16 ...`)."""
    global _progress
    if verbose or not sys.stderr.isatty():
        yield
        return
    from tqdm import tqdm

    stdout = sys.stdout
    bar = tqdm(total=total, initial=done, unit=unit, file=sys.stderr, dynamic_ncols=True, desc=f"{unit}s",
               bar_format="{desc} |{bar}| {n_fmt}/{total_fmt}{postfix} [{elapsed}<{remaining}]")
    above = _AboveTheBar(bar, stdout)
    _progress, sys.stdout = Progress(bar), above
    try:
        yield
    finally:
        if above.pending:  # a last line without its newline
            bar.write(above.pending, file=stdout)
        _progress, sys.stdout = None, stdout
        bar.close()
