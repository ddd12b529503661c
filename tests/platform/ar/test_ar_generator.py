"""The generator consumes a real token corpus: card v2 (and v1 read back), rank shards, Ray Train + DeepSpeed
training with a killed worker and a rerun, all on a corpus this module tokenizes from real video."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sweettok
from sweettok import storage
from sweettok_platform.ar.config import ArJobConfig
from sweettok_platform.ar.data import TokenShard, corpus_arrays
from sweettok_platform.ar.runner import train_generator
from sweettok_platform.core.corpus import CARD, SCHEMA_VERSION, CorpusCard
from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
from sweettok_platform.tokenize.samples import make_sample_dataset

STEPS, EVERY, CRASH_AT = 12, 4, 7  # rank 0 exits before step 7; the last checkpoint then is step 4

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def corpus(ray_cluster, tmp_path_factory: pytest.TempPathFactory, real_videos: list[Path]) -> tuple[str, str]:
    """(corpus dir, bundle dir): 2 classes x 3 real-video segments, tokenized by a tiny bundle into windows."""
    root = tmp_path_factory.mktemp("ar")
    videos = [p for p in real_videos if p.name in ("bikes.mp4", "carphone_pristine.mp4")]
    make_sample_dataset(root / "videos", videos, layout="folders", per_class=3, frames=20)
    torch.manual_seed(0)
    bundle = str(root / "bundle")
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), bundle)
    output = str(root / "corpus")
    tokenize_dataset(TokenizeJobConfig.from_dict({
        "source": {"kind": "folders", "root": str(root / "videos")}, "output": output,
        "encode": {"bundle": bundle, "batch_size": 8}, "clips": {"policy": "windows", "stride": 4},
        "files_per_shard": 3, "decode_concurrency": 1, "progress": False,
    }))
    return output, bundle


def test_card_v2_carries_what_a_generator_needs(corpus) -> None:
    output, bundle = corpus
    card = CorpusCard.load(output)
    model = sweettok.load_bundle(bundle)
    assert card.schema_version == SCHEMA_VERSION == 2
    assert (card.spatial_codebook_size, card.temporal_codebook_size) == (256, 256)
    assert (card.spatial_tokens, card.temporal_tokens) == (model.num_spatial, model.num_temporal) == (8, 16)
    assert card.label_names == {0: "Bikes", 1: "CarphonePristine"} and card.num_classes == 2
    _, ids, labels = corpus_arrays(output)
    assert ids.shape == (card.clips, 24) and set(labels.tolist()) == {0, 1}
    assert ids[:, :8].max() < card.spatial_codebook_size and ids[:, 8:].max() < card.temporal_codebook_size


def _as_v1(output: str, where: Path) -> str:
    """A copy of the corpus whose card is written as schema 1 wrote it (no sizes, no label names)."""
    shutil.copytree(output, where)
    data = json.loads((where / CARD).read_text())
    for key in ("spatial_codebook_size", "temporal_codebook_size", "label_names"):
        data.pop(key)
    data["schema_version"] = 1
    (where / CARD).write_text(json.dumps(data))
    return str(where)


def test_v1_card_still_reads_and_is_filled_from_its_bundle_and_rows(corpus, tmp_path: Path) -> None:
    output, bundle = corpus
    v2 = CorpusCard.load(output)
    v1 = CorpusCard.load(_as_v1(output, tmp_path / "v1"))
    assert v1.schema_version == 1
    assert (v1.spatial_codebook_size, v1.temporal_codebook_size, v1.label_names) == (
        v2.spatial_codebook_size, v2.temporal_codebook_size, v2.label_names)
    # the bundle gone: the sizes stay unknown, and a generator job says why instead of guessing
    data = json.loads((tmp_path / "v1" / CARD).read_text())
    data["bundle"] = str(tmp_path / "moved-away")
    (tmp_path / "v1" / CARD).write_text(json.dumps(data))
    orphan = CorpusCard.load(str(tmp_path / "v1"))
    assert orphan.spatial_codebook_size == 0 and orphan.label_names == v2.label_names
    job = ArJobConfig.from_dict({"name": "x", "storage_path": str(tmp_path / "runs"), "corpus": str(tmp_path / "v1")})
    with pytest.raises(ValueError, match="no codebook sizes"):
        job.model.build(orphan)


def test_ranks_split_the_corpus_without_duplicates(corpus) -> None:
    output, _ = corpus
    keys, _, _ = corpus_arrays(output)
    shards = [TokenShard(output, rank=r, world=3, batch_size=4, seed=r) for r in range(3)]
    seen = [set(s.keys.tolist()) for s in shards]
    assert all(len(s) == len(keys) // 3 for s in seen)
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    a = shards[0]
    first = [a.next_batch()[0] for _ in range(3)]
    a.seek(4)
    assert torch.equal(a.next_batch()[0], first[1])  # seek restores the exact position


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory: pytest.TempPathFactory):
    output, _ = corpus
    root = tmp_path_factory.mktemp("ar-run")
    config = ArJobConfig.from_dict({
        "name": "tiny", "storage_path": str(root / "runs"), "corpus": output, "log_dir": str(root / "logs"),
        "model": {"size": "tiny"}, "optim": {"steps": STEPS, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2},
        "num_workers": 2, "zero_stage": 2, "checkpoint_every": EVERY, "log_every": 4, "max_failures": 2,
        "fault": {"stage": "ar", "step": CRASH_AT, "marker": str(root / "crashed")},
    })
    return root, config, train_generator(config)


def rows(root: Path, name: str = "metrics.jsonl") -> list[dict]:
    with open(root / "logs" / name) as f:
        return [json.loads(line) for line in f]


def test_generator_loss_falls_with_throughput_per_worker(trained) -> None:
    root, config, result = trained
    r = rows(root)
    assert [x["step"] for x in r] == list(range(1, STEPS + 1))
    first, last = np.mean([x["loss"] for x in r[:3]]), np.mean([x["loss"] for x in r[-3:]])
    assert last < first - 0.5, f"loss {first:.3f} -> {last:.3f}"
    assert r[0]["loss"] == pytest.approx(np.log(256), abs=0.3)  # starts near uniform over a 256-word branch
    assert all(x["tokens_per_s_per_worker"] > 0 for x in r)
    assert storage.exists(storage.join(result.checkpoint, "weights.safetensors"))


def test_killed_worker_resumes_without_repeating_checkpointed_steps(trained) -> None:
    root, config, _ = trained
    assert (root / "crashed").exists(), "the fault was never injected"
    last = (CRASH_AT - 1) // EVERY * EVERY
    r = rows(root)
    assert [x["attempt"] for x in r] == [0] * last + [1] * (STEPS - last)
    executed = rows(root, "executed.jsonl")
    assert [x["step"] for x in executed if x["attempt"] == 0] == list(range(1, CRASH_AT))
    assert [x["step"] for x in executed if x["attempt"] == 1] == list(range(last + 1, STEPS + 1))
    redone = {x["step"]: x["loss"] for x in executed if x["attempt"] == 0 and x["step"] > last}
    assert redone and all(x["loss"] == pytest.approx(redone[x["step"]], rel=1e-5) for x in executed
                          if x["attempt"] == 1 and x["step"] in redone)  # exact resume: same batches, same loss


def test_rerun_skips_finished_work(trained) -> None:
    root, config, result = trained
    before = rows(root, "executed.jsonl")
    config.fault = None
    assert train_generator(config) == result
    assert rows(root, "executed.jsonl") == before


def test_sample_writes_ids_videos_and_a_grid_through_the_corpus_bundle(trained, corpus, tmp_path: Path,
                                                                       capsys) -> None:
    from sweettok_platform.cli import main

    _, _, result = trained
    out = tmp_path / "samples"
    assert main(["ar", "sample", "--checkpoint", result.checkpoint, "--classes", "Bikes,1", "-n", "2",
                 "-o", str(out), "--top-k", "50", "--cfg", "2.0"]) == 0
    saved = np.load(out / "ids.npz")
    ids, labels = saved["ids"], saved["labels"]
    assert ids.shape == (4, 24) and labels.tolist() == [0, 0, 1, 1]
    assert 0 <= ids[:, :8].min() and ids[:, :8].max() < 256 and 0 <= ids[:, 8:].min() and ids[:, 8:].max() < 256
    assert len(list(out.glob("sample_*_Bikes.mp4"))) == 2 and len(list(out.glob("sample_*_CarphonePristine.mp4"))) == 2
    import imageio.v3 as iio

    grid = iio.imread(out / "grid.png")
    assert grid.shape == (4 * 32, 5 * 32, 3)  # one row of 5 decoded 32x32 frames per sample
    frames = iio.imread(next(out.glob("sample_000_*.mp4")))
    assert frames.shape[0] == 5

    # gFVD of the samples against real clips of the same classes, through `sweettok eval fvd` (I3D weights of
    # the StyleGAN-V TorchScript layout, made here: none can be downloaded)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sweettok"))
    from test_metrics_weights import scripted_detector

    i3d = scripted_detector(tmp_path / "i3d_torchscript.pt")
    real = Path(corpus[0]).parent / "videos"
    args = ["eval", "fvd", "--i3d", str(i3d), "--frames", "5", "--resolution", "32", "--real", str(real)]
    capsys.readouterr()  # what `ar sample` printed
    assert main([*args, "--fake", str(out)]) == 0
    gfvd = json.loads(capsys.readouterr().out)
    assert gfvd["fake"] == 4 and gfvd["real"] == 6 and gfvd["fvd"] > 0 and gfvd["i3d_layout"] == "torchscript"


def test_sample_refuses_a_bundle_that_did_not_make_the_corpus(trained, tmp_path: Path) -> None:
    from sweettok_platform.ar.sample import sample_videos

    _, _, result = trained
    torch.manual_seed(1)  # other weights: another content hash
    other = str(tmp_path / "other-bundle")
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), other)
    with pytest.raises(ValueError, match="tokenizer mismatch"):
        sample_videos(result.checkpoint, ["Bikes"], 1, str(tmp_path / "out"), bundle=other)
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize("name", ["ar-tiny.yaml", "ar-ucf101.yaml"])
def test_job_files_parse(name: str) -> None:
    import yaml

    config = ArJobConfig.from_dict(yaml.safe_load((Path(__file__).resolve().parents[3] / "jobs" / name).read_text()))
    assert config.optim.steps >= 200
