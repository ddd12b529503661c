"""``sweettok reconstruct --ray``: the files spread over a Ray Data actor pool, each actor with the tokenizer
loaded once (a GPU each when the cluster has GPUs), running the same per-file step as the in-process loop
(``reconstruct.Reconstructor``). The driver shows progress with ETA as files finish and collects the errors."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import pyarrow as pa

from sweettok import storage
from sweettok_platform.reconstruct.files import (ReconstructConfig, ReconstructResult, Reconstructor, Task, load_model,
                                                 reconstruct_one, tokenizer_name)


class ReconstructActor:
    """Ray Data actor: loads the tokenizer once; each row (source, relative) -> (relative, reason or "")."""

    def __init__(self, config: dict[str, Any]) -> None:
        import torch

        self.config = ReconstructConfig(**config)
        if not torch.cuda.is_available():
            torch.set_num_threads(1)  # one CPU per actor
        self.model = load_model(self.config)
        self.run = Reconstructor(self.model, video_format=self.config.video_format, batch_size=self.config.batch_size)

    def __call__(self, batch: pa.Table) -> pa.Table:
        out: dict[str, list[str]] = {"relative": [], "reason": [], "tokenizer": []}
        for row in batch.to_pylist():
            error = reconstruct_one(self.run, Task(row["source"], row["relative"]), self.config.output)
            out["relative"].append(row["relative"])
            out["reason"].append(error["reason"] if error else "")
            out["tokenizer"].append(tokenizer_name(self.model, self.config))
        return pa.table(out)


def reconstruct_ray(config: ReconstructConfig, todo: list[Task], result: ReconstructResult) -> str:
    """Run ``todo`` on the Ray cluster (``config.ray_address``, else RAY_ADDRESS or a local one); fills
    ``result``; returns the tokenizer's name."""
    import ray
    from tqdm import tqdm

    if config.bundle and not storage.is_remote(config.bundle):  # actors may run in another directory
        config = ReconstructConfig(**{**asdict(config), "bundle": os.path.abspath(config.bundle)})
    if not storage.is_remote(config.output):
        config = ReconstructConfig(**{**asdict(config), "output": os.path.abspath(config.output)})
    if not ray.is_initialized():
        ray.init(address=config.ray_address, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # one bar: files done, with ETA
    env = storage.storage_env()
    remote = {"runtime_env": {"env_vars": env}} if env else {}
    rows = [{"source": os.path.abspath(t.source) if not storage.is_remote(t.source) else t.source,
             "relative": t.relative} for t in todo]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    resources = {"num_gpus": gpus} if gpus else {"num_cpus": 1}
    ds = ds.map_batches(ReconstructActor, batch_size=1, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=min(config.actors, len(rows))),
                        fn_constructor_kwargs={"config": asdict(config)}, **resources, **remote)
    sources = {t.relative: t.source for t in todo}
    tokenizer = ""
    bar = tqdm(total=len(todo), desc="reconstruct", unit="file", dynamic_ncols=True, disable=not config.progress)
    for row in ds.iter_rows():
        tokenizer = row["tokenizer"]
        if row["reason"]:
            result.errors.append({"input": sources[row["relative"]], "output": row["relative"],
                                  "reason": row["reason"]})
        else:
            result.written.append(row["relative"])
        bar.update(1)
    bar.close()
    result.written.sort()
    return tokenizer
