"""``sweettok ar``: train a class-conditional generator on a token corpus, and sample it."""

from __future__ import annotations

import argparse
import json

from sweettok_platform.core.config import add_config_args, resolve_settings

EPILOG = """\
examples:
  sweettok ar train --config jobs/ar-tiny.yaml
  sweettok ar train --config jobs/ar-ucf101.yaml --address auto --set optim.steps=200000
  sweettok ar sample --checkpoint runs/ar/tiny-ar/step_00000200 --classes Bikes,1 -n 4 -o samples/
  sweettok ar sample --config sample.yaml      # keys as the flags: checkpoint, classes, n, output, top_k, ...
"""
# `ar sample` settings a YAML file may hold (the flags' names; a flag given on the command line wins)
SAMPLE_KEYS = {"checkpoint": None, "classes": None, "n": 1, "output": None, "bundle": None, "top_k": 0,
               "top_p": 1.0, "temperature": 1.0, "cfg": 1.0, "no_cache": False, "seed": 0}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ar", help="train / sample a class-conditional AR generator over token corpora",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ar = p.add_subparsers(dest="ar_command", metavar="ACTION", required=True)
    t = ar.add_parser("train", help="train on a corpus with Ray Train + DeepSpeed (resumes; skips when finished)")
    add_config_args(t)
    t.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, or start a local Ray)")
    t.set_defaults(func=run_train)
    s = ar.add_parser("sample", help="sample ids and decode them to mp4 + a grid PNG")
    s.add_argument("--config", metavar="YAML", help="YAML file of these settings (flags given here win)")
    s.add_argument("--checkpoint", help="a generator checkpoint directory (<run>/step_NNNNNNNN); required")
    s.add_argument("--classes", help="comma-separated class names or indices; required")
    s.add_argument("-n", type=int, help="samples per class (default 1)")
    s.add_argument("-o", "--output", help="output directory; required")
    s.add_argument("--bundle", help="tokenizer bundle to decode with (default: the corpus card's; hash checked)")
    s.add_argument("--top-k", type=int)
    s.add_argument("--top-p", type=float)
    s.add_argument("--temperature", type=float)
    s.add_argument("--cfg", type=float, help="classifier-free guidance scale (1: off)")
    s.add_argument("--no-cache", action="store_true", default=None, help="uncached sampling (slow; for checks)")
    s.add_argument("--seed", type=int)
    s.set_defaults(func=run_sample)


def run_train(args: argparse.Namespace) -> int:
    from sweettok_platform.ar.config import ArJobConfig
    from sweettok_platform.ar.runner import train_generator

    config = ArJobConfig.from_dict(resolve_settings(args))
    from sweettok_platform.core.raytrain.trainer import ensure_ray

    ensure_ray(config.use_gpu, args.address)
    result = train_generator(config)
    print(json.dumps({"job": config.name, "checkpoint": result.checkpoint, "steps": result.steps}))
    return 0


def sample_settings(args: argparse.Namespace) -> dict:
    """The sampling settings: ``SAMPLE_KEYS`` defaults, then the YAML file, then the flags that were given."""
    import yaml

    settings = dict(SAMPLE_KEYS)
    if args.config:
        with open(args.config) as f:
            loaded = yaml.safe_load(f) or {}
        unknown = sorted(set(loaded) - set(SAMPLE_KEYS)) if isinstance(loaded, dict) else ["(not a mapping)"]
        if unknown:
            raise ValueError(f"{args.config}: unknown ar sample setting(s) {unknown}; expected {sorted(SAMPLE_KEYS)}")
        settings.update(loaded)
    settings.update({k: getattr(args, k) for k in SAMPLE_KEYS if getattr(args, k, None) is not None})
    for key in ("checkpoint", "classes", "output"):
        if settings[key] in (None, ""):
            raise ValueError(f"ar sample needs {key} (--{key} or `{key}:` in --config)")
    return settings


def run_sample(args: argparse.Namespace) -> int:
    from sweettok.ar import SampleConfig
    from sweettok_platform.ar.sample import sample_videos

    o = sample_settings(args)
    classes = o["classes"] if isinstance(o["classes"], list) else str(o["classes"]).split(",")
    config = SampleConfig(temperature=float(o["temperature"]), top_k=int(o["top_k"]), top_p=float(o["top_p"]),
                          cfg_scale=float(o["cfg"]), use_cache=not o["no_cache"])
    summary = sample_videos(str(o["checkpoint"]), [str(c).strip() for c in classes if str(c).strip()], int(o["n"]),
                            str(o["output"]), bundle=o["bundle"], config=config, seed=int(o["seed"]))
    print(json.dumps(summary))
    return 0
