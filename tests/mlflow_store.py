"""Real, empty sqlite MLflow stores without paying for MLflow's schema migrations (about a
second per new store) in every test: the first store a test process asks for is created by
MLflow itself; each later one is a copy of that empty, migrated file. What a test then does
with its store is the same as with a store MLflow just created."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

_template: Path | None = None


def _migrated_template() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="robustprune-mlflow-template-"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()  # creates the schema
        _template = folder / "mlflow.db"
    return _template


def store_at(path: Path) -> str:
    """The sqlite MLflow store at `path` as a tracking URI; an empty, migrated one is put
    there first when there is none (a second config naming the same file keeps its runs)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_template(), path)
    return f"sqlite:///{path}"
