import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = yaml.safe_load((Path(__file__).resolve().parents[1] / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_validator():
    validate_config(prepare_config(copy.deepcopy(CLUSTER)))


def test_validator_would_catch_a_broken_copy():
    broken = copy.deepcopy(CLUSTER)
    broken["available_node_types"]["gpu_worker"]["min_workers"] = 9  # > max_workers
    with pytest.raises(ValueError):
        validate_config(prepare_config(broken))
    broken = copy.deepcopy(CLUSTER)
    broken["head_node_tpye"] = broken.pop("head_node_type")  # misspelt key: the schema refuses it
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_cluster_installs_like_the_readme_and_keeps_ports_private():
    text = yaml.safe_dump(CLUSTER)
    assert any("make install" in c for c in CLUSTER["setup_commands"])
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in CLUSTER[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts)
    mlflow_cmd = next(c for c in CLUSTER["head_start_ray_commands"] if "mlflow server" in c)
    assert "--host 127.0.0.1" in mlflow_cmd
    assert "0.0.0.0" not in text
    assert CLUSTER["available_node_types"]["head"]["resources"] == {"CPU": 0}  # trials go to GPU workers


def test_the_cluster_tutorials_token_command_makes_a_private_file(tmp_path):
    """The shared Ray token must not be readable by other users (mode 0600), here and on nodes."""
    import os
    import stat
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "cluster.md").read_text()
    line = next(raw for raw in readme.splitlines() if "> ~/.robustprune_ray_token" in raw).split("#")[0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", line], env=env, check=True)
    token = tmp_path / ".robustprune_ray_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text().strip()) == 64
    assert "chmod 600 ~/.robustprune_ray_token" in CLUSTER["setup_commands"]
