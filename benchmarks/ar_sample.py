"""KV-cached against uncached sampling of the AR generator on the paper's 1,280-token clips (CPU).

    python benchmarks/ar_sample.py --size tiny --batch 1 --repeats 2

Both samplers draw the same ids for the same seed (asserted); the figure is the wall-clock ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sweettok.ar import AR_SIZES, ArConfig, ArTransformer, SampleConfig, generate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny", choices=sorted(AR_SIZES))
    p.add_argument("--spatial", type=int, default=256)
    p.add_argument("--temporal", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=1024, help="codebook size of each branch")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ArTransformer(ArConfig(spatial_vocab=args.vocab, temporal_vocab=args.vocab, spatial_tokens=args.spatial,
                                   temporal_tokens=args.temporal, num_classes=101, **AR_SIZES[args.size])).eval()
    labels = torch.arange(args.batch) % 101
    times: dict[bool, list[float]] = {True: [], False: []}
    ids: dict[bool, torch.Tensor] = {}
    for _ in range(args.repeats):
        for cached in (True, False):
            start = time.perf_counter()
            ids[cached] = generate(model, labels, SampleConfig(top_k=100, use_cache=cached),
                                   torch.Generator().manual_seed(0))
            times[cached].append(time.perf_counter() - start)
    assert torch.equal(ids[True], ids[False]), "cached and uncached samplers disagree"
    tokens = args.batch * (args.spatial + args.temporal)
    cached, uncached = statistics.median(times[True]), statistics.median(times[False])
    print(f"size {args.size}, {args.spatial}+{args.temporal} tokens, batch {args.batch}, {args.threads} thread(s)")
    print(f"KV cache: {cached:.2f} s ({tokens / cached:.0f} tokens/s); uncached: {uncached:.2f} s "
          f"({tokens / uncached:.0f} tokens/s); speed-up {uncached / cached:.1f}x (medians of {args.repeats}; "
          f"runs {[round(t, 2) for t in times[True]]} / {[round(t, 2) for t in times[False]]}); ids identical")


if __name__ == "__main__":
    main()
