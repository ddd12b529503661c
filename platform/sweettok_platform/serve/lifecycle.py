"""Running the endpoint on a Ray cluster: ``start(config) -> base URL`` (a local cluster when none is
connected), ``rollout(config)`` (a new bundle into the running app, no request dropped), ``stop(config)``,
and the ingress replicas' own URLs (``ingress_urls``, direct ingress)."""

from __future__ import annotations

import dataclasses
import os
import time

from ray import serve

from sweettok_platform.serve.app import build_app
from sweettok_platform.serve.config import DIRECT_INGRESS_ENV, LOCAL_DRAINING_ENV, ServeConfig


def local_ray_env(config: ServeConfig) -> None:
    """Set this process's environment for a local Ray cluster about to be started for ``config``."""
    if config.direct_ingress:
        os.environ.update(DIRECT_INGRESS_ENV)
        for name, value in LOCAL_DRAINING_ENV.items():
            os.environ.setdefault(name, value)


def ingress_urls(config: ServeConfig) -> list[str]:
    """Base URLs of the app's ingress replicas, as Serve publishes them to load balancers.

    With direct ingress these are the replicas' own HTTP servers; without it, the proxies. Empty until a
    replica runs.
    """
    import ray
    # not a public module; Serve's controller is the only source of the replica ports
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    groups = ray.get(controller.get_target_groups.remote(config.name))
    local = config.host in ("127.0.0.1", "localhost")  # servers bind the configured host, not the node IP
    prefix = config.route_prefix.rstrip("/")
    return sorted(f"http://{config.host if local else t.ip}:{t.port}{prefix}"
                  for g in groups if g.protocol.value == "HTTP" for t in g.targets)


def _wait_healthy(url: str, deadline: float) -> bool:
    import requests

    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=10).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def start(config: ServeConfig, *, timeout_s: float = 180.0) -> str:
    """Run the endpoint on the current Ray cluster (started locally if none); returns its base URL.

    The URL is the proxy's; with ``direct_ingress`` the replicas' own URLs come from ``ingress_urls``.
    """
    import ray

    if not ray.is_initialized():
        local_ray_env(config)
        ray.init(include_dashboard=False, log_to_driver=False)
    serve.start(proxy_location=config.proxy_location, http_options={"host": config.host, "port": config.port})
    deploy(config)
    url = f"http://{config.host}:{config.port}{config.route_prefix.rstrip('/')}"
    deadline = time.monotonic() + timeout_s
    if not _wait_healthy(url, deadline):
        raise TimeoutError(f"the endpoint at {url} did not become healthy within {timeout_s:g} s")
    if config.direct_ingress:
        while not (direct := [u for u in ingress_urls(config) if u != url]):
            if time.monotonic() > deadline:
                raise RuntimeError("direct_ingress is on but Serve publishes no replica port: start the Ray "
                                   f"cluster with {DIRECT_INGRESS_ENV} in its environment")
            time.sleep(0.2)
        for replica_url in direct:
            if not _wait_healthy(replica_url, deadline):
                raise TimeoutError(f"the ingress replica at {replica_url} did not become healthy within {timeout_s:g} s")
    return url


def deploy(config: ServeConfig) -> ServeConfig:
    """Deploy ``config`` (a new app, or an update of the running one) with a new revision; returns what ran.

    An update that changes the bundle replaces only the model replicas: new ones start while the old ones
    keep serving (``max_surge_percent``), then the old ones drain (``graceful_shutdown_*``)."""
    if config.bundle and "://" not in config.bundle:  # replicas may run in another directory
        config = dataclasses.replace(config, bundle=os.path.abspath(config.bundle))
    config = dataclasses.replace(config, revision=time.time())
    serve.run(build_app(config), name=config.name, route_prefix=config.route_prefix, blocking=False)
    return config


def is_running(config: ServeConfig) -> bool:
    """Whether the cluster already runs an app of this name."""
    return config.name in serve.status().applications


def rollout(config: ServeConfig, *, timeout_s: float = 300.0) -> ServeConfig:
    """Replace the running app's bundle by ``config``'s while it keeps serving; returns when every replica
    of the model deployment runs the new revision (``TimeoutError`` otherwise)."""
    config = deploy(config)
    model = serve.get_deployment_handle("TokenizerModel", app_name=config.name)
    deadline, current = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        app = serve.status().applications.get(config.name)
        running = app is not None and str(getattr(app.status, "value", app.status)) == "RUNNING"
        # several answers in a row from the new revision: the old replicas are gone from the routing
        current = current + 1 if running and model.info.remote().result()["revision"] == config.revision else 0
        if current >= 5:
            return config
        time.sleep(0.2)
    raise TimeoutError(f"the rollout of {config.bundle or config.preset} did not finish within {timeout_s:g} s")


def stop(config: ServeConfig) -> None:
    """Delete the application (the Serve instance and Ray keep running)."""
    serve.delete(config.name)
