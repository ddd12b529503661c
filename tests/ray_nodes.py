"""A real multi-node Ray cluster on this machine, as a user starts one: ``ray start --head`` and
``ray start --address`` per node, each node with its own temp dir and ports (other Ray clusters run here too),
token authentication on (``RAY_AUTH_MODE=token`` for the joining node and plain ``ray`` commands), every
process of a node found by its temp dir, so a test stops or kills exactly its own processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

NODE_PORTS = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
              "runtime-env-agent-port", "node-manager-port", "object-manager-port")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "ray"), *args], capture_output=True, text=True,
                          timeout=180, env=env, **kwargs)


def clean_env() -> dict[str, str]:
    """This process's environment without another cluster's address or storage settings."""
    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")
            and not k.startswith("AWS_")}


@dataclass
class Node:
    temp: Path
    cpus: int
    head: bool

    def processes(self) -> list[psutil.Process]:
        """Every live process of this node (its temp dir is on their command lines or in their environment)."""
        mine = []
        for p in psutil.process_iter(["cmdline"]):
            if str(self.temp) in " ".join(p.info["cmdline"] or []):
                mine.append(p)
        return mine

    def raylet(self) -> psutil.Process:
        return next(p for p in self.processes() if "raylet" in " ".join(p.info["cmdline"] or [])
                    and "--node_manager_port" in " ".join(p.info["cmdline"] or []))

    def stop(self, kill: bool = False) -> None:
        """Stop this node's processes only (``ray stop`` would stop every Ray cluster on the machine)."""
        mine = self.processes()
        workers = [c for p in mine for c in _children(p)]
        everything = {p.pid: p for p in [*mine, *workers]}.values()
        for p in everything:
            try:
                p.kill() if kill else p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(list(everything), timeout=5)  # then SIGKILL (a node is stopped at the end of the session)
        for p in alive:
            p.kill()


def _children(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@dataclass
class LocalCluster:
    """``head`` plus worker nodes; ``address`` is the GCS address, ``dashboard`` the job API's URL."""

    root: Path
    address: str = ""
    dashboard: str = ""
    nodes: list[Node] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment of a driver or ``ray`` command on this cluster."""
        return {**clean_env(), "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token"}

    def start_head(self, cpus: int, dashboard: bool = False) -> Node:
        node = Node(self.root / "head", cpus, True)
        gcs, dash = free_port(), free_port()
        ports = [f"--{name}={free_port()}" for name in (*NODE_PORTS, "ray-client-server-port")]
        done = ray_cli("start", "--head", f"--port={gcs}", f"--num-cpus={cpus}", f"--temp-dir={node.temp}",
                       f"--include-dashboard={'true' if dashboard else 'false'}", f"--dashboard-port={dash}",
                       "--dashboard-host=127.0.0.1", *ports, env=clean_env())  # token auth: Ray 2.60's default
        assert done.returncode == 0, done.stdout + done.stderr
        self.address, self.dashboard = f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dash}"
        self.nodes.append(node)
        return node

    def add_node(self, cpus: int, resources: str | None = None) -> Node:
        node = Node(self.root / f"node{len(self.nodes)}", cpus, False)
        ports = [f"--{name}={free_port()}" for name in NODE_PORTS]
        extra = [f"--resources={resources}"] if resources else []
        # joining needs RAY_AUTH_MODE=token as well as the token file the head wrote
        done = ray_cli("start", f"--address={self.address}", f"--num-cpus={cpus}", f"--temp-dir={node.temp}",
                       *ports, *extra, env={**clean_env(), "RAY_AUTH_MODE": "token"})
        assert done.returncode == 0, done.stdout + done.stderr
        self.nodes.append(node)
        return node

    def alive_nodes(self) -> int:
        import json

        out = ray_cli("list", "nodes", "--format=json", "--address", self.address, env=self.env())
        return sum(1 for n in json.loads(out.stdout or "[]") if n.get("state") == "ALIVE") if out.returncode == 0 else -1

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
