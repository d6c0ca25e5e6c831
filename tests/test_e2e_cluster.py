"""Distributed: a search on a simulated 2-node Ray cluster, logging to a real `mlflow server`."""
import os
import signal
import subprocess
import sys

import pytest
import ray
from mlflow.tracking import MlflowClient

from e2e_helpers import free_port, search_runs, tiny_config, wait_for_http
from search.config import load_config
from search.driver.runner import run_search

pytestmark = pytest.mark.e2e


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` starting in the background: (its process, its URI). The test
    waits for it once its Ray cluster is up, so the two start-ups overlap."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        # one server process, without MLflow's GenAI job runner (seven more interpreters, unused by a search)
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: the group we started
        proc.wait(timeout=30)


def test_search_spreads_over_two_nodes_and_logs_to_mlflow_server(tmp_path, mlflow_server):
    from ray.cluster_utils import Cluster

    server, uri = mlflow_server
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        wait_for_http(f"{uri}/health", server, 90)
        cfg = load_config(tiny_config(tmp_path, "cluster", 4, experiment={"tracking_uri": uri}))
        outcome = run_search(cfg, address=cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert outcome.complete and outcome.finished == 4
    parent, children = search_runs(uri, "cluster")
    assert parent.info.status == "FINISHED" and len(children) == 4
    used = {c.data.tags["ray_node_id"] for c in children}
    assert used == {w.node_id for w in workers}  # both worker nodes ran trials; the 0-CPU head none
    client = MlflowClient(uri)
    assert {"model.pt", "metrics.json"} <= {a.path for a in client.list_artifacts(children[0].info.run_id)}
