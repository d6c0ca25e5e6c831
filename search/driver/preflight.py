"""Checks that run before Ray, the baseline or any MLflow run: a search that cannot record
its results, or whose trials can never be scheduled, fails in one line (exit 2) instead of
after minutes of compute, a traceback or a silent hang."""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from trainables.errors import first_line

from ..config import OPTUNA_IN_MEMORY, ConfigError, SearchConfig
from ..tracking.storage import check_reachable, is_local

HTTP_TIMEOUT_S = 5
TRACKING_SCHEMES = {"sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks"}
SQLITE_HEADER = b"SQLite format 3\x00"


def _writable_folder(folder: Path, field: str) -> None:
    """The folder can be created and accepts a file (probed for real: permission bits say
    little to root or on network mounts); folders the probe created are removed again."""
    created = []
    parent = folder.absolute()
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".robustprune-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{field}: cannot write to {folder} ({e.strerror or e})") from None
    finally:
        for path in created:  # deepest first
            if path.is_dir():
                path.rmdir()


def _check_sqlite(uri: str) -> None:
    path = Path(uri[len("sqlite:///"):])  # sqlite:///relative.db or sqlite:////absolute.db
    field = "experiment.tracking_uri"
    if path.is_dir():
        raise ConfigError(f"{field}: {path} is a folder; name the SQLite file, e.g. sqlite:///mlflow.db")
    if path.exists():
        with path.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            raise ConfigError(f"{field}: {path} is not an SQLite database (corrupt, or another kind of file)")
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{field}: {path} is read-only")
    _writable_folder(path.parent, field)


def _check_http(uri: str) -> None:
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=HTTP_TIMEOUT_S) as response:
            if response.status != 200:
                raise OSError(f"HTTP {response.status}")
    except (OSError, urllib.error.URLError) as e:
        reason = getattr(e, "reason", e)
        raise ConfigError(f"experiment.tracking_uri: no MLflow server answers at {uri} within "
                          f"{HTTP_TIMEOUT_S} s ({reason}); start it or fix the URI") from None


def check_tracking_uri(uri: str) -> None:
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(f"experiment.tracking_uri: unsupported scheme '{scheme}' in {uri}; allowed: "
                          f"{', '.join(sorted(TRACKING_SCHEMES))}")
    if scheme == "sqlite":
        _check_sqlite(uri)
    elif scheme in ("http", "https"):
        _check_http(uri)
    elif scheme == "file":
        _writable_folder(Path(urllib.parse.urlparse(uri).path), "experiment.tracking_uri")


OPTUNA_SCHEMES = {"sqlite", "postgresql", "mysql", "oracle", "mssql"}  # SQLAlchemy URLs (+driver allowed)


def check_optuna_storage(url: str) -> None:
    field = "search.optuna_storage"
    scheme = urllib.parse.urlparse(url).scheme.split("+")[0]
    if scheme not in OPTUNA_SCHEMES:
        raise ConfigError(f"{field}: unsupported scheme '{scheme}' in {url}; allowed: '{OPTUNA_IN_MEMORY}', or an "
                          f"SQLAlchemy URL with {', '.join(sorted(OPTUNA_SCHEMES))}, e.g. sqlite:///optuna.db")
    if scheme == "sqlite":
        _writable_folder(Path(url.removeprefix("sqlite:///")).parent, field)


def check_storage_path(storage_path: str) -> None:
    """Local folders are probed with a write; a cloud URI's bucket must answer in bounded time."""
    if is_local(storage_path):
        _writable_folder(Path(storage_path.removeprefix("file://")), "experiment.storage_path")
        return
    try:
        check_reachable(storage_path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"experiment.storage_path: cannot reach {storage_path} "
                          f"({first_line(e)})") from None


def check_local_resources(cfg: SearchConfig, cpus: int, gpus: int) -> None:
    """A local Ray instance has this machine's resources: a trial asking for more never starts."""
    need = cfg.resources
    if need.gpus_per_trial > gpus:
        raise ConfigError(f"resources.gpus_per_trial: {need.gpus_per_trial} requested but this machine has "
                          f"{gpus} GPU(s); allowed here: <= {gpus} (or pass --address of a cluster with GPUs)")
    if need.cpus_per_trial > cpus:
        raise ConfigError(f"resources.cpus_per_trial: {need.cpus_per_trial} requested but this machine has "
                          f"{cpus} CPU(s); allowed here: <= {cpus}")


