"""Let Tune's trial actors start in the worker processes a local Ray has already started.

A local Ray starts one idle Python worker per CPU with the driver, so that the first tasks
and actors skip a process start (Python, `import ray`, the core worker: ~1.5 s a slot on 2
cores). Two things kept Tune's trial actors from them, so each slot waited for a fresh
process while the pre-started ones sat idle or were killed:

* Ray hands them only to work whose runtime environment is empty, and Tune gives every
  trial actor `{"env_vars": {"PL_DISABLE_FORK": "1"}}`, a default for PyTorch Lightning
  (ray-project/ray#28197) that we do not use. We drop that one default. (Tune still
  passes the variables it propagates, AWS credentials and Ray Train's, when the driver has
  them; trial actors then start fresh processes, as before.)
* Ray kills a worker idle for more than a second while there are more idle workers than
  free CPUs, and Tune reserves the CPUs (placement groups) just before it asks for the
  actors. Whether the workers outlived that gap was a race, lost in 3 of 5 quickstart runs.
  A local Ray started by this driver keeps idle workers for IDLE_WORKER_KEEP_MS instead
  (`RAY_idle_worker_killing_time_threshold_ms`; a value the user set is kept).
"""
from __future__ import annotations

import os

from ray.tune.execution import class_cache

IDLE_WORKER_KEEP_MS = 60_000


def use_prestarted_workers() -> None:
    """Call before `ray.init` starts a local Ray."""
    class_cache.DEFAULT_ENV_VARS.pop("PL_DISABLE_FORK", None)
    os.environ.setdefault("RAY_idle_worker_killing_time_threshold_ms", str(IDLE_WORKER_KEEP_MS))
