"""What keeps a Ray Data job (tokenize, eval) from hanging when the cluster changes under it.

- ``plan_actor_pool``: the size of the CPU actor pool that leaves ``reserve_cpus`` for the decode tasks even
  after the largest node is lost. Ray restarts a lost node's actors on the survivors; a pool that can fill
  them leaves the decode tasks no CPU, and the job waits for ever (measured: 42 of 120 blocks, 4 minutes,
  until a replacement node joined).
- ``StallWatchdog``: no progress for ``stall_s`` -> one line naming what waits (shards left, free CPUs,
  nodes, the pending resource demands the cluster reports); no progress for ``stall_fail_s`` -> the job is
  stopped (SIGINT to the driver, turned into ``JobStalledError`` naming the cause); a rerun resumes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable


class JobStalledError(RuntimeError):
    """The job made no progress for ``stall_fail_s``; the message names what it waited for."""


def cluster_cpus() -> list[float]:
    """CPUs of each live node of the connected cluster."""
    import ray

    return [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]


def plan_actor_pool(requested: int, cpus_per_actor: float, reserve_cpus: float, key: str,
                    log: Callable[[str], None], nodes: list[float] | None = None) -> int:
    """``requested`` actors of ``cpus_per_actor`` CPUs, capped so that ``reserve_cpus`` stay free for decode
    tasks on what is left after the loss of the largest node (on one node: on that node). A cluster where not
    even one actor fits is refused before any worker starts, naming ``key``."""
    if reserve_cpus <= 0 or cpus_per_actor <= 0:
        return requested
    nodes = cluster_cpus() if nodes is None else nodes
    total = sum(nodes)
    survivors = total - max(nodes) if len(nodes) > 1 else total
    fit = int((survivors - reserve_cpus) // cpus_per_actor)
    where = f"{total:g} CPUs on {len(nodes)} node(s), {survivors:g} left after losing the largest"
    if fit < 1:
        raise ValueError(f"{key}: one encode actor of {cpus_per_actor:g} CPUs leaves no {reserve_cpus:g} CPU for "
                         f"decode tasks on this cluster ({where}); lower encode.num_cpus or decode_reserve_cpus "
                         "(0 turns this plan off), or add nodes")
    if requested > fit:
        log(f"{key} {requested} -> {fit}: the pool leaves {reserve_cpus:g} CPU for decode tasks even if a node is "
            f"lost ({where}; decode_reserve_cpus: 0 turns this off)")
        return fit
    return requested


def describe_waits(left: int, what: str, start_nodes: int, start_cpus: float) -> str:
    """One line: what the job waits for, and what the cluster lacks."""
    import ray

    parts = [f"{left} {what} not done"]
    try:
        nodes = cluster_cpus()
        free = ray.available_resources().get("CPU", 0.0)
        parts.append(f"CPU {free:g}/{sum(nodes):g} free ({start_cpus:g} at start)")
        if len(nodes) < start_nodes:
            parts.append(f"nodes {len(nodes)} of {start_nodes} at start: a node was lost")
    except Exception as e:  # noqa: BLE001 - a cluster that cannot answer is itself the news
        parts.append(f"the cluster does not answer ({type(e).__name__})")
    try:
        from ray.autoscaler.v2.sdk import get_cluster_status

        status = get_cluster_status(ray.get_runtime_context().gcs_address, timeout=5)
        demands = [f"{r.count} x {r.bundle}" for d in status.resource_demands.ray_task_actor_demand
                   for r in d.bundles_by_count]
        parts.append("pending tasks/actors waiting for resources: " + ("; ".join(demands) if demands else "none"))
    except Exception:  # noqa: BLE001 - the demand summary is extra detail, never a reason to fail
        pass
    return ", ".join(parts)


class StallWatchdog:
    """Watches ``progress()`` calls from the driver loop (see the module docstring). Use as a context manager;
    ``check(error)`` turns the KeyboardInterrupt it caused into ``JobStalledError``."""

    def __init__(self, stall_s: float, stall_fail_s: float | None, describe: Callable[[], str],
                 log: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.stall_s, self.stall_fail_s = stall_s, stall_fail_s
        self.describe, self.log, self.warn = describe, log, warn
        self.last = time.monotonic()
        self.warned = False
        self.failed: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sweettok-stall-watchdog", daemon=True)

    def __enter__(self) -> "StallWatchdog":
        self.last = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def progress(self) -> None:
        if self.warned:
            self.log(f"progress again after {time.monotonic() - self.last:.0f} s without")
        self.last, self.warned = time.monotonic(), False

    def _watch(self) -> None:
        tick = max(0.2, min(5.0, self.stall_s / 4))
        while not self._stop.wait(tick):
            idle = time.monotonic() - self.last
            if idle >= self.stall_s and not self.warned:
                self.warned = True
                self.warn(f"no progress for {idle:.0f} s: {self.describe()}")
            if self.stall_fail_s is not None and idle >= self.stall_fail_s and self.failed is None:
                self.failed = f"no progress for {idle:.0f} s (stall_fail_s {self.stall_fail_s:g}): {self.describe()}"
                os.kill(os.getpid(), signal.SIGINT)  # wakes the driver out of its wait on the cluster
                return

    def check(self, error: BaseException) -> None:
        """Re-raise ``error`` as ``JobStalledError`` if this watchdog stopped the job."""
        if self.failed is not None:
            raise JobStalledError(f"stopped: {self.failed}") from error
