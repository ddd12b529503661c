"""Running a reconstruction: ``reconstruct(ReconstructConfig(inputs=[...], output=...))`` lists the inputs,
skips finished outputs, runs the rest in this process or on a Ray actor
pool (``ray_pool``, with ``ray=True``), and writes ``reconstruct.json`` (settings, tokenizer, written, skipped,
per-file errors) into the output folder."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from typing import Any, Callable, Iterable

from sweettok import storage
from sweettok_platform.reconstruct.files import (ReconstructConfig, ReconstructResult, Reconstructor, Task,
                                                 list_tasks, load_model, reconstruct_one, tokenizer_name)

REPORT = "reconstruct.json"
LARGE = 200  # files from which the in-process run suggests --ray


def reconstruct(config: ReconstructConfig, log: Callable[[str], None] = print) -> ReconstructResult:
    """Reconstruct every input file not yet in ``config.output``; writes ``reconstruct.json`` (settings,
    tokenizer, written/skipped counts, per-file errors) there and returns the same."""
    began = time.monotonic()
    tasks, errors = list_tasks(config.inputs, config.video_format)
    result = ReconstructResult(errors=errors)
    todo = []
    for task in tasks:
        if storage.exists(storage.join(config.output, *task.relative.split("/"))):
            result.skipped.append(task.relative)
        else:
            todo.append(task)
    log(f"reconstruct: {len(tasks)} files, {len(result.skipped)} already done, {len(todo)} to do -> {config.output}")
    if not config.ray and len(todo) >= LARGE:
        log(f"reconstruct: {len(todo)} files in this process; --ray spreads them over a Ray actor pool")
    if config.ray and todo:
        from sweettok_platform.reconstruct.ray_pool import reconstruct_ray

        result.tokenizer = reconstruct_ray(config, todo, result)
    else:
        model = load_model(config)
        result.tokenizer = tokenizer_name(model, config)
        run = Reconstructor(model, video_format=config.video_format, batch_size=config.batch_size)
        run_local(run, todo, config, result)
    result.seconds = round(time.monotonic() - began, 3)
    write_report(config, result)
    log(f"reconstruct: {len(result.written)} written, {len(result.skipped)} skipped, {len(result.errors)} errors "
        f"in {result.seconds:.1f} s")
    return result


def run_local(run: Reconstructor, todo: list[Task], config: ReconstructConfig, result: ReconstructResult) -> None:
    """The files one after the other in this process (an mp4 is encoded by its ffmpeg process while the next
    windows run through the model)."""
    for task in _progress(todo, config.progress):
        error = reconstruct_one(run, task, config.output)
        (result.written.append(task.relative) if error is None else result.errors.append(error))


def _progress(tasks: list[Task], enabled: bool) -> Iterable[Task]:
    """Files with a progress bar (count, rate, elapsed and ETA) on stderr."""
    if not enabled:
        return tasks
    from tqdm import tqdm

    return tqdm(tasks, desc="reconstruct", unit="file", dynamic_ncols=True)


def write_report(config: ReconstructConfig, result: ReconstructResult) -> None:
    report: dict[str, Any] = {"settings": {k: v for k, v in asdict(config).items() if k != "progress"},
                              **asdict(result)}
    data = json.dumps(report, indent=1).encode()
    if storage.is_remote(config.output):
        storage.write_bytes(storage.join(config.output, REPORT), data)
    else:
        os.makedirs(config.output, exist_ok=True)
        with open(os.path.join(config.output, REPORT), "wb") as f:
            f.write(data)
