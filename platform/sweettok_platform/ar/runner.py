"""Driver side of generator training: check the corpus, run one Ray Train run, mark it finished.

``train_generator(config)`` is the call ``sweettok ar train`` makes. The run is a ``TorchTrainer`` named
``<name>-ar`` under ``storage_path`` with the curriculum's failure handling: a dead worker restarts the
group from the newest complete checkpoint (``max_failures``), a rerun resumes an unfinished run, and a
run with ``final.json`` (and as many steps) is skipped. Beside the checkpoints the driver writes
``generator.json``: the model config and the corpus identity (card, tokenizer hash, bundle) that
``sweettok ar sample`` decodes with.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sweettok import storage
from sweettok.ar import ArConfig
from sweettok_platform.ar.config import ArJobConfig
from sweettok_platform.core.corpus import CorpusCard
from sweettok_platform.core.config import RESOLVED_CONFIG, write_resolved
from sweettok_platform.core.log import get_logger
from sweettok_platform.core.raytrain import checkpoint as ck
from sweettok_platform.core.raytrain.trainer import clear_stale_logs, ensure_ray, fit_run

log = get_logger("ar")
GENERATOR = "generator.json"


def check_job(config: ArJobConfig) -> tuple[CorpusCard, ArConfig]:
    """Everything checkable before a worker starts: the corpus card, the model geometry, enough clips."""
    card = CorpusCard.load(config.corpus)
    if not card.complete:
        log.warning(f"{config.corpus}: the corpus is incomplete ({card.shards_done}/{card.shards} shards); "
                    "training on the rows written so far")
    model = config.model.build(card)
    if card.clips < config.num_workers:
        raise ValueError(f"{config.corpus} holds {card.clips} clips, fewer than num_workers={config.num_workers}")
    return card, model


def generator_info(config: ArJobConfig, card: CorpusCard, model: ArConfig) -> dict[str, Any]:
    return {"model": model.to_dict(), "corpus": config.corpus, "tokenizer": card.tokenizer, "bundle": card.bundle,
            "preset": card.preset, "seed": card.seed, "label_names": {str(k): v for k, v in card.label_names.items()}}


def train_generator(config: ArJobConfig) -> ck.StageResult:
    """Train (or resume, or skip if finished) the job's generator; returns its final checkpoint."""
    from sweettok_platform.ar.loop import ArWorkerPlan, ar_worker

    config = config.with_absolute_paths()
    card, model = check_job(config)
    done = ck.read_final(config.run_uri)
    if done is not None and done.steps >= config.optim.steps:
        log.info(f"{config.run_name}: already finished ({done.checkpoint}); skipping")
        return done
    storage.write_bytes(storage.join(config.run_uri, GENERATOR),
                        json.dumps(generator_info(config, card, model), indent=2).encode())
    write_resolved(storage.join(config.run_uri, RESOLVED_CONFIG), config)
    ensure_ray(config.use_gpu)
    log_dir = config.local_log_dir()
    clear_stale_logs(config.run_uri, config.num_workers, log_dir)
    plan = ArWorkerPlan(job=config, model_config=model.to_dict(), live_metrics=os.path.join(log_dir, "metrics.jsonl"))
    env = storage.storage_env() if storage.is_remote(config.storage_path) or storage.is_remote(config.corpus) else {}
    final = fit_run(ar_worker, plan, config, name=config.run_name, run_uri=config.run_uri, steps=config.optim.steps,
                    label=config.run_name, logger=log, env=env)
    result = ck.StageResult(stage="ar", checkpoint=final, steps=config.optim.steps)
    ck.write_final(config.run_uri, result)
    return result
