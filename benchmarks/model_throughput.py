"""Encode/decode time per clip at a preset on this CPU, achieved GFLOP/s against the machine's fp32 matmul
GFLOP/s measured in the same run, and peak memory.

    python benchmarks/model_throughput.py [--preset paper] [--batch 1] [--repeats 5]
    python benchmarks/model_throughput.py --bundles NEW OLD [--repeats 20]   # two bundles, encode + decode

With ``--bundles``, two tokenizer bundles (e.g. the shipped default and the one it replaced:
``git archive <commit> platform/sweettok_platform/bundles/small-study``) encode and decode the same clip in
interleaved rounds; medians per clip and the ratio NEW/OLD are printed.

FLOPs are counted by torch.utils.flop_counter on the real forward pass (matmuls and attention).
Matmul and model timings are interleaved so that machine noise hits both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sweettok import SweetTokenizer, preset


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_gflops(n: int = 1024, k: int = 512, m: int = 2048, reps: int = 20) -> float:
    """fp32 GEMM throughput at transformer-like shapes (tokens x width x 4*width)."""
    a, b = torch.randn(n, k), torch.randn(k, m)
    a @ b
    seconds = timed(lambda: [a @ b for _ in range(reps)])
    return 2 * n * k * m * reps / seconds / 1e9


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def compare_bundles(new: str, old: str, batch: int, repeats: int) -> None:
    """Encode + decode per clip of two bundles, rounds interleaved; medians and the ratio."""
    from sweettok import load_bundle

    models = {"new": load_bundle(new).eval(), "old": load_bundle(old).eval()}
    p = models["new"].config.patch
    torch.manual_seed(0)
    x = torch.rand(batch, p.frames, p.height, p.width, p.channels) - 0.5
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for model in models.values():  # warm-up
            model.decode_ids(model.encode(x))
        for _ in range(repeats):
            for name, model in models.items():
                times[name].append(timed(lambda m=model: m.decode_ids(m.encode(x))) / batch)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"bundles: new={new} old={old} batch={batch} threads={torch.get_num_threads()} rounds={repeats}")
    for name in models:
        print(f"{name}: encode + decode median {med[name] * 1e3:.1f} ms/clip "
              f"(min {min(times[name]) * 1e3:.1f}, max {max(times[name]) * 1e3:.1f})")
    ratios = [n / o for n, o in zip(times["new"], times["old"])]
    print(f"time ratio new/old: median of rounds {med['new'] / med['old']:.2f}, median of per-round ratios "
          f"{statistics.median(ratios):.2f}, of the fastest rounds {min(times['new']) / min(times['old']):.2f} "
          "(<= 1.0: no slower)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bundles", nargs=2, metavar=("NEW", "OLD"), help="compare two bundles' encode + decode")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bundles:
        compare_bundles(args.bundles[0], args.bundles[1], args.batch, args.repeats)
        return

    torch.manual_seed(0)
    model = SweetTokenizer(preset(args.preset)).eval()
    p = model.config.patch
    x = torch.rand(args.batch, p.frames, p.height, p.width, p.channels) - 0.5
    with torch.inference_mode():
        ids = model.encode(x)
        enc_t, dec_t, mm = [], [], []
        for _ in range(args.repeats):
            mm.append(matmul_gflops())
            enc_t.append(timed(lambda: model.encode(x)))
            dec_t.append(timed(lambda: model.decode_ids(ids)))
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # before the FLOP count below
    # FlopCounterMode's module tracker needs autograd on: count the same forward ops with grad enabled
    quantized = model.quantize(x)
    zq_s, zq_t = quantized.zq_s.detach(), quantized.zq_t.detach()
    del quantized
    enc_flops = count_flops(lambda: model.quantize(x))
    dec_flops = count_flops(lambda: model.decode(zq_s, zq_t))
    mm_med = statistics.median(mm)
    print(f"preset={args.preset} batch={args.batch} threads={torch.get_num_threads()} tokens={tuple(ids.shape)}")
    print(f"fp32 matmul (1024x512 @ 512x2048): median {mm_med:.1f} GFLOP/s over {args.repeats} runs")
    for name, flops, times in (("encode", enc_flops, enc_t), ("decode", dec_flops, dec_t)):
        t = statistics.median(times)
        achieved = flops / t / 1e9
        print(f"{name}: {flops / 1e9 / args.batch:.1f} GFLOP/clip, median {t / args.batch * 1e3:.0f} ms/clip, "
              f"{achieved:.1f} GFLOP/s = {achieved / mm_med:.0%} of matmul")
    print(f"peak RSS of the process while encoding and decoding (weights included): {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
