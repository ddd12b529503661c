"""The tiny SweetTokenizer trains with the language codebook in place of the learned one (stage-2 loss)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from sweettok import SweetTokenizer, from_uint8, preset
from sweettok.codebook import build_codebook, codebook_stats, language_config, read_codebook
from sweettok.patchify import to_bcthw

STEPS = 40


def real_clips(path: Path, n: int = 4) -> torch.Tensor:
    """``n`` 5-frame 32x32 clips from a real video, decoded with decord: (n, 5, 32, 32, 3) in [-0.5, 0.5]."""
    import decord

    reader = decord.VideoReader(str(path), width=32, height=32)
    starts = torch.linspace(0, len(reader) - 5, n).long().tolist()
    frames = [reader.get_batch(list(range(s, s + 5))).asnumpy() for s in starts]
    return from_uint8(torch.from_numpy(__import__("numpy").stack(frames)))


@pytest.fixture(scope="module")
def codebook_uri(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("cb") / "codebook")
    build_codebook(corpus=None, model_dir=None, output=out, max_words_per_branch=256)
    return out


def test_tiny_model_trains_with_the_language_codebook_and_its_ids_are_words(codebook_uri, real_video):
    torch.manual_seed(0)
    model = SweetTokenizer(language_config(preset("tiny"), codebook_uri))
    x = real_clips(real_video)
    with torch.no_grad():
        targets = model.teacher.encode_codes(to_bcthw(x, model.config.patch))  # (b, t', h', w') proxy codes
    params = [p for p in model.parameters() if p.requires_grad]
    assert any(p is model.quantizer.projectors["spatial"].layers[0].weight for p in params)
    optimizer = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))
    model.train()
    losses = []
    for _ in range(STEPS):
        out = model(x)
        ce = F.cross_entropy(rearrange(out.logits, "b t h w v -> (b t h w) v"), targets.flatten())
        loss = ce + out.latents.vq_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, losses

    model.eval()
    ids = model.encode(x)
    words = model.ids_to_words(ids)
    codebook = read_codebook(codebook_uri)
    spatial, temporal = set(codebook.words("spatial")), set(codebook.words("temporal"))
    for row in words:
        assert set(row[: model.num_spatial]) <= spatial and set(row[model.num_spatial :]) <= temporal
    for branch, part in (("spatial", ids[:, : model.num_spatial]), ("temporal", ids[:, model.num_spatial :])):
        stats = codebook_stats(part, model.quantizer.size(branch))
        assert 0 < stats["usage"] <= 1 and 1 <= stats["perplexity"] <= part.numel()
