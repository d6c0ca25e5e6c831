"""A fresh Ray worker imports what its work needs and nothing more: the driver's modules
cost seconds of imports on every cold worker."""
import subprocess
import sys

import pytest

DRIVER_ONLY = ["mlflow", "optuna", "matplotlib"]


@pytest.mark.parametrize("module, not_imported", [
    ("search.driver.trial_worker", DRIVER_ONLY),
    ("search.driver.final_eval_task", DRIVER_ONLY + ["ray.tune", "pandas"]),
])
def test_a_worker_module_leaves_the_drivers_modules_out(module, not_imported):
    probe = (f"import sys, ray, {module}; "
             f"print(' '.join(m for m in {not_imported!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"importing {module} also imports {out.stdout.strip()}"
