"""Training job checks that run before any worker starts, the job config, and the sharded clip loader."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from sweettok_platform.train import TrainJobConfig, check_job, run_curriculum
from sweettok_platform.train.data import dataset_files, list_clips, worker_loader


def job(tmp_path, paths, **extra) -> TrainJobConfig:
    settings = dict(
        name="t", storage_path=str(tmp_path / "store"), log_dir=str(tmp_path / "logs"),
        dataset=dict(source=dict(paths=[str(p) for p in paths]), max_clips=8, cache_dir=str(tmp_path / "cache")),
    )
    settings.update(extra)
    return TrainJobConfig.from_dict(settings)


def assert_nothing_started(tmp_path) -> None:
    assert not (tmp_path / "store").exists(), "a run directory was created: workers started"


def test_stage_without_previous_checkpoint_fails_before_workers(tmp_path, real_videos):
    config = job(tmp_path, real_videos, stages=["stage2", "stage3"])
    with pytest.raises(FileNotFoundError, match="stage2 starts from stage1's final checkpoint, but stage1 has not"):
        run_curriculum(config)
    assert_nothing_started(tmp_path)


def test_missing_teacher_checkpoint_fails_before_workers(tmp_path, real_videos):
    missing = tmp_path / "omnitokenizer.ckpt"
    model = {"preset": "tiny", "overrides": {"teacher": {"kind": "omnitokenizer", "checkpoint": str(missing)}}}
    config = job(tmp_path, real_videos, model=model, stages=["stage1"])
    with pytest.raises(FileNotFoundError, match=f"teacher checkpoint does not exist: {missing}"):
        run_curriculum(config)
    assert_nothing_started(tmp_path)


def test_pretrained_teacher_with_stage0_is_rejected(tmp_path, real_videos):
    ckpt = tmp_path / "omni.ckpt"
    ckpt.write_bytes(b"x")
    model = {"preset": "tiny", "overrides": {"teacher": {"kind": "omnitokenizer", "checkpoint": str(ckpt)}}}
    with pytest.raises(ValueError, match="stage0 trains the project's VQ teacher"):
        check_job(job(tmp_path, real_videos, model=model))


def test_missing_dataset_fails_before_workers(tmp_path):
    config = job(tmp_path, [tmp_path / "no-such-videos"])
    with pytest.raises(FileNotFoundError, match="source path does not exist: .*no-such-videos"):
        run_curriculum(config)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a video")
    with pytest.raises(FileNotFoundError, match="holds no video or image files"):
        check_job(job(tmp_path, [tmp_path / "notes"]))
    assert_nothing_started(tmp_path)


def test_too_few_clips_for_the_workers(tmp_path, real_video):
    with pytest.raises(ValueError, match="yields 1 5-frame clips, fewer than num_workers=2"):
        check_job(job(tmp_path, [real_video], dataset=dict(source=dict(paths=[str(real_video)]), max_clips=1)))


@pytest.mark.parametrize("bad, message", [
    ({"zero_stage": 3}, "ZeRO-3 is not supported"),
    ({"precision": "fp16"}, "precision fp16 needs use_gpu: true"),
    ({"stages": ["stage2", "stage1"]}, "in curriculum order"),
    ({"stage_overrides": {"stage9": {}}}, "unknown stages"),
    ({"num_wrkers": 2}, "num_wrkers: unknown setting; TrainJobConfig takes"),
    ({"num_workers": "two"}, "num_workers: expected an integer, got 'two'"),
    ({"stage_overrides": {"stage1": {"lr": "fast"}}}, "stage_overrides.stage1.lr: expected a number, got 'fast'"),
    ({"stage_overrides": {"stage1": {"lrr": 1}}}, "stage_overrides.stage1.lrr: unknown setting"),
])
def test_config_errors(tmp_path, real_videos, bad, message):
    with pytest.raises(ValueError, match=message):
        job(tmp_path, real_videos, **bad)


def test_set_values_from_the_command_line_are_coerced_before_any_worker(tmp_path, real_videos):
    config = job(tmp_path, real_videos, num_workers="2", stage_overrides={"stage1": {"lr": "1e-4", "steps": "1e2"}})
    assert config.num_workers == 2 and config.stage_configs()["stage1"].lr == 1e-4
    assert config.stage_configs()["stage1"].steps == 100


def test_stage_overrides_and_precision(tmp_path, real_videos):
    config = job(tmp_path, real_videos, stage_overrides={"stage2": {"steps": 7, "loss": {"vq": 0.5}}},
                 checkpoint_every=3)
    stages = config.stage_configs()
    assert stages["stage2"].steps == 7 and stages["stage2"].loss.vq == 0.5 and stages["stage2"].loss.ce == 1.0
    assert all(s.checkpoint_every == 3 for s in stages.values())
    assert config.precision_for(stages["stage3"]) == "fp32"  # CPU
    gpu = job(tmp_path, real_videos, use_gpu=True, stage_preset="paper")
    assert gpu.precision_for(gpu.stage_configs()["stage1"]) == "fp16"
    assert gpu.precision_for(gpu.stage_configs()["stage3"]) == "bf16"


def test_loader_shards_are_disjoint_and_resume_exactly(tmp_path, real_videos):
    dataset = job(tmp_path, real_videos).dataset
    files = dataset_files(dataset)
    refs = list_clips(files, 5, 5, max_clips=8)
    assert len(refs) == 8 and len({r.path for r in refs}) == len(real_videos)  # the cap spreads over files
    kw = dict(frames=5, height=32, width=32, images=False, batch_size=3, world=2, seed=1)
    a, b = worker_loader(dataset, rank=0, **kw), worker_loader(dataset, rank=1, **kw)
    assert len(a) == len(b) == 4
    first = a.next_batch()
    assert first.shape == (3, 3, 5, 32, 32) and first.min() >= -0.5 and first.max() <= 0.5
    assert not set(a.refs) & set(b.refs) and len(set(a.refs) | set(b.refs)) == 8
    batches = [a.next_batch() for _ in range(3)]  # crosses epoch boundaries (4 clips, batch 3)
    again = worker_loader(dataset, rank=0, **kw)  # from the cache this time
    again.seek(3)
    for expected in batches:
        assert torch.equal(again.next_batch(), expected)
    streamed = worker_loader(dataset.__class__(**{**dataset.__dict__, "cache_dir": None}), rank=0, **kw)
    streamed.seek(3)  # decoded on demand, no cache: the same pixels
    for expected in batches:
        assert torch.equal(streamed.next_batch(), expected)
    images = worker_loader(dataset, rank=0, **{**kw, "images": True})
    assert images.next_batch().shape == (3, 3, 1, 32, 32)


def test_cache_writes_of_the_same_clip_from_many_threads_all_succeed(tmp_path, real_video):
    """Two decode threads of one loader can decode the same clip at once (it ends one batch and starts the
    next across an epoch boundary); each write must land, and every read gives the same pixels."""
    from concurrent.futures import ThreadPoolExecutor

    from sweettok_platform.train.data import ClipDecoder, ClipRef

    ref = ClipRef(path=str(real_video), start=0, frames=5)
    expected = ClipDecoder(None, 32, 32, "crop")(ref)
    for round_ in range(5):  # a fresh cache each round: every thread decodes and writes
        decoder = ClipDecoder(str(tmp_path / f"cache{round_}"), 32, 32, "crop")
        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(decoder, [ref] * 16))
        assert all(np.array_equal(out, expected) for out in outs)
        assert [p.name for p in (tmp_path / f"cache{round_}").iterdir() if "tmp" in p.name] == []


def test_cli_help_and_readable_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--stage" in r.stdout and "storage_path" in r.stdout
    spec = tmp_path / "job.yaml"
    spec.write_text(f"name: t\nstorage_path: {tmp_path / 'store'}\ndataset:\n  source:\n    paths: [{tmp_path / 'missing'}]\n")
    r = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "train", "--config", str(spec), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"sweettok train: error: source path does not exist: {tmp_path / 'missing'}"


def test_job_specs_parse(monkeypatch, tmp_path):

    repo = REPO
    monkeypatch.chdir(repo)
    import yaml

    paper = TrainJobConfig.from_dict(yaml.safe_load((repo / "jobs/train-curriculum-paper.yaml").read_text()))
    assert paper.use_gpu and paper.zero_stage == 2 and paper.storage_path.startswith("s3://")
    assert paper.stage_configs()["stage1"].steps == 1_000_000 and paper.model.build().teacher.kind == "omnitokenizer"
    spec = yaml.safe_load((repo / "jobs/train-curriculum-tiny.yaml").read_text())
    tiny = TrainJobConfig.from_dict({**spec, "storage_path": str(tmp_path / "store")})  # the index goes here
    plans = check_job(tiny.with_absolute_paths())  # its dataset resolves from the repo root
    assert [p.stage.name for p in plans] == ["stage0", "stage1", "stage2", "stage3"]


def test_job_specs_read_only_inputs_the_checkout_ships():
    """Every local input a job spec names exists in a clean checkout (not in .venv, not made by a demo), so the
    spec runs as submitted: ``sweettok submit`` and ``ray job submit --working-dir .`` upload tracked files."""

    import yaml

    repo = REPO
    checked = 0
    for path in sorted((repo / "jobs").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        inputs = [spec.get("source", {}).get(k) for k in ("root", "manifest")]
        inputs += spec.get("dataset", {}).get("source", {}).get("paths", [])
        for entry in (e for e in inputs if e and "://" not in e and not e.startswith("/")):
            assert ".venv" not in entry and "demo_out" not in entry, f"{path.name}: {entry}"
            assert list(repo.glob(entry)), f"{path.name}: {entry} is not in the checkout"
            checked += 1
    assert checked >= 3  # the tiny tokenize, eval and training specs


def test_deepspeed_config_follows_the_job(tmp_path, real_videos):
    from sweettok_platform.train.loop import deepspeed_config

    config = job(tmp_path, real_videos, use_gpu=True, stage_preset="paper", zero_stage=1)
    stage = config.stage_configs()["stage3"]
    ds = deepspeed_config(stage, zero_stage=config.zero_stage, precision=config.precision_for(stage), lr=stage.lr)
    assert ds["zero_optimization"] == {"stage": 1} and ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    assert ds["train_micro_batch_size_per_gpu"] == 12 and ds["optimizer"]["params"]["betas"] == [0.9, 0.999]
    assert ds["gradient_clipping"] == stage.grad_clip


def test_latest_committed_skips_incomplete_checkpoints(tmp_path):
    from sweettok_platform.core.raytrain import checkpoint as ck

    stage_uri = str(tmp_path / "run-stage1")
    assert ck.latest_committed(stage_uri, 2) is None  # nothing there yet
    for step, ranks in ((4, (0, 1)), (8, (0, 1)), (12, (0,))):  # step 12: rank 1 never finished its upload
        for rank in ranks:
            ck.mark_committed(stage_uri, step, rank)
    found = ck.latest_committed(stage_uri, 2)
    assert found == str(tmp_path / "run-stage1" / "step_00000008") and ck.checkpoint_step(found) == 8
    assert ck.checkpoint_step(ck.latest_committed(stage_uri, 1)) == 12


def test_perceptual_loss_without_trunk_weights_fails_before_workers_outside_tiny(tmp_path, real_videos):
    import yaml

    spec = yaml.safe_load(open("jobs/train-curriculum-paper.yaml"))
    assert spec.pop("convnext_weights")  # the paper job names its perceptual net's weights; without them:
    with pytest.raises(ValueError, match="stage3 has perceptual=convnext_logits .* but convnext_weights is not set"):
        check_job(TrainJobConfig.from_dict(spec))
    small = job(tmp_path, real_videos, model={"preset": "small"}, stage_preset="small",
                stage_overrides={"stage3": {"loss": {"lpips": 0.1}}})
    with pytest.raises(ValueError, match="stage_overrides.stage3.loss.lpips=0"):
        run_curriculum(small)
    assert_nothing_started(tmp_path)
    weights = tmp_path / "vgg16.pth"
    weights.write_bytes(b"")
    check_job(job(tmp_path, real_videos, model={"preset": "small"}, stage_preset="small", stages=["stage0"],
                  lpips_vgg_weights=str(weights), stage_overrides={"stage3": {"loss": {"lpips": 0.1}}}))
    check_job(job(tmp_path, real_videos, stages=["stage0"]))  # tiny: the demo's random trunk is allowed


def test_train_cli_check_reports_a_missing_perceptual_trunk(tmp_path):
    import yaml

    spec = yaml.safe_load(open("jobs/train-curriculum-paper.yaml"))
    spec.pop("convnext_weights")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    out = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "train", "--config",
                          str(tmp_path / "job.yaml"), "--check"], capture_output=True, text=True)
    assert out.returncode == 1 and "convnext_weights is not set" in out.stderr


def test_loader_crops_and_flips_are_seeded_per_sample_so_resume_sees_the_same_batches():
    import numpy as np

    from sweettok_platform.train.data import ShardedClipLoader

    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, (5, 40, 40, 3), dtype=np.uint8) for _ in range(3)]
    loader = ShardedClipLoader([0, 1, 2], clips.__getitem__, batch_size=4, seed=7, size=(32, 32), flip=True)
    batches = [loader.next_batch() for _ in range(3)]
    assert batches[0].shape == (4, 3, 5, 32, 32)
    again = ShardedClipLoader([0, 1, 2], clips.__getitem__, batch_size=4, seed=7, size=(32, 32), flip=True)
    again.seek(4)
    assert torch.equal(again.next_batch(), batches[1])
    # the same clip appears in several batches (3 clips, 12 samples) with different windows
    windows = {tuple(b[i].flatten()[:16].tolist()) for b in batches for i in range(4)}
    assert len(windows) > 3
    flat = ShardedClipLoader([0, 1, 2], clips.__getitem__, batch_size=3, seed=7, threads=0)
    assert flat.next_batch().shape == (3, 3, 5, 40, 40)  # no augmentation: the clips as cached


def test_init_prefix_takes_only_the_teacher_from_a_shared_checkpoint():
    from sweettok import SweetTokenizer, preset
    from sweettok_platform.train.loop import load_init

    torch.manual_seed(0)
    teacher_run = SweetTokenizer(preset("tiny"))
    torch.manual_seed(1)
    flat = SweetTokenizer(preset("tiny", {"architecture": "flat"}))
    before = {k: v.clone() for k, v in flat.state_dict().items()}
    load_init(flat, teacher_run.state_dict(), "teacher.")
    after = flat.state_dict()
    assert all(torch.equal(after[k], teacher_run.state_dict()[k]) for k in after if k.startswith("teacher."))
    assert all(torch.equal(after[k], before[k]) for k in after if not k.startswith("teacher."))
    with pytest.raises(RuntimeError):
        load_init(flat, teacher_run.state_dict(), None)  # whole-model init: architectures differ
    with pytest.raises(ValueError, match="init_prefix 'decoder.'"):
        load_init(flat, {k: v for k, v in teacher_run.state_dict().items() if k.startswith("teacher.")}, "decoder.")


def test_dataset_index_counts_from_headers_is_stored_once_and_follows_file_changes(tmp_path, real_videos, caplog):
    import decord

    from sweettok_platform.train import index as dataset_index

    videos = tmp_path / "videos"
    videos.mkdir()
    for v in real_videos:
        (videos / v.name).write_bytes(v.read_bytes())
    (videos / "broken.mp4").write_bytes(b"\0" * 64)
    config = job(tmp_path, [videos], stages=["stage0"])
    plans = check_job(config)
    files = dataset_files(config.dataset)
    stored = dataset_index.read(plans[0].dataset_index)
    assert stored.paths == files and stored.uri.startswith(config.index_uri())
    for path, frames, fps in zip(stored.paths, stored.frames, stored.table.column("fps").to_pylist()):
        if path.endswith("broken.mp4"):
            assert frames == 0  # unreadable: left out of every clip list
            continue
        reader = decord.VideoReader(path)
        assert frames == len(reader) and abs(fps - reader.get_avg_fps()) < 1e-3
    assert stored.unreadable == 1
    assert all(ref.path in files and not ref.path.endswith("broken.mp4")
               for ref in clips_from_index_of(stored))

    caplog.set_level("INFO", logger="sweettok.train")
    caplog.clear()
    check_job(config)
    assert "(reused)" in caplog.text and "indexed" not in caplog.text  # a rerun opens no file to count
    caplog.clear()
    (videos / "broken.mp4").write_bytes((videos / real_videos[0].name).read_bytes())  # the dataset changed
    again = dataset_index.read(check_job(config)[0].dataset_index)
    assert "indexed 5 files" in caplog.text and again.uri != stored.uri and again.unreadable == 0


def test_a_clip_cap_limits_the_files_opened(tmp_path, real_videos):
    config = job(tmp_path, real_videos, stages=["stage0"],
                 dataset=dict(source=dict(paths=[str(p) for p in real_videos]), max_clips=2))
    from sweettok_platform.train import index as dataset_index

    index = dataset_index.read(check_job(config)[0].dataset_index)
    files = dataset_files(config.dataset)
    assert index.paths == [files[0], files[-1]]  # two files, spread over the listing, and only they were probed


def clips_from_index_of(index):
    from sweettok_platform.train.data import clips_from_index

    return clips_from_index(index, 5, 5)


def test_dataset_index_with_ray_data_matches_the_local_build(ray_cluster, real_videos, tmp_path):
    from sweettok_platform.train import index as dataset_index

    files = [str(v) for v in real_videos] + [str(tmp_path / "missing.mp4")]
    (tmp_path / "missing.mp4").write_bytes(b"not a video")
    assert dataset_index.build(files, parallel=True).equals(dataset_index.build(files, parallel=False))


def test_helper_processes_decode_the_same_pixels_as_decord_in_process(real_videos):
    """The default path (decode helpers, reading forward and seeking back in one open file) against decord's
    ``get_batch`` in this process, on clips in an order that jumps back and forth within and across files."""
    from sweettok_platform.train.data import ClipDecoder, ClipRef

    inline, helper = ClipDecoder(None, 32, 48, "crop"), ClipDecoder(None, 32, 48, "crop", helper=True)
    try:
        for video in real_videos:
            for start in (0, 9, 3, 20, 4):
                ref = ClipRef(path=str(video), start=start, frames=5)
                assert np.array_equal(helper(ref), inline(ref)), (video.name, start)
    finally:
        helper.close()


def test_a_clip_the_helper_cannot_decode_names_the_file_and_close_stops_the_helpers(tmp_path, real_video):
    from sweettok_platform.core.media import MediaError
    from sweettok_platform.train.data import ClipDecoder, ClipRef

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(real_video.read_bytes()[:4000])  # changed after the index was built: truncated
    decoder = ClipDecoder(None, 32, 32, "squash", helper=True)
    assert decoder(ClipRef(path=str(real_video), start=0, frames=5)).shape == (5, 32, 32, 3)
    with pytest.raises(MediaError, match=r"training clip .*broken\.mp4 frames 0\.\.4"):
        decoder(ClipRef(path=str(broken), start=0, frames=5))
    assert decoder(ClipRef(path=str(real_video), start=5, frames=5)).shape == (5, 32, 32, 3)  # goes on
    procs = [helper._proc for helper in decoder._helpers]
    assert procs and all(p is not None and p.poll() is None for p in procs)
    decoder.close()
    assert all(p.poll() is not None for p in procs)  # no helper left running
