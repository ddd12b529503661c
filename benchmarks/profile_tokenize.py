"""Where the tokenize pipeline's time goes against a plain loop, on this machine: CPU-seconds per clip per stage,
idle time, and the cost of moving frames between processes.

Three parts, on the same files, bundle and clip settings as ``benchmarks/tokenize_pipeline.py``:

1. Each stage alone in this process (1 torch thread), CPU-seconds per clip (``os.times``, children
   included): decoding in-process, decoding through the sandboxed helper (parent and helper separately), the
   part's serialisation (frames -> one Arrow row, and back in the encoder), ``ray.put``/``ray.get`` of a part
   (the object store), encoding (batch ``--batch-size``), building the rows and writing Parquet.
2. The best plain loop (1 thread and one per core, decode + encode in one process): clips/s, and the cores it
   keeps busy (CPU-seconds / wall seconds).
3. The pipeline (``tokenize_dataset``, 1 encode actor, Ray with ``--cpus`` logical CPUs, after a warm-up run in
   the same cluster): wall time, and every process's CPU-seconds sampled every 0.1 s and attributed to what it
   was doing (Ray sets a worker's title to its task or actor): the encode actor, decode tasks, decode helpers,
   the driver, idle Ray workers and Ray's own services (raylet, GCS, ...). Idle = 1 - CPU-seconds / (wall x
   cores): the share of the machine nobody used. The encode actor's busy share of the wall time, and its
   start (process start to the first shard) are printed too.

From these it prints the bounds that decide the comparison: the loop needs L CPU-s per clip on ~u cores;
the pipeline needs P >= L CPU-s per clip (its extra stages) and at best keeps every core busy, so it cannot
beat the loop where cores x L / P < u, nor while its fixed costs (Ray Data start, actor start and model load,
the first shard's decode before any encode, the last shard's encode after all decoding) are a large share of
a short run.

    python benchmarks/profile_tokenize.py --files 192 --workdir /tmp/tokbench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

import sweettok
from sweettok_platform.core.decode import TimedDecoder, decode_file
from sweettok_platform.core.sources import SourceConfig
from sweettok_platform.core.media import ClipSpec
from tokenize_pipeline import loop_clips_per_s, sample_inputs  # this folder: the benchmark's inputs, made the same way


def cpu_now() -> float:
    """CPU-seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def proc_cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def stage_costs(items, bundle: str, spec: ClipSpec, batch_size: int, output: str) -> dict[str, float]:
    """CPU-seconds per clip of each stage, alone, in this process (one torch thread)."""
    import pyarrow as pa
    import ray

    from sweettok_platform.core.corpus import ROW_SCHEMA, ShardStats, write_shard
    from sweettok_platform.core.shards import _part, unpack_clips

    torch.set_num_threads(1)
    out: dict[str, float] = {}
    c0 = cpu_now()
    decoded = [decode_file(item, spec) for item in items]
    clips = [c.frames for d in decoded for c in d.clips]
    n = len(clips)
    out["decode (in-process)"] = (cpu_now() - c0) / n

    decoder = TimedDecoder(spec, timeout_s=120)
    decoder.group(items[0], 0, 64)  # start the helper outside the measurement
    helper = psutil.Process(decoder._proc.pid)
    h0, c0 = proc_cpu(helper), cpu_now()
    for item in items:
        decoder.group(item, 0, 64)
    out["decode helper (its process)"] = (proc_cpu(helper) - h0) / n
    out["decode helper (task side: pipe, checks)"] = (cpu_now() - c0) / n
    decoder.close()

    # a part as a decode task builds it (decode_shard), and as the encoder takes it apart (ShardEncoder)
    # (each measured after one untimed call: first calls pay one-time initialisation and page faults)
    metas = [{"shape": list(f.shape)} for f in clips]
    _part(0, 0, 1, 16, metas[:80], clips[:80], [])
    c0 = cpu_now()
    tables = []
    for k in range(0, n, 80):
        tables.append(_part(0, 0, 1, 16, metas[k:k + 80], clips[k:k + 80], []))
    out["serialise a part (task side)"] = (cpu_now() - c0) / n
    c0 = cpu_now()
    for k in range(0, n, 80):  # what decode_shard did before: a bytes copy per clip, joined, copied into Arrow
        pa.table({"frames": pa.array([b"".join(f.tobytes() for f in clips[k:k + 80])], pa.large_binary())})
    out["(serialise as before: tobytes + join + pa.array)"] = (cpu_now() - c0) / n
    c0 = cpu_now()
    for t in tables:
        row = t.to_pylist()[0]
        np.stack(unpack_clips(row["meta"], row["frames"])[1])
    out["deserialise a part + stack (encoder side)"] = (cpu_now() - c0) / n
    if ray.is_initialized():
        ray.get(ray.put(tables[0]))
        c0 = cpu_now()
        for t in tables:
            ray.get(ray.put(t))
        out["ray.put + ray.get of a part (object store)"] = (cpu_now() - c0) / n

    model = sweettok.load_bundle(bundle)
    c0 = cpu_now()
    ids = []
    with torch.no_grad():
        for k in range(0, n, batch_size):
            x = sweettok.from_uint8(torch.from_numpy(np.stack(clips[k:k + batch_size])))
            ids.append(model.encode(x).numpy())
    out["encode (1 thread)"] = (cpu_now() - c0) / n
    ids_all = np.concatenate(ids).astype(np.int32)
    n_s = model.num_spatial
    c0 = cpu_now()
    rows = pa.Table.from_pylist(
        [{"id": str(i), "source": "x", "label": 0, "label_name": "x", "clip_start": i, "window": i, "num_frames": 5,
          "fps": 25.0, "spatial": r[:n_s].tolist(), "temporal": r[n_s:].tolist(), "tokenizer": "h"}
         for i, r in enumerate(ids_all)], schema=ROW_SCHEMA)
    write_shard(output, ShardStats(shard=0, files=len(items), clips=n), rows, [])
    out["rows + Parquet write + read-back"] = (cpu_now() - c0) / n
    return out


