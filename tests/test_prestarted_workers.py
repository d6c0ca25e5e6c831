"""Trial actors start in the idle workers a local Ray pre-started (a real local Ray and Tune)."""
import contextlib
import os
import time

import psutil
import pytest
import ray
from ray import tune
from ray.util.placement_group import placement_group, remove_placement_group

from search.driver.prestarted_workers import use_prestarted_workers

pytestmark = pytest.mark.e2e  # a real local Ray


def _idle_worker_pids() -> set[int]:
    """The idle workers of the Ray this process started (other tests' may run beside it)."""
    pids = set()
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.cmdline() and proc.cmdline()[0].startswith("ray::IDLE"):
                pids.add(proc.pid)
    return pids


def test_trial_actors_start_in_the_workers_ray_prestarted(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # Tune would pass them on, and Ray start fresh processes
    monkeypatch.delenv("RAY_idle_worker_killing_time_threshold_ms", raising=False)
    use_prestarted_workers()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        deadline = time.monotonic() + 60
        while len(idle := _idle_worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(idle) >= 2, f"Ray pre-started {len(idle)} idle workers, expected one per CPU"
        # Every CPU reserved for a while, as Tune does before it asks for the actors: Ray's
        # default kills idle workers above the free CPUs after one second.
        held = placement_group([{"CPU": 1}, {"CPU": 1}])
        ray.get(held.ready())
        time.sleep(2)
        remove_placement_group(held)

        def report_pid(config):  # defined here: pickled by value, the workers cannot import this module
            tune.report({"pid": os.getpid()})

        tuner = tune.Tuner(tune.with_resources(report_pid, {"cpu": 1}), tune_config=tune.TuneConfig(num_samples=2),
                           run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
        pids = {result.metrics["pid"] for result in tuner.fit()}
    finally:
        ray.shutdown()
    assert len(pids) == 2 and pids <= idle, f"trial actors ran in {pids}, the pre-started workers were {idle}"
