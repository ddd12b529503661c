"""Settings of the encode/decode endpoint: which tokenizer, how to batch and scale, which limits.

``ServeConfig`` is what ``sweettok serve`` builds from flags/YAML, what ``start`` takes, and what the
``args:`` block of a ``serve deploy`` config holds (``build_app(args)`` turns it back into a ServeConfig).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sweettok.config import PRESETS
from sweettok.typed import build
from sweettok_platform.serve.limits import LimitsConfig
from sweettok_platform.serve.uris import normalise_prefix

APP_IMPORT_PATH = "sweettok_platform.serve.app:build_app"
# Ray Serve reads its direct-ingress switch from the environment of its processes (controller, proxies,
# replicas), so it belongs where the Ray cluster starts. The draining period is how long a stopping ingress
# replica keeps answering so load balancers can take it out first.
DIRECT_INGRESS_ENV = {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"}
LOCAL_DRAINING_ENV = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}  # no load balancer locally


@dataclass(kw_only=True)
class ServeConfig:
    """One endpoint: the model, batching, autoscaling, resources, limits and authentication."""

    bundle: str | None = None  # tokenizer bundle (local or s3://); else ``preset`` with ``seed``
    preset: str = "tiny"
    seed: int = 0
    # batching of concurrent requests of one kind (image/video, encode/decode) into one model call
    batching: bool = True
    max_batch_size: int = 16  # clips per model call
    batch_wait_timeout_s: float = 0.005
    max_ongoing_requests: int = 32  # per model replica; >= max_batch_size
    # autoscaling of the model deployment (Ray Serve: replicas added when the ongoing requests per replica,
    # averaged over look_back_period_s, stay above target_ongoing_requests for upscale_delay_s; removed after
    # downscale_delay_s below it). Defaults suit this 2-core machine (one replica); the GPU cluster's
    # cluster/serve-config.yaml sets 1-8 replicas.
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 16.0
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 60.0
    look_back_period_s: float = 10.0
    metrics_interval_s: float = 2.0
    # the ingress: min ingress_replicas, at most ingress_max_replicas (None: max_replicas), scaling on twice the
    # model's target (an ingress request is cheap next to a model call)
    ingress_replicas: int = 1
    ingress_max_replicas: int | None = None
    # rollouts (a redeploy with a new bundle): new model replicas start before old ones stop
    # (max_surge_percent), stopping replicas get no new requests and finish what they hold for up to
    # graceful_shutdown_timeout_s (checking every graceful_shutdown_wait_loop_s)
    max_surge_percent: int = 100
    graceful_shutdown_wait_loop_s: float = 1.0
    graceful_shutdown_timeout_s: float = 30.0
    revision: float = 0.0  # set by each deploy (time.time()): responses of an older one are never sent after a newer
    # resources per model replica; GPUs are used when num_gpus > 0 and CUDA is present
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    torch_threads: int = 1
    ingress_cpus: float = 0.5
    decode_workers: int = 1  # sandboxed media-decoding processes per ingress replica
    # Ray Serve direct ingress: each ingress replica also answers HTTP on a port of its own (30000+; see
    # ``ingress_urls``), so clients or a load balancer pointed there skip the proxy's extra hops. The proxy
    # URL keeps working. Takes effect on a Ray cluster started with DIRECT_INGRESS_ENV (``start`` and
    # ``sweettok serve`` set it on the local cluster they start).
    direct_ingress: bool = False
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    # {"uri": "s3://..."} inputs: only objects under these (s3://bucket or s3://bucket/folder); empty = off
    allowed_uri_prefixes: list[str] = field(default_factory=list)
    # authentication: a literal key (tests, demos) or the name of an environment variable holding it
    api_key: str | None = None
    api_key_env: str | None = None
    access_log: bool = True  # one log line per request in each replica (costs CPU under load)
    # environment of the replicas (e.g. AWS_ENDPOINT_URL for an S3-compatible store)
    env: dict[str, str] = field(default_factory=dict)
    # HTTP
    name: str = "sweettok"
    host: str = "127.0.0.1"
    port: int = 8000
    route_prefix: str = "/"
    # where Serve runs HTTP proxies: "EveryNode" (each node with a replica; Serve's default) or "HeadOnly" (one
    # proxy on the head: needed when several nodes share one machine, as they would all bind the same port)
    proxy_location: str = "EveryNode"

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_batch_size > self.max_ongoing_requests:
            raise ValueError(
                f"max_batch_size ({self.max_batch_size}) must not exceed max_ongoing_requests "
                f"({self.max_ongoing_requests}), or batches can never fill"
            )
        if not 0 <= self.max_surge_percent <= 100:
            raise ValueError(f"max_surge_percent must be in [0, 100], got {self.max_surge_percent}")
        if self.upscale_delay_s < 0 or self.downscale_delay_s < 0 or self.look_back_period_s <= 0:
            raise ValueError("upscale_delay_s and downscale_delay_s must be >= 0 and look_back_period_s > 0")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"expected 1 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}")
        if self.bundle is None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose {', '.join(sorted(PRESETS))}, or give a bundle")
        if isinstance(self.limits, dict):
            self.limits = LimitsConfig(**self.limits)
        if self.limits.decoder_memory_bytes < 512 * 2**20:  # the decoders' imports alone take ~250 MB
            raise ValueError(f"limits.decoder_memory_bytes must be at least 512 MiB, got {self.limits.decoder_memory_bytes}")
        if self.limits.max_requests < 1 or self.limits.body_timeout_s <= 0:
            raise ValueError("limits.max_requests must be >= 1 and limits.body_timeout_s > 0")
        if isinstance(self.allowed_uri_prefixes, str):
            raise ValueError("allowed_uri_prefixes must be a list of s3://bucket[/folder] prefixes")
        for prefix in self.allowed_uri_prefixes:
            normalise_prefix(prefix)
        if self.proxy_location not in ("EveryNode", "HeadOnly"):
            raise ValueError(f"proxy_location must be EveryNode or HeadOnly, got {self.proxy_location!r}")

    @property
    def autoscaling(self) -> dict[str, Any]:
        """Ray Serve ``autoscaling_config`` of the model deployment."""
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
            "look_back_period_s": self.look_back_period_s,
            "metrics_interval_s": self.metrics_interval_s,
        }

    @property
    def ingress_autoscaling(self) -> dict[str, Any]:
        """Ray Serve ``autoscaling_config`` of the ingress deployment."""
        top = self.max_replicas if self.ingress_max_replicas is None else self.ingress_max_replicas
        return {**self.autoscaling, "min_replicas": self.ingress_replicas,
                "max_replicas": max(self.ingress_replicas, top),
                "target_ongoing_requests": 2 * self.target_ongoing_requests}

    @property
    def rollout_options(self) -> dict[str, Any]:
        """Deployment options that make a redeploy drop no request."""
        return {"max_surge_percent": self.max_surge_percent,
                "graceful_shutdown_wait_loop_s": self.graceful_shutdown_wait_loop_s,
                "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s}

    def ingress_settings(self) -> dict[str, Any]:
        """What the ingress is built from: everything but the model's identity, and the deploy's revision.

        Serve replaces the ingress replicas on every deploy as well (measured: a rollout gives the ingress a new
        replica), so the newest-revision guard cannot live only in a replica's memory: an ingress replica
        starts at its deploy's revision and takes answers of that deploy's model replicas only."""
        settings = self.to_dict()
        for key in ("bundle", "preset", "seed"):
            settings.pop(key)
        return settings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ServeConfig":
        """Build from a (possibly partial) dict: types checked and coerced, unknown keys refused, errors
        naming the dotted key (``sweettok.typed.build``)."""
        return build(cls, dict(data or {}))


def deploy_config(config: ServeConfig) -> dict[str, Any]:
    """A Ray Serve config (the YAML ``serve deploy`` takes) running ``config``."""
    args = config.to_dict()
    host, port, proxies = args.pop("host"), args.pop("port"), args.pop("proxy_location")
    if config.bundle:
        args.pop("preset"), args.pop("seed")
    if config.api_key is None:
        args.pop("api_key")
    return {
        "proxy_location": proxies,
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": config.name,
                "route_prefix": config.route_prefix,
                "import_path": APP_IMPORT_PATH,
                "args": args,
            }
        ],
    }
