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
