"""``sweettok ar``: train a class-conditional generator on a token corpus, and sample it."""

from __future__ import annotations

import argparse
import json

from sweettok_platform.config_args import add_config_args, load_settings

EPILOG = """\
examples:
  sweettok ar train --config jobs/ar-tiny.yaml
  sweettok ar train --config jobs/ar-ucf101.yaml --address auto --set optim.steps=200000
  sweettok ar sample --checkpoint runs/ar/tiny-ar/step_00000200 --classes Bikes,1 -n 4 -o samples/
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ar", help="train / sample a class-conditional AR generator over token corpora",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ar = p.add_subparsers(dest="ar_command", metavar="ACTION", required=True)
    t = ar.add_parser("train", help="train on a corpus with Ray Train + DeepSpeed (resumes; skips when finished)")
    add_config_args(t)
    t.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, or start a local Ray)")
    t.set_defaults(func=run_train)
    s = ar.add_parser("sample", help="sample ids and decode them to mp4 + a grid PNG")
    s.add_argument("--checkpoint", required=True, help="a generator checkpoint directory (<run>/step_NNNNNNNN)")
    s.add_argument("--classes", required=True, help="comma-separated class names or indices")
    s.add_argument("-n", type=int, default=1, help="samples per class")
    s.add_argument("-o", "--output", required=True, help="output directory")
    s.add_argument("--bundle", help="tokenizer bundle to decode with (default: the corpus card's; hash checked)")
    s.add_argument("--top-k", type=int, default=0)
    s.add_argument("--top-p", type=float, default=1.0)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale (1: off)")
    s.add_argument("--no-cache", action="store_true", help="uncached sampling (slow; for checks)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=run_sample)


def run_train(args: argparse.Namespace) -> int:
    from sweettok_platform.ar.config import ArJobConfig
    from sweettok_platform.ar.runner import train_generator

    config = ArJobConfig.from_dict(load_settings(args))
    if args.address:
        import ray

        from sweettok_platform.log import RAY_RUNTIME_ENV

        ray.init(address=args.address, runtime_env=RAY_RUNTIME_ENV)
    result = train_generator(config)
    print(json.dumps({"job": config.name, "checkpoint": result.checkpoint, "steps": result.steps}))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from sweettok.ar import SampleConfig
    from sweettok_platform.ar.sample import sample_videos

    config = SampleConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, cfg_scale=args.cfg,
                          use_cache=not args.no_cache)
    summary = sample_videos(args.checkpoint, [c.strip() for c in args.classes.split(",") if c.strip()], args.n,
                            args.output, bundle=args.bundle, config=config, seed=args.seed)
    print(json.dumps(summary))
    return 0
