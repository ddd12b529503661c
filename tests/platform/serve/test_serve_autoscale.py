"""The endpoint under changing load, on a real local Ray cluster with CPU replicas and real HTTP requests:
autoscaling up and back down, a rollout of a new bundle, and a killed model replica, none dropping a request.

Stated times (generous for a shared 2-core machine): a second model replica within 60 s of a burst, back
to one within 60 s of the load stopping, a killed replica's service answering again within 60 s.
"""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from pathlib import Path

import pytest
import requests
import torch

from sweettok import SweetTokenizer, preset, save_bundle

from http_load import Load, model_replicas, npy_clip

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, str]:
    """Two tiny bundles with different weights: {"a": uri, "b": uri, hash_a, hash_b}."""
    out = {}
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        uri = str(tmp_path_factory.mktemp(f"bundle-{name}"))
        out[name], out[f"hash_{name}"] = uri, save_bundle(SweetTokenizer(preset("tiny")), uri)
    return out


@pytest.fixture(scope="module")
def clip(real_video: Path) -> bytes:
    return npy_clip(str(real_video))  # one real 5x32x32 clip


@pytest.fixture(scope="module")
def app(ray_cluster, bundles):
    """Bundle a, 1-3 model replicas scaling on one ongoing request per replica with short delays, one ingress
    replica (the newest-revision guard lives in each ingress replica)."""
    from ray import serve

    from sweettok_platform.serve import ServeConfig, start

    config = ServeConfig(bundle=bundles["a"], port=_free_port(), name="autoscale", batching=False,
                         min_replicas=1, max_replicas=3, ingress_max_replicas=1, target_ongoing_requests=1,
                         upscale_delay_s=1,
                         downscale_delay_s=3, look_back_period_s=2, metrics_interval_s=0.5, num_cpus=1,
                         ingress_cpus=0.5, graceful_shutdown_timeout_s=10, access_log=False)
    url = start(config)
    yield config, url
    serve.shutdown()


def wait_for(condition, timeout_s: float) -> float:
    """Seconds until ``condition()`` held (polled every 0.5 s); fails the test after ``timeout_s``."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, f"not within {timeout_s} s"
        time.sleep(0.5)
    return time.monotonic() - began


def test_a_burst_adds_model_replicas_and_they_go_when_it_ends(app, clip):
    config, url = app
    assert model_replicas(url) == 1
    with Load(url, clip, clients=8) as load:
        scaled_in = wait_for(lambda: model_replicas(url) >= 2, 60)
    down_in = wait_for(lambda: model_replicas(url) == 1, 60)
    assert load.failures() == [] and len(load.answers) > 8
    print(f"scaled up in {scaled_in:.1f} s under 8 clients, back to 1 replica in {down_in:.1f} s")


def test_a_rollout_under_load_drops_nothing_and_never_goes_back(app, bundles, clip):
    import dataclasses

    from sweettok_platform.serve.lifecycle import rollout

    config, url = app
    with Load(url, clip, clients=3) as load:
        time.sleep(2)
        rollout(dataclasses.replace(config, bundle=bundles["b"]), timeout_s=120)
        time.sleep(2)
    assert load.failures() == []
    seen = defaultdict(list)
    for a in sorted(load.answers, key=lambda a: a.began):
        seen[a.client].append(a.tokenizer)
    for answers in seen.values():  # each client: the old bundle, then the new one, never back
        switch = answers.index(bundles["hash_b"]) if bundles["hash_b"] in answers else len(answers)
        assert set(answers[:switch]) <= {bundles["hash_a"]} and set(answers[switch:]) <= {bundles["hash_b"]}
    assert {a.tokenizer for a in load.answers} == {bundles["hash_a"], bundles["hash_b"]}
    assert requests.get(f"{url}/v1/info", timeout=30).json()["tokenizer"] == bundles["hash_b"]


def test_a_killed_model_replica_costs_no_hang_and_the_service_comes_back(app, clip):
    import ray

    config, url = app
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if "TokenizerModel" in a["name"] and config.name in a["name"]]
    assert names, "no model replica actor found"
    with Load(url, clip, clients=3) as load:
        time.sleep(1)
        ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
        killed = time.monotonic()
        back_in = wait_for(lambda: any(a.status == 200 and a.began > killed for a in load.answers), 60)
    for answer in load.failures():  # retried inside, else a 503 that says why; never a hang or a 500
        assert answer.status == 503 and "model replica lost" in answer.detail, answer
    print(f"answering again {back_in:.1f} s after the kill; {len(load.failures())} requests got a 503")
