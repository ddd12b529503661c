"""Generator training throughput: the Ray Train + DeepSpeed path against a single-process loop, same model,
same data, tokens/s per worker.

    python benchmarks/ar_train.py --steps 40 --workers 2

The corpus is written here in the corpus format (random ids in the paper's layout, 256 + 1,024 tokens,
codebooks of 1,024): throughput does not depend on what the ids mean. The single-process loop runs the same
``ArTransformer.loss`` with torch's AdamW on one thread; the Ray path runs ``train_generator`` with
``--workers`` workers of one CPU each and reads ``tokens_per_s_per_worker`` from its metrics (median over
the steps after the first 5). The ratio is Ray's per-worker figure over the loop's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from sweettok.ar import ArConfig, ArTransformer
from sweettok_platform.ar.config import ArJobConfig
from sweettok_platform.ar.data import TokenShard
from sweettok_platform.ar.runner import train_generator
from sweettok_platform.core.corpus import CorpusCard, ShardStats, clip_id, write_shard


def write_corpus(output: str, clips: int, spatial: int, temporal: int, vocab: int, classes: int) -> None:
    rng = np.random.default_rng(0)
    rows = [{"id": clip_id(f"c{i}.mp4", 0), "source": f"c{i}.mp4", "label": i % classes, "label_name": f"class{i % classes}",
             "clip_start": 0, "window": 0, "num_frames": 17, "fps": 25.0,
             "spatial": rng.integers(0, vocab, spatial).tolist(), "temporal": rng.integers(0, vocab, temporal).tolist(),
             "tokenizer": "preset:bench"} for i in range(clips)]
    write_shard(output, ShardStats(shard=0, files=clips, clips=clips), pa.Table.from_pylist(rows), [])
    CorpusCard(output=output, tokenizer="preset:bench", preset="paper", spatial_tokens=spatial, temporal_tokens=temporal,
               spatial_codebook_size=vocab, temporal_codebook_size=vocab,
               label_names={c: f"class{c}" for c in range(classes)}, shards=1, shards_done=1, clips=clips).save()


def single_process(job: ArJobConfig, model_config: ArConfig, steps: int) -> float:
    """tokens/s of the same steps in one process (one thread), median over steps after the first 5."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ArTransformer(model_config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=job.optim.lr, betas=job.optim.betas, weight_decay=job.optim.weight_decay)
    data = TokenShard(job.corpus, rank=0, world=1, batch_size=job.optim.batch_size, seed=0)
    rates = []
    for _ in range(steps):
        start = time.perf_counter()
        ids, labels = data.next_batch()
        loss = model.loss(ids, labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), job.optim.grad_clip)
        opt.step()
        rates.append(ids.numel() / (time.perf_counter() - start))
    return statistics.median(rates[5:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", default="tiny")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="arb", dir="/tmp") as tmp:
        corpus = str(Path(tmp) / "corpus")
        write_corpus(corpus, clips=64, spatial=256, temporal=1024, vocab=1024, classes=4)
        job = ArJobConfig.from_dict({
            "name": "bench", "storage_path": str(Path(tmp) / "runs"), "corpus": corpus, "log_dir": str(Path(tmp) / "logs"),
            "model": {"size": args.size}, "optim": {"steps": args.steps, "batch_size": args.batch},
            "num_workers": args.workers, "checkpoint_every": args.steps, "log_every": args.steps,
        })
        model_config = job.model.build(CorpusCard.load(corpus))
        before = single_process(job, model_config, args.steps)
        import ray

        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 _temp_dir="/tmp/arb-ray", runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}})
        train_generator(job)
        with open(Path(tmp) / "logs" / "metrics.jsonl") as f:
            rows = [json.loads(line) for line in f]
        ray_rate = statistics.median(r["tokens_per_s_per_worker"] for r in rows[5:])
        ray.shutdown()
        after = single_process(job, model_config, args.steps)  # before and after: the machine's load drifts
    loop = (before + after) / 2
    print(f"size {args.size}, 1,280 tokens per clip, batch {args.batch} per worker, {args.steps} steps")
    print(f"single-process loop: {loop:.0f} tokens/s (before {before:.0f}, after {after:.0f}); "
          f"Ray Train + DeepSpeed ZeRO-2, {args.workers} workers: "
          f"{ray_rate:.0f} tokens/s per worker ({ray_rate * args.workers:.0f} in all); ratio per worker "
          f"{ray_rate / loop:.2f}x")


if __name__ == "__main__":
    main()
