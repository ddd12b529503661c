"""The OmniTokenizer loader against the release's own numbers: ``../shared/fixtures/omnitokenizer`` holds a
small checkpoint in the release layout and what the release code computed from it for a fixed input
(made outside this project with FoundationVision/OmniTokenizer; see that folder's README)."""

from __future__ import annotations

import pytest
import torch
from conftest import shared_file

from sweettok.config import PatchConfig, TeacherConfig
from sweettok.teacher.omnitokenizer import OmniConfig, OmniTokenizerTeacher, infer_arch, read_release_state

FIXTURE = "fixtures/omnitokenizer/"
TOLERANCE = 1e-5  # the release computes in float32 on CPU; its README expects agreement to ~1e-6


@pytest.fixture(scope="module")
def release():
    checkpoint = shared_file(FIXTURE + "omnitokenizer-release-layout-small.ckpt")
    outputs = torch.load(shared_file(FIXTURE + "omnitokenizer-release-outputs.pt"), weights_only=True)
    teacher = OmniTokenizerTeacher(PatchConfig(frames=5, height=32, width=32),
                                   TeacherConfig(kind="omnitokenizer", codebook_size=512, code_dim=8,
                                                 checkpoint=str(checkpoint)))
    return teacher.eval(), outputs, checkpoint


def test_architecture_is_read_off_the_release_weights(release):
    _, _, checkpoint = release
    # the fixture README states the architecture the release was run with
    assert infer_arch(read_release_state(str(checkpoint))) == OmniConfig(
        dim=64, dim_head=16, heads=4, enc_block="tw", dec_block="tt", temporal_depth=2, window_size=4,
        ff_mult=4.0, spatial_pos="rope")


@torch.no_grad()
def test_latents_codes_and_pixels_equal_the_release_outputs(release):
    teacher, ref, _ = release
    latents = teacher.encode_latents(ref["input"]).permute(0, 4, 1, 2, 3)  # (b, e, t', h', w') as the release
    torch.testing.assert_close(latents, ref["latents"], rtol=0, atol=TOLERANCE)
    assert torch.equal(teacher.encode_codes(ref["input"]), ref["codes"])
    pixels = teacher.decode_embeddings(teacher.codebook[ref["codes"]])
    torch.testing.assert_close(pixels, ref["pixels"], rtol=0, atol=TOLERANCE)


@torch.no_grad()
def test_a_single_frame_encodes_as_the_release_encodes_an_image(release):
    teacher, ref, _ = release
    latents = teacher.encode_latents(ref["input"][:, :, :1]).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(latents, ref["image_latents"], rtol=0, atol=TOLERANCE)