def loop(items, bundle: str, spec: ClipSpec, batch_size: int, threads: int) -> tuple[float, float, int]:
    """The benchmark's plain loop (``tokenize_pipeline.loop_clips_per_s``): (clips/s, cores busy, clips)."""
    torch.set_num_threads(threads)
    w0, c0 = time.perf_counter(), cpu_now()
    rate, clips = loop_clips_per_s(items, bundle, spec, batch_size)
    return rate, (cpu_now() - c0) / (time.perf_counter() - w0), clips


def category(p: psutil.Process, me: int) -> str:
    """What a process of the local Ray cluster is doing now, from its title / command line."""
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return "gone"
    if p.pid == me:
        return "driver (this process: Ray Data's executor)"
    if "serve_stdio" in cmd:
        return "decode helpers"
    if cmd.startswith("ray::"):
        if "ShardEncoder" in cmd:
            return "encode actor"
        if "decode_shard" in cmd:
            return "decode tasks"
        if "IDLE" in cmd:
            return "idle Ray workers"
        return "other Ray tasks (" + cmd.split()[0][:40] + ")"
    return "Ray services (raylet, GCS, agents)"


class Sampler:
    """Samples every process of this process tree every ``every_s``; attributes CPU deltas to categories."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.every_s, self.me = every_s, os.getpid()
        self.last: dict[int, float] = {}
        self.by: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.encoder_first: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        root = psutil.Process(self.me)
        for p in [root, *root.children(recursive=True)]:
            cpu = proc_cpu(p)
            kind = category(p, self.me)
            delta = cpu - self.last.get(p.pid, cpu if p.pid in self.last else self._start_cpu(p, cpu))
            self.last[p.pid] = cpu
            if delta > 0:
                self.by[kind] = self.by.get(kind, 0.0) + delta

    def _start_cpu(self, p: psutil.Process, cpu: float) -> float:
        # a process seen for the first time: count its CPU from its start when it started during the window
        try:
            return 0.0 if p.create_time() >= self.began_epoch else cpu
        except psutil.Error:
            return cpu

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self._sample()
            time.sleep(self.every_s)

    @staticmethod
    def _machine() -> tuple[float, float]:
        """(busy, idle) CPU-seconds of the whole machine since boot, every process of every user."""
        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0), idle

    def __enter__(self) -> "Sampler":
        self.machine0 = self._machine()
        self.began_epoch = time.time()
        root = psutil.Process(self.me)
        for p in [root, *root.children(recursive=True)]:
            self.last[p.pid] = proc_cpu(p)
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop_event.set()
        self.thread.join()
        self._sample()
        busy, idle = self._machine()
        self.machine_busy, self.machine_idle = busy - self.machine0[0], idle - self.machine0[1]


def pipeline(items_source: SourceConfig, bundle: str, work: Path, batch_size: int, files_per_shard: int,
             policy: str, stride: int, expect: int) -> tuple[float, dict[str, float], list[str]]:
    from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
    from sweettok_platform.core.tokenizer import EncodeConfig

    lines: list[str] = []
    config = TokenizeJobConfig(
        source=items_source, output=str(work / "corpus-prof"), overwrite=True, progress=False,
        encode=EncodeConfig(bundle=bundle, batch_size=batch_size, concurrency=1, num_cpus=1.0),
        clips=ClipSpec(policy=policy, stride=stride), files_per_shard=files_per_shard, decode_timeout_s=120.0)
    with Sampler() as sampler:
        w0 = time.perf_counter()
        card = tokenize_dataset(config, log=lambda line: lines.append(f"{time.perf_counter() - w0:6.2f}s {line}"))
        wall = time.perf_counter() - w0
    assert card.clips == expect, (card.clips, expect)
    by = dict(sampler.by)  # what other users' processes took meanwhile (a shared machine), and what nobody used
    by["(other processes on this machine)"] = max(0.0, sampler.machine_busy - sum(sampler.by.values()))
    by["(idle: nobody)"] = sampler.machine_idle
    return wall, by, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=192)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320))
    parser.add_argument("--preset", default="small")
    parser.add_argument("--policy", default="windows")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--files-per-shard", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="loop and pipeline runs, interleaved")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    import ray

    work = Path(args.workdir or tempfile.mkdtemp(prefix="tokprof-"))
    bundle, source, items, spec = sample_inputs(work, args)
    cores = psutil.cpu_count(logical=True) or 1
    os.environ.setdefault("RAY_worker_niceness", "0")  # as the benchmark: equal priority for both sides

    # 1. stages alone (with an object store for the put/get figure), on the first shard's worth of files x 2
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    sample = items[: 2 * args.files_per_shard]
    costs = stage_costs(sample, bundle, spec, args.batch_size, str(work / "stage-out"))
    ray.shutdown()

    # 2 and 3, interleaved: loops with no Ray alive, then the pipeline (warm-up run first in each cluster)
    loops: dict[int, list[tuple[float, float]]] = {}
    runs: list[tuple[float, dict[str, float], list[str]]] = []
    clips = 0
    for _ in range(args.rounds):
        ray.shutdown()
        for threads in sorted({1, cores}):
            rate, busy, clips = loop(items, bundle, spec, args.batch_size, threads)
            loops.setdefault(threads, []).append((rate, busy))
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        pipeline(source, bundle, work, args.batch_size, args.files_per_shard, args.policy, args.stride, clips)
        runs.append(pipeline(source, bundle, work, args.batch_size, args.files_per_shard, args.policy, args.stride,
                             clips))
    ray.shutdown()

    print(f"{clips} clips from {len(items)} files; preset {args.preset}; {args.policy}/{args.stride}; batch "
          f"{args.batch_size}; {args.files_per_shard} files per shard; Ray CPUs {args.cpus}; cores {cores}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("\n1. stages alone, CPU-seconds per clip (ms):")
    for name, v in costs.items():
        print(f"   {name:45s} {1000 * v:7.2f}")
    loop_cpu = costs["decode (in-process)"] + costs["encode (1 thread)"]
    pipe_cpu = (costs["decode helper (its process)"] + costs["decode helper (task side: pipe, checks)"]
                + costs["serialise a part (task side)"] + costs["deserialise a part + stack (encoder side)"]
                + costs.get("ray.put + ray.get of a part (object store)", 0.0) + costs["encode (1 thread)"]
                + costs["rows + Parquet write + read-back"])
    print(f"   loop's work (decode + encode)                  {1000 * loop_cpu:7.2f}")
    print(f"   pipeline's work (helper decode, transfers, encode, write) {1000 * pipe_cpu:7.2f}  "
          f"({pipe_cpu / loop_cpu:.2f}x the loop's)")
    print(f"   encode share of the pipeline's work: {costs['encode (1 thread)'] / pipe_cpu:.0%} (one encode actor "
          f"on one core can take at most this share of {cores} cores' time)")

    print("\n2. plain loop:")
    best = 0.0
    for threads, vals in loops.items():
        rates = [r for r, _ in vals]
        print(f"   {threads} thread(s): clips/s " + " ".join(f"{r:6.1f}" for r in rates)
              + "; cores busy " + " ".join(f"{b:.2f}" for _, b in vals))
        best = max(best, statistics.median(rates))
    print(f"   best loop (median): {best:.1f} clips/s")

    print("\n3. pipeline, 1 encode actor:")
    for i, (wall, by, lines) in enumerate(runs):
        total = sum(v for k, v in by.items() if not k.startswith("("))
        print(f"   run {i + 1}: {clips / wall:.1f} clips/s ({wall:.2f} s wall, {clips / wall / best:.2f}x the best "
              f"loop); CPU-s per clip by process (ms), and share of {cores} cores x wall:")
        for name, v in sorted(by.items(), key=lambda kv: -kv[1]):
            print(f"      {name:45s} {1000 * v / clips:7.2f}   {v / (wall * cores):5.1%}")
        print(f"      {'all of the job':45s} {1000 * total / clips:7.2f}   {total / (wall * cores):5.1%}   not used by "
              f"the job {1 - total / (wall * cores):5.1%}")
        enc = by.get("encode actor", 0.0)
        print(f"      encode actor busy {enc / wall:.0%} of the wall time; if it were busy all the time: "
              f"{clips / enc * 1.0 if enc else 0:.1f} clips/s")
        for line in lines:
            print("      log:", line[:150])
    loop_busy = statistics.median(b for v in loops.values() for _, b in v)
    # the load-robust form: the job's CPU-seconds per clip over all cores (what it needs at the very least, with
    # no idle time and no other process on the machine) against each loop's fastest round (the round least
    # disturbed by other processes: on a shared machine they take cores from the loop as from the pipeline)
    job_cpu = statistics.median(sum(v for k, v in by.items() if not k.startswith("(")) for _, by, _ in runs) / clips
    print(f"\nCPU form of the comparison: the job used {1000 * job_cpu:.2f} ms CPU per clip (median of its runs, "
          f"every process of it), so it needs >= {1000 * job_cpu / cores:.2f} ms of wall time per clip on {cores} "
          "cores with none idle and nothing else running")
    for threads, vals in loops.items():
        rate, busy = max(vals)
        print(f"   loop, {threads} thread(s), fastest round: {1000 / rate:.2f} ms per clip on {busy:.2f} cores "
              f"({1000 * busy / rate:.2f} ms CPU per clip): the pipeline can reach at most "
              f"{1 / rate / (job_cpu / cores):.2f}x this loop")
    print(f"\nbounds: the best loop takes {clips / best:.2f} s ({1000 / best:.2f} ms per clip) on ~{loop_busy:.2f} "
          f"cores, {1000 * loop_cpu:.2f} ms CPU per clip for its stages alone.")
    print(f"   stages alone, the pipeline's per-clip work is {1000 * pipe_cpu:.2f} ms: with all {cores} cores busy and "
          f"no fixed cost at most {cores / pipe_cpu:.1f} clips/s ({cores / pipe_cpu / best:.2f}x the best loop)")
    for i, (wall, by, _) in enumerate(runs):
        total = sum(v for k, v in by.items() if not k.startswith("("))
        floor = total / cores  # seconds the measured CPU work needs on every core, with no idle time at all
        print(f"   run {i + 1}: all processes used {total:.1f} CPU-s ({1000 * total / clips:.2f} ms per clip; "
              f"{total - pipe_cpu * clips:.1f} CPU-s above the stages' per-clip work: process starts, imports, "
              f"model load, Ray Data's driver, Ray's services): on {cores} cores that takes >= {floor:.2f} s, so "
              f"<= {clips / floor:.1f} clips/s = {clips / floor / best:.2f}x the best loop with zero idle time; "
              f"measured {clips / wall / best:.2f}x (not used by the job {1 - total / (wall * cores):.0%}, of which "
              f"{by['(idle: nobody)'] / (wall * cores):.0%} idle)")
    print(json.dumps({"stages_ms": {k: round(1000 * v, 3) for k, v in costs.items()}}))


if __name__ == "__main__":
    main()
