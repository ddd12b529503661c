"""The SweetTokenizer model core: shapes, token layout, round trips, bad input."""

from __future__ import annotations

import pytest
import torch

from sweettok import ClipError, SweetTokenizer, preset
from sweettok.config import PAPER_ABLATION, TokenizerConfig


@pytest.fixture(scope="module")
def tiny() -> SweetTokenizer:
    torch.manual_seed(0)
    return SweetTokenizer(preset("tiny")).eval()


def clip(b: int, t: int, cfg: TokenizerConfig, layout: str = "bthwc") -> torch.Tensor:
    p = cfg.patch
    g = torch.Generator().manual_seed(b * 100 + t)
    x = torch.rand(b, t, p.height, p.width, p.channels, generator=g) - 0.5
    return x if layout == "bthwc" else x.permute(0, 4, 1, 2, 3)


def test_paper_preset_needs_the_language_codebook_and_the_omnitokenizer_teacher(tmp_path):
    cfg = preset("paper")
    assert (cfg.quantizer.kind, cfg.teacher.kind) == ("language", "omnitokenizer")
    with pytest.raises(ValueError, match="needs teacher.checkpoint"):
        SweetTokenizer(cfg)
    no_codebook = preset("paper", {"teacher": {"checkpoint": str(tmp_path / "omnitokenizer.ckpt")}})
    with pytest.raises(ValueError, match="needs quantizer.codebook"):
        SweetTokenizer(no_codebook)


def test_paper_preset_on_meta_device():
    cfg = preset("paper", PAPER_ABLATION)  # the paper's geometry, buildable with no downloaded weights
    with torch.device("meta"):
        model = SweetTokenizer(cfg)
        x = torch.empty(2, 17, 256, 256, 3)
        latents = model.quantize(x)
        logits = model.code_logits(latents.zq_s, latents.zq_t)
    assert (model.num_spatial, model.num_temporal) == (256, 1024)
    assert latents.ids.shape == (2, 1280)
    assert logits.shape == (2, 5, 32, 32, 8192)  # the OmniTokenizer code grid for 17x256x256
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("teacher."))
    print(f"paper preset: {params / 1e6:.1f} M parameters (without teacher)")
    assert 150e6 < params < 250e6
    assert model.encoder.spatial.source[0].attn.heads == 8 and len(model.encoder.spatial.source) == 8
    assert len(model.encoder.temporal.source) == 4 and len(model.decoder.temporal.source) == 4


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("frames", [1, 5])
def test_decode_ids_of_encode_equals_decode_of_latents(tiny, batch, frames):
    x = clip(batch, frames, tiny.config)
    with torch.no_grad():
        latents = tiny.quantize(x)
        direct = tiny.decode(latents.zq_s, latents.zq_t)
    ids = tiny.encode(x)
    expected_tokens = tiny.num_spatial + (tiny.num_temporal if frames > 1 else 0)
    assert ids.shape == (batch, expected_tokens) and ids.dtype == torch.long
    assert torch.equal(ids, latents.ids)
    pixels = tiny.decode_ids(ids)
    assert pixels.shape == (batch, 3, frames, 32, 32)
    assert torch.equal(pixels, direct)


def test_batch_rows_are_independent(tiny):
    """Row i of a batch encodes and decodes as if alone (the authors' release pairs codes wrongly for b > 1)."""
    x = clip(3, 5, tiny.config)
    ids = tiny.encode(x)
    for i in range(3):
        assert torch.equal(tiny.encode(x[i : i + 1]), ids[i : i + 1])
        assert torch.allclose(tiny.decode_ids(ids[i : i + 1]), tiny.decode_ids(ids)[i : i + 1], atol=1e-5)


def test_both_layouts_give_the_same_ids(tiny):
    a = clip(2, 5, tiny.config, "bthwc")
    assert torch.equal(tiny.encode(a), tiny.encode(a.permute(0, 4, 1, 2, 3)))


