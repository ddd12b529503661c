"""Where generator training loses per worker on this machine: the same steps as ``benchmarks/ar_train.py``
(``tiny`` transformer, 256 + 1,024 tokens per clip, batch 4 per worker, 1 torch thread per worker) in four
set-ups, rounds interleaved, no Ray in any of them:

- ``loop``: one process, torch's AdamW (the benchmark's single-process loop);
- ``2 loops at once``: two such processes started together, no communication: what two workers on this
  machine get per worker before any distributed code (the ceiling of a per-worker ratio here);
- ``deepspeed x1``: one process through the DeepSpeed ZeRO-2 engine the job uses (``core.raytrain.worker.deepspeed_config``),
  world size 1: the engine's own cost;
- ``deepspeed x2``: two processes, gloo, ZeRO-2, as the Ray Train job's workers (Ray Train adds only its
  report and placement to this): tokens/s per worker, and each step split into data, forward, backward
  (ZeRO-2 reduces gradients there), optimizer step (and parameter all-gather), with CPU-seconds per step
  (wall minus CPU is time spent waiting: for the other rank, or for a core); ``deepspeed x2 ZeRO-0``: the
  same with plain data-parallel all-reduce.

CPU-seconds per step are the load-independent figure on a shared machine: a worker can at best run at
``loop CPU / its CPU`` of the loop's speed per worker, whatever else runs.

    python benchmarks/profile_ar_train.py --steps 30 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(args: argparse.Namespace) -> None:
    """One process of a set-up; prints a JSON line of per-step medians."""
    os.environ["DS_ACCELERATOR"] = "cpu"
    import torch

    torch.set_num_threads(1)
    from sweettok.ar import ArConfig, ArTransformer, class_drop_mask
    from sweettok_platform.ar.config import ArJobConfig
    from sweettok_platform.ar.data import TokenShard
    from sweettok_platform.core.corpus import CorpusCard

    job = ArJobConfig.from_dict({"name": "p", "storage_path": "/tmp/unused", "corpus": args.corpus,
                                 "model": {"size": args.size}, "optim": {"steps": args.steps, "batch_size": args.batch}})
    config: ArConfig = job.model.build(CorpusCard.load(args.corpus))
    torch.manual_seed(0)
    model = ArTransformer(config).train()
    rank, world = args.rank, args.world
    data = TokenShard(args.corpus, rank=rank, world=world, batch_size=args.batch, seed=rank)
    if args.mode == "loop":
        opt = torch.optim.AdamW(model.parameters(), lr=job.optim.lr, betas=job.optim.betas,
                                weight_decay=job.optim.weight_decay)

        def forward(ids, labels, drop):
            return model.loss(ids, labels, drop)

        def backward(loss):
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), job.optim.grad_clip)

        step = opt.step
    else:
        import torch.distributed as dist

        from sweettok.train.trainer import param_groups
        from sweettok_platform.ar.loop import SequenceLoss
        from sweettok_platform.core.raytrain.worker import deepspeed_config, ds_initialize

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port), RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_RANK="0")
        dist.init_process_group("gloo", rank=rank, world_size=world)
        module = SequenceLoss(model)
        engine, *_ = ds_initialize(  # as the workers build it
            model=module, model_parameters=param_groups(module, list(module.parameters()), job.optim.weight_decay),
            config=deepspeed_config(job.optim, zero_stage=args.zero, precision="fp32", lr=job.optim.lr))

        def forward(ids, labels, drop):
            return engine(ids, labels, drop)

        backward, step = engine.backward, engine.step
    phases: dict[str, list[float]] = {k: [] for k in ("data", "forward", "backward", "step", "total", "cpu")}
    for i in range(args.steps):
        t0, c0 = time.perf_counter(), cpu_s()
        ids, labels = data.next_batch()
        drop = class_drop_mask(labels.shape[0], config.class_dropout, torch.Generator().manual_seed(i))
        t1 = time.perf_counter()
        loss = forward(ids, labels, drop)
        t2 = time.perf_counter()
        backward(loss)
        t3 = time.perf_counter()
        step()
        t4 = time.perf_counter()
        for k, v in zip(("data", "forward", "backward", "step", "total", "cpu"),
                        (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, cpu_s() - c0)):
            phases[k].append(v)
    tokens = args.batch * config.tokens
    med = {k: statistics.median(v[5:]) for k, v in phases.items()}
    print(json.dumps({"rank": rank, "tokens_per_s": tokens / med["total"], **med}), flush=True)


def run_setup(mode: str, world: int, together: int, zero: int, args: argparse.Namespace, corpus: str) -> list[dict]:
    """``together`` processes at once (each of world size ``world``); their JSON lines."""
    port = 0
    if mode == "deepspeed":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    procs = []
    for rank in range(together):
        cmd = [sys.executable, __file__, "--as-worker", "--mode", mode, "--rank", str(rank if world > 1 else 0),
               "--world", str(world), "--port", str(port), "--corpus", corpus, "--steps", str(args.steps),
               "--batch", str(args.batch), "--size", args.size, "--zero", str(zero)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=900)
        assert p.returncode == 0, (mode, world, text[-2000:])
        out.append(json.loads(text.strip().splitlines()[-1]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", default="tiny")
    p.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="loop")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--world", type=int, default=1)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--corpus", default="")
    p.add_argument("--zero", type=int, default=2)
    args = p.parse_args()
    if args.as_worker:
        worker(args)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from ar_train import write_corpus  # the benchmark's corpus: random ids in the paper's layout

    setups = {"loop": ("loop", 1, 1, 0), "2 loops at once": ("loop", 1, 2, 0), "deepspeed x1": ("deepspeed", 1, 1, 2),
              "deepspeed x2": ("deepspeed", 2, 2, 2), "deepspeed x2 ZeRO-0": ("deepspeed", 2, 2, 0)}
    results: dict[str, list[list[dict]]] = {k: [] for k in setups}
    with tempfile.TemporaryDirectory(prefix="arprof", dir="/tmp") as tmp:
        corpus = str(Path(tmp) / "corpus")
        write_corpus(corpus, clips=64, spatial=256, temporal=1024, vocab=1024, classes=4)
        for r in range(args.rounds):
            for name, (mode, world, together, zero) in setups.items():
                results[name].append(run_setup(mode, world, together, zero, args, corpus))
            print(f"round {r + 1}: " + ", ".join(
                f"{name} {statistics.mean(x['tokens_per_s'] for x in res[-1]):.0f}" for name, res in results.items()),
                flush=True)
    print(f"size {args.size}, batch {args.batch} x 1,280 tokens per worker, {args.steps} steps (medians after 5), "
          f"1 torch thread per process, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    loop = statistics.median(statistics.mean(x["tokens_per_s"] for x in res) for res in results["loop"])
    loop_cpu = statistics.median(x["cpu"] for res in results["loop"] for x in res)
    print(f"{'set-up':20s} {'tokens/s/worker':>15s} {'vs loop':>8s}   per step, ms: data forward backward step "
          "total | CPU | loop CPU / CPU")
    for name, rounds in results.items():
        per_round = [statistics.mean(x["tokens_per_s"] for x in res) for res in rounds]
        rate = statistics.median(per_round)
        rows = [x for res in rounds for x in res]
        ms = {k: 1000 * statistics.median(x[k] for x in rows) for k in ("data", "forward", "backward", "step",
                                                                       "total", "cpu")}
        print(f"{name:20s} {rate:15.0f} {rate / loop:7.2f}x   {ms['data']:.1f} {ms['forward']:.1f} "
              f"{ms['backward']:.1f} {ms['step']:.1f} {ms['total']:.1f} | {ms['cpu']:.1f} | "
              f"{1000 * loop_cpu / ms['cpu']:.2f}x   (rounds: "
              + " ".join(f"{v:.0f}" for v in per_round) + ")")


if __name__ == "__main__":
    main()
