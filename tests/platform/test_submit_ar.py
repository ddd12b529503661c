"""The generator's jobs through ``sweettok submit``, as a user runs them from a project directory against a real
``ray start --head`` cluster (the session's ``local_cluster``; token authentication on): a corpus tokenized with
the shipped bundle, ``ar train`` on it, then ``ar sample`` of the checkpoint, every spec with relative paths.
Checks: the checkpoints and logs land under the submitter's directory (nothing under the cluster's temp dirs,
where Ray unpacks a job's working dir), and sampling decodes with the bundle the corpus card records
(``package://...``, resolved by the sampling job's own installation, its hash checked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

STEPS, EVERY = 4, 2

pytestmark = pytest.mark.timeout(900)


def _submit(project: Path, spec: str, head: str) -> str:
    out = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "submit", spec, "--address", head,
                          "--follow"], capture_output=True, text=True, timeout=600, cwd=project)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_ar_train_and_sample_run_as_submitted_and_write_to_the_submitters_directory(local_cluster, tmp_path):
    from sweettok_platform.core.corpus import CorpusCard
    from sweettok_platform.core.bundles import default_bundle

    head = local_cluster.dashboard
    project = tmp_path / "project"
    shutil.copytree(REPO / "jobs" / "data" / "ucf-tiny", project / "ucf")
    # the corpus: the shipped bundle (no preset), one centre clip per file
    spec = yaml.safe_load((REPO / "jobs" / "tokenize-local-tiny.yaml").read_text())
    spec["source"]["root"], spec["output"] = "ucf", "corpus"
    del spec["encode"]["preset"]
    spec["clips"] = {"policy": "center"}
    (project / "tokenize.yaml").write_text(yaml.safe_dump(spec))
    _submit(project, "tokenize.yaml", head)
    card = CorpusCard.load(str(project / "corpus"))
    assert card.bundle == "package://sweettok_platform/bundles/" + Path(default_bundle()).name, card.bundle
    assert card.num_classes == 3 and card.clips == 6

    # ar train: the committed tiny spec, shortened; relative storage_path, corpus, and the default log_dir
    ar = yaml.safe_load((REPO / "jobs" / "ar-tiny.yaml").read_text())
    ar.update(storage_path="store", corpus="corpus", num_workers=2, checkpoint_every=EVERY, log_every=1)
    ar.pop("log_dir")
    ar["optim"].update(steps=STEPS, batch_size=4, warmup_steps=1)
    (project / "ar.yaml").write_text(yaml.safe_dump(ar))
    text = _submit(project, "ar.yaml", head)
    run = project / "store" / "tiny-ar"
    final = json.loads((run / "final.json").read_text())
    assert final["steps"] == STEPS, final
    assert Path(final["checkpoint"]) == run / f"step_{STEPS:08d}" and Path(final["checkpoint"]).is_dir()
    assert sorted(p.name for p in run.glob("step_*")) == [f"step_{s:08d}" for s in range(EVERY, STEPS + 1, EVERY)]
    assert (project / "runs" / "tiny-ar" / "metrics.jsonl").is_file(), sorted(project.rglob("*"))[:40]
    assert json.loads(text[text.rindex('{"job"'):].splitlines()[0])["checkpoint"] == final["checkpoint"]
    # no checkpoint, run record or log landed under the cluster's temp dirs (the job's working dir, or Ray
    # Train's own staging dirs, session_*/artifacts/<run>, which hold only Ray's bookkeeping)
    leaked = [p for p in local_cluster.root.rglob("*") if p.name.startswith("step_0")
              or p.name in ("final.json", "generator.json", "metrics.jsonl", "executed.jsonl", "corpus.json")]
    assert not leaked, leaked

    # ar sample from the checkpoint: the bundle comes from the corpus record, resolved in the job
    sample = {"checkpoint": f"store/tiny-ar/step_{STEPS:08d}", "classes": [0, card.label_names[1]], "n": 1,
              "top_k": 50, "output": "samples"}
    (project / "sample.yaml").write_text(yaml.safe_dump(sample))
    _submit(project, "sample.yaml", head)
    summary = json.loads((project / "samples" / "samples.json").read_text())
    assert summary["tokenizer"] == card.tokenizer
    assert summary["classes"] == [card.label_names[0], card.label_names[1]]
    assert len(list((project / "samples").glob("sample_*.mp4"))) == 2 and (project / "samples" / "grid.png").is_file()
    import numpy as np

    ids = np.load(project / "samples" / "ids.npz")["ids"]
    assert ids.shape == (2, card.spatial_tokens + card.temporal_tokens)

    # the same record read here, locally: the package name resolves to this installation's bundle and the
    # hash matches; a bundle with another hash is refused
    from sweettok_platform.ar.sample import load_decoder, load_generator

    _, info = load_generator(str(run / f"step_{STEPS:08d}"))
    assert info["bundle"] == card.bundle and load_decoder(info, None).bundle_hash == card.tokenizer
    other = tmp_path / "other"
    import sweettok

    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), str(other))
    with pytest.raises(ValueError, match="tokenizer mismatch"):
        load_decoder(info, str(other))
    assert os.path.isdir(project / "runs")
