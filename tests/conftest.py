import os
import shutil

import pytest
import torch

# Two cores, shared by the pytest workers (make test runs two), the commands they start and
# the Ray workers beside them: one torch thread each when several run at once (OpenMP threads
# spinning against each other made a CLI trial five times slower), inherited by subprocesses.
_THREADS = max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
torch.set_num_threads(_THREADS)
# A plain ray.init() joins a `ray start`-style head running on the machine (the 2-node test's,
# or a developer's own): every search a test starts without an address gets a Ray of its own.
os.environ["RAY_ADDRESS"] = "local"
# No test reaches the network: a Hugging Face hub name (the hf source's fallback when data_dir
# is not a folder) fails at once instead of waiting on DNS or retries.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def digits_baseline():
    """A LeNet really trained on the embedded digits data (~1 s), with its config."""
    from trainables.config import TrialConfig
    from trainables.trial import train_baseline

    cfg = TrialConfig(dataset="digits", model="lenet", baseline={"epochs": 15, "lr": 0.05},
                      finetune={"epochs": 1, "lr": 0.01}, eval_size=180, latency={"repeats": 3},
                      attacks=[{"name": "fgsm", "eps": 0.1}, {"name": "pgd", "eps": 0.1, "steps": 5}])
    return cfg, train_baseline(cfg)


@pytest.fixture(scope="session")
def synthetic_resnet20():
    """A ResNet-20 briefly trained on synthetic 32x32x3 data, for pruning-structure tests."""
    from trainables.config import TrialConfig
    from trainables.trial import train_baseline

    cfg = TrialConfig(dataset="synthetic", model="resnet20", baseline={"epochs": 0}, calib_size=32,
                      finetune={"epochs": 0}, eval_size=32, latency={"repeats": 2}, iterations=2, ratio=0.5,
                      attacks=[{"name": "fgsm"}])
    return cfg, train_baseline(cfg)


@pytest.fixture
def shared_baselines(tmp_path, tmp_path_factory):
    """For drills whose subject is not the baseline (kills, interrupts): the baselines earlier
    searches of this session trained (every pytest worker's) go into this test's storage path
    first, where the search's own cache (`runs/baselines`, search/driver/baseline.py) finds them; a
    baseline this test's searches train is shared once it ends. Each is published whole, by
    a rename, so no test reads one half-copied."""
    shared = tmp_path_factory.getbasetemp().parent / "shared-baselines"
    shared.mkdir(exist_ok=True)
    cache = tmp_path / "runs" / "baselines"
    cache.mkdir(parents=True)
    for entry in shared.iterdir():
        if not entry.name.startswith("."):
            shutil.copytree(entry, cache / entry.name)
    yield
    for entry in cache.iterdir():
        if (entry / "metrics.json").exists() and not (shared / entry.name).exists():
            staging = shared / f".{entry.name}.{os.getpid()}"
            shutil.copytree(entry, staging)
            try:
                staging.rename(shared / entry.name)
            except OSError:  # another worker published it first
                shutil.rmtree(staging)
