"""OmniTokenizer teacher: the release's checkpoint key layout, strict loading of a checkpoint made here
in that layout (training-only keys dropped), readable errors, and the 5x32x32 grid at the paper size."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch

from sweettok.config import PatchConfig, TeacherConfig, tiny
from sweettok.model import SweetTokenizer
from sweettok.teacher import build_teacher
from sweettok.teacher.omnitokenizer import OmniConfig, OmniTokenizerTeacher, infer_arch, rope_2d
from sweettok.train import CurriculumObjective, LossWeights, tiny_stages, trainable_parameters

TINY_PATCH = PatchConfig(frames=5, height=32, width=32)  # 4x8x8 patches -> a 2x4x4 code grid
SMALL = OmniConfig(dim=32, dim_head=8, heads=4, enc_block="tw", dec_block="tt", temporal_depth=1, window_size=2)

# key names read off the public release (OmniTokenizer/omnitokenizer.py, modules/attention.py, codebook.py)
RELEASE_KEYS = [
    "encoder.to_patch_emb_first_frame.1.weight", "encoder.to_patch_emb_first_frame.2.weight",
    "encoder.to_patch_emb_first_frame.3.bias", "encoder.to_patch_emb.1.weight", "encoder.to_patch_emb.2.bias",
    "encoder.enc_spatial_transformer.layers.0.0.dsconv.weight",
    "encoder.enc_spatial_transformer.layers.0.0.dsconv.bias",
    "encoder.enc_spatial_transformer.layers.0.1.norm.gamma", "encoder.enc_spatial_transformer.layers.0.1.norm.beta",
    "encoder.enc_spatial_transformer.layers.0.1.context_norm.gamma",
    "encoder.enc_spatial_transformer.layers.0.1.to_q.weight", "encoder.enc_spatial_transformer.layers.0.1.to_kv.weight",
    "encoder.enc_spatial_transformer.layers.0.1.q_scale", "encoder.enc_spatial_transformer.layers.0.1.k_scale",
    "encoder.enc_spatial_transformer.layers.0.1.to_out.weight",
    "encoder.enc_spatial_transformer.layers.0.3.0.weight", "encoder.enc_spatial_transformer.layers.0.3.1.weight",
    "encoder.enc_spatial_transformer.layers.0.3.4.weight",
    "encoder.enc_spatial_transformer.layers.1.1.relative_position_bias_table",
    "encoder.enc_spatial_transformer.layers.1.1.relative_position_index",
    "encoder.enc_spatial_transformer.layers.1.1.qkv.weight", "encoder.enc_spatial_transformer.layers.1.1.proj.bias",
    "encoder.enc_spatial_transformer.norm_out.gamma",
    "encoder.enc_temporal_transformer.layers.0.1.spatial_rel_pos_bias.net.0.0.weight",
    "encoder.enc_temporal_transformer.layers.0.1.spatial_rel_pos_bias.net.1.0.bias",
    "encoder.enc_temporal_transformer.layers.0.1.spatial_rel_pos_bias.net.2.weight",
    "decoder.dec_temporal_transformer.layers.0.0.dsconv.weight", "decoder.dec_spatial_transformer.layers.1.1.to_q.weight",
    "decoder.dec_spatial_transformer.norm_out.beta",
    "decoder.to_pixels_first_frame.0.weight", "decoder.to_pixels.0.bias",
    "codebook.embeddings", "codebook.N", "codebook.z_avg", "codebook.codebook_usage",
    "pre_vq_conv.1.weight", "pre_vq_conv.1.bias", "post_vq_conv.1.weight", "post_vq_conv.1.bias",
]
TRAINING_ONLY = {
    "image_discriminator.model0.0.weight": torch.zeros(2),
    "video_discriminator.model0.0.weight": torch.zeros(2),
    "perceptual_model.lin0.model.1.weight": torch.zeros(2),
    "perceptual_model.net.slice1.0.weight": torch.zeros(2),
}


def _teacher_config(path=None) -> TeacherConfig:
    return TeacherConfig(kind="omnitokenizer", codebook_size=64, code_dim=8, checkpoint=path)


@pytest.fixture(scope="module")
def source() -> OmniTokenizerTeacher:
    torch.manual_seed(0)
    teacher = OmniTokenizerTeacher(TINY_PATCH, _teacher_config(), SMALL)
    with torch.no_grad():  # non-trivial values everywhere, buffers included
        for t in teacher.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.2 + (1.0 if t.ndim == 1 else 0.0))
    return teacher


@pytest.fixture(scope="module")
def checkpoint(source, tmp_path_factory) -> str:
    """A Lightning-style checkpoint in the release layout, with GAN/LPIPS keys and pickled hyper-parameters."""
    path = tmp_path_factory.mktemp("omni") / "omni.ckpt"
    state = source.release_state_dict() | TRAINING_ONLY
    torch.save({"state_dict": state, "hyper_parameters": {"args": argparse.Namespace(n_codes=64)}}, path)
    return str(path)


def test_release_key_layout(source):
    keys = set(source.release_state_dict())
    missing = [k for k in RELEASE_KEYS if k not in keys]
    assert not missing, missing
    assert {k.split(".")[0] for k in keys} == {"encoder", "decoder", "codebook", "pre_vq_conv", "post_vq_conv"}


def test_paper_size_layout_and_grid_on_meta():
    with torch.device("meta"):
        teacher = OmniTokenizerTeacher(PatchConfig(), TeacherConfig(kind="omnitokenizer"))
        ids = teacher.encode_codes(torch.empty(1, 3, 17, 256, 256))
    assert tuple(ids.shape) == (1, 5, 32, 32)
    state = teacher.release_state_dict()
    assert tuple(state["codebook.embeddings"].shape) == (8192, 8)
    assert tuple(state["encoder.to_patch_emb.2.weight"].shape) == (512, 4 * 8 * 8 * 3)
    assert tuple(state["encoder.enc_spatial_transformer.layers.0.3.1.weight"].shape) == (2 * 1365, 512)
    assert tuple(state["encoder.enc_spatial_transformer.layers.2.1.relative_position_bias_table"].shape) == (225, 8)
    assert "decoder.dec_spatial_transformer.layers.3.1.to_q.weight" in state
    assert "encoder.enc_spatial_transformer.layers.0.1.spatial_rel_pos_bias.net.0.0.weight" not in state  # rope
    assert infer_arch(state) == OmniConfig()


def test_strict_load_of_a_release_checkpoint_drops_training_keys(source, checkpoint):
    teacher = OmniTokenizerTeacher(TINY_PATCH, _teacher_config(checkpoint))  # Namespace hyper-params: allow-listed
    assert teacher.arch == SMALL  # read off the weights
    for k, v in source.state_dict().items():
        assert torch.equal(teacher.state_dict()[k], v), k
    torch.manual_seed(1)
    x = torch.rand(2, 3, 5, 32, 32) - 0.5
    with torch.no_grad():
        ids = teacher.encode_codes(x)
        assert tuple(ids.shape) == (2, 2, 4, 4) and ids.max() < 64
        assert torch.equal(ids, source.encode_codes(x))
        assert tuple(teacher.encode_codes(x[:, :, :1]).shape) == (2, 1, 4, 4)  # images
        pixels = teacher.decode_codes(ids)
        assert tuple(pixels.shape) == (2, 3, 5, 32, 32)
        assert torch.allclose(pixels, source.decode_codes(ids), atol=1e-5)


def test_sweettokenizer_with_an_omnitokenizer_teacher(checkpoint):
    config = tiny()
    config = dataclasses.replace(config, teacher=_teacher_config(checkpoint))
    model = SweetTokenizer(config)
    assert isinstance(model.teacher, OmniTokenizerTeacher)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    x = torch.rand(1, 3, 5, 32, 32) - 0.5
    out = model(x, pixels=True)
    assert tuple(out.logits.shape) == (1, 2, 4, 4, 64) and tuple(out.pixels.shape) == (1, 3, 5, 32, 32)
    objective = CurriculumObjective([dataclasses.replace(s, loss=LossWeights(ce=1.0, vq=1.0)) for s in tiny_stages()])
    loss, metrics = objective.generator_loss(model, x, 2, 0)  # proxy codes from OmniTokenizer
    assert loss.requires_grad and metrics["ce_temporal"] > 0
    with pytest.raises(ValueError, match="start the curriculum at stage 1"):
        objective.generator_loss(model, x, 0, 0)
    decoder = {id(p) for p in model.teacher.pixel_decoder_parameters()}
    tuned = [p for p in trainable_parameters(model, 3, finetune_teacher_decoder=True) if id(p) in decoder]
    assert len(tuned) == len(decoder) > 0


def test_checkpoint_with_a_missing_or_misshapen_key_is_rejected(source, tmp_path):
    state = source.release_state_dict()
    dropped = dict(state)
    del dropped["encoder.enc_spatial_transformer.layers.0.1.to_q.weight"]
    path = tmp_path / "missing.pt"
    torch.save(dropped, path)
    teacher = OmniTokenizerTeacher(TINY_PATCH, _teacher_config(), SMALL)
    with pytest.raises(ValueError, match="1 missing keys.*layers.0.1.to_q.weight"):
        teacher.load_checkpoint(str(path))
    extra = state | {"encoder.something_new.weight": torch.zeros(1)}
    torch.save(extra, path)
    with pytest.raises(ValueError, match="1 unexpected keys.*something_new"):
        teacher.load_checkpoint(str(path))
    wrong = state | {"pre_vq_conv.1.bias": torch.zeros(9)}
    torch.save(wrong, path)
    with pytest.raises(ValueError, match="wrong shape.*pre_vq_conv.1.bias"):
        teacher.load_checkpoint(str(path))
    other_codes = state | {"codebook.embeddings": torch.zeros(32, 8)}
    torch.save(other_codes, path)
    with pytest.raises(ValueError, match="codebook_size=64"):
        OmniTokenizerTeacher(TINY_PATCH, _teacher_config(str(path)))


def test_missing_teacher_checkpoint_names_the_path(tmp_path):
    gone = str(tmp_path / "no" / "omnitokenizer.ckpt")
    with pytest.raises(FileNotFoundError, match="omnitokenizer.ckpt"):
        build_teacher(TINY_PATCH, _teacher_config(gone))
    with pytest.raises(FileNotFoundError, match="omnitokenizer.ckpt"):
        SweetTokenizer(dataclasses.replace(tiny(), teacher=_teacher_config(gone)))
    vq = dataclasses.replace(tiny().teacher, checkpoint=str(tmp_path / "teacher.safetensors"))
    with pytest.raises(FileNotFoundError, match="teacher.safetensors"):
        SweetTokenizer(dataclasses.replace(tiny(), teacher=vq))


def test_vq_teacher_loads_a_stage0_checkpoint(tmp_path):
    torch.manual_seed(0)
    trained = SweetTokenizer(tiny())
    path = tmp_path / "stage0.pt"
    torch.save({"model": trained.state_dict(), "step": 3}, path)  # a trainer checkpoint
    config = dataclasses.replace(tiny(), teacher=dataclasses.replace(tiny().teacher, checkpoint=str(path)))
    torch.manual_seed(1)
    model = SweetTokenizer(config)
    for k, v in trained.teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v)


def test_rope_depends_only_on_relative_offsets():
    torch.manual_seed(0)
    n, dh = 16, 8  # a 4x4 grid
    q = torch.randn(dh).expand(1, 1, n, dh)
    k = torch.randn(dh).expand(1, 1, n, dh)
    scores = (rope_2d(q, n)[0, 0] @ rope_2d(k, n)[0, 0].T)  # (n, n)
    # (0,0)->(1,1) and (1,1)->(2,2) have the same offset; (0,0)->(0,1) differs
    assert scores[0, 5] == pytest.approx(scores[5, 10].item(), abs=1e-5)
    assert scores[0, 5] != pytest.approx(scores[0, 1].item(), abs=1e-3)
