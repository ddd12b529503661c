"""The endpoint on a real multi-node Ray cluster on this machine (``ray start --head`` + ``ray start --address``,
see ``ray_nodes.py``): ``sweettok serve --address`` runs it with 2 model and 2 ingress replicas, Serve spreads
them so that the non-head node holds a model replica, and that node is SIGKILLed (its raylet and every process
of it, by PID) under load from HTTP clients. The endpoint keeps answering real requests through the head's
proxy, and the model deployment is back at 2 running replicas, both on the survivor.

``proxy_location: HeadOnly``: nodes that share one machine would each start a proxy on the same port (with
Serve's default, EveryNode, a run here lost one request: its connection had gone to the killed node's proxy).
On separate machines a load balancer in front of every node's proxy does that job.

The cluster is the session's ``local_cluster`` (conftest.py), shared with ``test_multinode.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from http_load import Load, model_replicas, npy_clip
from ray_nodes import LocalCluster, free_port, ray_cli

pytestmark = pytest.mark.timeout(600)
TARGET = 2  # model replicas (min = max: a fixed count the controller restores)


@pytest.fixture(scope="module")
def clip(real_video: Path) -> bytes:
    return npy_clip(str(real_video))  # one real 5x32x32 clip


def _serve_actors(cluster: LocalCluster) -> list[dict]:
    """Alive Serve replica actors: [{"deployment": "TokenizerModel"|"Ingress", "node_id": ...}]."""
    out = ray_cli("list", "actors", "--format=json", "--limit=1000", "--filter", "state=ALIVE",
                  "--address", cluster.address, env=cluster.env())
    assert out.returncode == 0, out.stdout + out.stderr
    return [{"deployment": a["class_name"].rsplit(":", 1)[-1], "node_id": a["node_id"]}
            for a in json.loads(out.stdout) if a["class_name"].startswith("ServeReplica:multinode:")]


def _head_node_id(cluster: LocalCluster) -> str:
    out = ray_cli("list", "nodes", "--format=json", "--address", cluster.address, env=cluster.env())
    assert out.returncode == 0, out.stdout + out.stderr
    return next(n["node_id"] for n in json.loads(out.stdout) if n.get("is_head_node") and n["state"] == "ALIVE")


def test_a_model_replica_on_a_killed_node_is_replaced_on_the_survivor(local_cluster, clip):
    cluster = local_cluster
    worker = cluster.add_node(cpus=2)
    head_id = _head_node_id(cluster)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {"min_replicas": TARGET, "max_replicas": TARGET, "ingress_replicas": 2, "ingress_max_replicas": 2,
                "num_cpus": 1, "ingress_cpus": 0.5, "batching": False, "access_log": False,
                "graceful_shutdown_timeout_s": 5, "name": "multinode"}
    # a user's driver: `sweettok serve --address` keeps the app while it runs and deletes it on SIGTERM
    args = ["serve", "--address", cluster.address, "--preset", "tiny", "--port", str(port),
            "--set", "proxy_location=HeadOnly"]  # nodes on one machine would each bind this port
    args += [x for k, v in settings.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    proc = subprocess.Popen([sys.executable, "-m", "sweettok_platform.cli", *args], env=cluster.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("ready in" in x for x in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-4000:]
            time.sleep(0.5)
        while model_replicas(url) != TARGET:  # both replicas running, not just the first one healthy
            assert time.monotonic() < deadline, "".join(lines)[-4000:]
            time.sleep(0.5)
        before = _serve_actors(cluster)
        on_worker = [a for a in before if a["node_id"] != head_id]
        # Serve spreads replicas over nodes: the non-head node holds a model replica
        assert any(a["deployment"] == "TokenizerModel" for a in on_worker), before

        with Load(url, clip, clients=3, timeout_s=120, pause_s=0.05) as load:
            time.sleep(3)
            killed_at = time.monotonic()
            worker.stop(kill=True)  # the node is lost: its raylet and every process of it, SIGKILL
            back = None
            while back is None:
                assert time.monotonic() - killed_at < 240, ("no replacement", _serve_actors(cluster))
                actors = _serve_actors(cluster)
                models = [a for a in actors if a["deployment"] == "TokenizerModel"]
                if (len(models) == TARGET and all(a["node_id"] == head_id for a in actors)
                        and model_replicas(url) == TARGET):
                    back = time.monotonic() - killed_at
                time.sleep(1.0)
            time.sleep(3)  # answers after the replacement too
        after = _serve_actors(cluster)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.join(10)

    answered_before = [a for a in load.answers if a.began < killed_at and a.status == 200]
    answered_after = [a for a in load.answers if a.began > killed_at + back and a.status == 200]
    during = [a for a in load.answers if killed_at <= a.began <= killed_at + back]
    failed = load.failures()
    placed = sorted(f"{a['deployment']}@{'head' if a['node_id'] == head_id else 'worker'}" for a in before)
    summary = (f"before: {', '.join(placed)}; "
               f"replaced {back:.1f} s after the kill; {len(load.answers)} requests, {len(failed)} failed; "
               f"during the replacement {sum(a.status == 200 for a in during)} of {len(during)} answered")
    print(summary)
    assert answered_before and answered_after, summary
    assert during and all(a.status == 200 for a in during), (summary, failed[:5])  # it kept answering throughout
    assert not failed, (summary, failed[:5])
    assert sum(a["deployment"] == "TokenizerModel" for a in after) == TARGET
    assert all(a["node_id"] == head_id for a in after), after
