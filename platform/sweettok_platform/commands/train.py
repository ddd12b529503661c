"""``sweettok train``: run the curriculum (or one stage) on a Ray cluster from a YAML job spec."""

from __future__ import annotations

import argparse
import json

from sweettok_platform.core.config import add_config_args, resolve_settings

EPILOG = """\
examples:
  sweettok train --config jobs/train-curriculum-tiny.yaml
  sweettok train --config jobs/train-curriculum-tiny.yaml --stage stage2 --set stage_overrides.stage2.steps=50
  sweettok train --config jobs/train-curriculum-paper.yaml --address auto --check

A stage runs as the Ray Train run <name>-<stage> under storage_path; rerunning the same job resumes
unfinished stages from their last checkpoint and skips finished ones.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="run curriculum training (Ray Train + DeepSpeed ZeRO)",
        description="Train a SweetTokenizer through the curriculum stages (stage0 teacher, stage1 images, "
                    "stage2 videos, stage3 pixels + GAN) and export a tokenizer bundle.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    p.add_argument("--stage", action="append", choices=["stage0", "stage1", "stage2", "stage3"],
                   help="run only this stage (repeatable); it starts from the previous stage's final checkpoint")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, or start a local Ray)")
    p.add_argument("--check", action="store_true",
                   help="validate the job (dataset, teacher, previous stages) and print the plan; train nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sweettok_platform.train import TrainJobConfig, check_job, run_curriculum

    settings = resolve_settings(args, {"stage": "stages"})
    if "name" not in settings or "storage_path" not in settings:
        raise ValueError("a job needs 'name' and 'storage_path' (in --config YAML or --set name=... )")
    config = TrainJobConfig.from_dict(settings)
    if args.check:
        for plan in check_job(config):
            state = "done" if plan.done else ("from " + plan.init if plan.init else "chained/fresh")
            print(f"{plan.stage.name}: {plan.stage.steps} steps x {plan.stage.batch_size} per worker ({state})")
        return 0
    from sweettok_platform.core.raytrain.trainer import ensure_ray

    ensure_ray(config.use_gpu, args.address)
    uri = run_curriculum(config)
    print(json.dumps({"job": config.name, "result": uri}))
    return 0