def test_video_ids_start_with_the_image_ids_of_the_first_frame(tiny):
    x = clip(2, 5, tiny.config)
    assert torch.equal(tiny.encode(x)[:, : tiny.num_spatial], tiny.encode(x[:, :1]))


def test_forward_returns_what_the_losses_need(tiny):
    x = clip(2, 5, tiny.config)
    out = tiny.train()(x, pixels=True)
    tiny.eval()
    assert out.logits.shape == (2, 2, 4, 4, tiny.config.teacher.codebook_size)
    assert out.pixels.shape == (2, 3, 5, 32, 32)
    assert out.latents.vq_loss.ndim == 0 and out.latents.vq_loss.requires_grad
    out.logits.sum().backward()
    assert tiny.encoder.queries_t.grad is not None and tiny.encoder.queries_s.grad is not None
    tiny.zero_grad(set_to_none=True)


def test_teacher_grid_matches_canvas(tiny):
    x = clip(2, 5, tiny.config).permute(0, 4, 1, 2, 3)
    assert tiny.teacher.encode_codes(x).shape == (2, 2, 4, 4)


def test_ids_to_words(tiny):
    ids = tiny.encode(clip(2, 5, tiny.config))
    words = tiny.ids_to_words(ids)
    assert len(words) == 2 and len(words[0]) == tiny.num_spatial + tiny.num_temporal
    assert words[0][0] == f"s{int(ids[0, 0])}" and words[0][-1] == f"t{int(ids[0, -1])}"


@pytest.mark.parametrize(
    "shape,dtype,match",
    [
        ((1, 4, 32, 32, 3), torch.float32, "1 \\+ 4\\*k frames"),
        ((1, 9, 32, 32, 3), torch.float32, "takes 1 frame .* or 5 frames"),
        ((1, 5, 30, 32, 3), torch.float32, "not divisible by the patch"),
        ((1, 5, 64, 64, 3), torch.float32, "expected frames of 32x32"),
        ((1, 5, 32, 32, 4), torch.float32, "3 channels"),
        ((1, 5, 32, 32, 3), torch.uint8, "floating-point pixels"),
        ((5, 32, 32), torch.float32, "5-d clip"),
    ],
)
def test_bad_clips_raise_clear_errors(tiny, shape, dtype, match):
    with pytest.raises(ClipError, match=match):
        tiny.encode(torch.zeros(shape, dtype=dtype))


@pytest.mark.parametrize(
    "ids,match",
    [
        (torch.zeros(1, 10, dtype=torch.long), "expected 8 \\(image\\) or 24 \\(video\\) ids"),
        (torch.full((1, 24), 256, dtype=torch.long), "spatial ids out of range"),
        (torch.cat([torch.zeros(1, 8), torch.full((1, 16), -1)], 1).long(), "temporal ids out of range"),
        (torch.zeros(1, 24), "integer ids"),
        (torch.zeros(24, dtype=torch.long), "shape \\(batch, tokens\\)"),
    ],
)
def test_bad_ids_raise_clear_errors(tiny, ids, match):
    with pytest.raises(ClipError, match=match):
        tiny.decode_ids(ids)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_the_same_weights_give_the_same_tokens_and_pixels_on_cuda(tiny):
    x = clip(2, tiny.config.patch.frames, tiny.config, "bcthw")
    with torch.no_grad():
        ids = tiny.encode(x)
        pixels = tiny.decode_ids(ids)
        gpu = SweetTokenizer(tiny.config).cuda().eval()
        gpu.load_state_dict(tiny.state_dict())
        gpu_ids = gpu.encode(x.cuda()).cpu()
        gpu_pixels = gpu.decode_ids(ids.cuda()).cpu()
    assert (gpu_ids == ids).float().mean() > 0.99  # nearest-code ties may break differently in TF32
    torch.testing.assert_close(gpu_pixels, pixels, atol=2e-3, rtol=0)