def wait_for_cluster_resources(cfg: SearchConfig, cluster_resources, log=print, poll_s: float = 5.0) -> None:
    """On a cluster (maybe autoscaling), wait up to resources.wait_timeout_s for one trial's
    CPUs/GPUs to exist; `cluster_resources()` returns Ray's totals, asked every `poll_s`."""
    need = {"CPU": cfg.resources.cpus_per_trial, "GPU": cfg.resources.gpus_per_trial}

    def missing() -> dict:
        have = cluster_resources()
        return {k: v for k, v in need.items() if v > 0 and have.get(k, 0) < v}

    deadline = time.monotonic() + cfg.resources.wait_timeout_s
    if missing():
        log(f"[robustprune] waiting up to {cfg.resources.wait_timeout_s:.0f} s for the cluster to offer "
            f"{need['CPU']:g} CPU and {need['GPU']:g} GPU per trial (autoscaling?)")
    while missing():
        if time.monotonic() >= deadline:
            short = ", ".join(f"{v:g} {k}" for k, v in missing().items())
            raise ConfigError(f"resources: the cluster never offered {short} per trial within "
                              f"resources.wait_timeout_s={cfg.resources.wait_timeout_s:g}; lower "
                              f"resources.cpus_per_trial/gpus_per_trial or add nodes")
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def starts_local_ray(address: str | None) -> bool:
    """Whether `ray.init(address)` starts a Ray of its own on this machine: no address given
    (nor $RAY_ADDRESS), or Ray's "local"."""
    return (address or os.environ.get("RAY_ADDRESS") or "local") == "local"


# A trial config's field -> the search config's, for the messages of check_model_fits_data.
SEARCH_FIELDS = {"model": "model.name", "image_size": "data.image_size", "data_dir": "data.data_dir"}


def unprunable_by_name(name: str, weights: str | None) -> dict[str, str] | None:
    """What `unprunable_granularities` finds for a built-in network without the user's
    weights, known by its name; None for a network that must be built to tell."""
    from trainables.models import BUILTIN_WITH_REMOVABLE_BLOCKS, is_builtin

    if not is_builtin(name) or weights is not None:
        return None
    return {} if name in BUILTIN_WITH_REMOVABLE_BLOCKS else {"layer": f"{name} has no removable (residual) blocks"}


def unprunable_granularities(cfg: SearchConfig) -> dict[str, str]:
    """Each granularity the network cannot be pruned at, with why. A built-in network without
    the user's weights is judged by name; any other is built once, here: weights that do not
    fit, a factory that raises, or classes or an image size the network does not take are
    ConfigError (one line, before Ray starts)."""
    by_name = unprunable_by_name(cfg.model.name, cfg.model.weights)
    if by_name is not None:
        return by_name
    import torch

    from trainables.prune import CRITERIA, check_prunable
    from trainables.trial import initial_model, load_data

    trial = cfg.fixed_trial_config()
    data = load_data(trial)
    try:
        model, _ = initial_model(trial, data)
    except ValueError as e:
        field, _, rest = str(e).partition(": ")
        raise ConfigError(f"{SEARCH_FIELDS.get(field, field)}: {rest}") from None
    problems = {}
    for granularity in CRITERIA:  # every granularity, so an error can say which ones would work
        try:
            check_prunable(model, [granularity], torch.zeros(1, *data.shape))
        except ValueError as e:
            problems[granularity] = str(e).partition(": ")[2]
    return problems


def check_model_fits_data(cfg: SearchConfig) -> None:
    """The network builds on the data, and prunes at every granularity searched (see
    `unprunable_granularities`), or ConfigError."""
    from trainables.prune import CRITERIA

    problems = unprunable_granularities(cfg)
    asked = [g for g in cfg.space.granularities if g in problems]
    if asked:
        workable = [g for g in CRITERIA if g not in problems]
        raise ConfigError(f"space.granularities: {cfg.model.name}: {problems[asked[0]]}; "
                          f"allowed: [{', '.join(workable)}]")


def preflight(cfg: SearchConfig, address: str | None, tracking_uri: str | None = None) -> None:
    """Everything that can be checked before Ray starts (ConfigError, one line); `tracking_uri`
    overrides the config's (a resumed search keeps the store it started with)."""
    check_tracking_uri(tracking_uri or cfg.experiment.resolved_tracking_uri())
    check_storage_path(cfg.experiment.resolved_storage_path())
    check_model_fits_data(cfg)
    if cfg.search.optuna_storage and cfg.resolved_optuna_storage():  # the default lies in folders checked above
        check_optuna_storage(cfg.search.optuna_storage)
    if starts_local_ray(address):
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        check_local_resources(cfg, os.cpu_count() or 1, gpus)
