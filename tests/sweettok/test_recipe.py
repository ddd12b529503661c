"""The training recipe as the paper and the release define it (issue 11): stage-3 freezing, loss weights,
LeCam, the interleaved decoder, the eq. 5 weights, no weight decay on embeddings, the flat baseline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sweettok import SweetTokenizer, preset
from sweettok.quantizer import LearnedQuantizer
from sweettok.config import QuantizerConfig
from sweettok.train import CurriculumObjective, LossWeights, paper_stages, tiny_stages
from sweettok.train.config import StageConfig, small_stages
from sweettok.train.discriminator import PatchDiscriminator
from sweettok.train.trainer import Trainer, param_groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def clips(b: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, 5, 32, 32, generator=g) - 0.5  # (b, c, t, h, w), tiny preset


def stage3(**changes) -> StageConfig:
    cfg = tiny_stages()[3]
    data = {**cfg.to_dict(), "lpips_frames": 1, "loss": LossWeights(ce=0.0, vq=0.0, mse=1.0), "steps": 3,
            "disc_start": 100, **changes}
    return StageConfig(**data)


@pytest.mark.parametrize("freeze", [True, False])
def test_stage3_freezes_everything_up_to_the_tokens(freeze):
    torch.manual_seed(0)
    model = SweetTokenizer(preset("tiny"))
    cfg = stage3(freeze_tokenizer=freeze)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, CurriculumObjective([cfg]), cfg)
    x = clips()
    for _ in range(cfg.steps):
        trainer.train_step(x)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    tokens = [k for k in before if k.startswith(("encoder.", "quantizer."))]
    assert any(k.startswith("decoder.") for k in changed) and any(k.startswith("head.") for k in changed)
    assert any(k.startswith("teacher.") for k in changed)  # the teacher's pixel decoder is fine-tuned
    assert not any(k.startswith(("teacher.codes", "teacher.enc", "teacher.to_code")) for k in changed)
    if freeze:  # the release's finetune_decoder: token ids cannot drift
        assert not changed.intersection(tokens)
        ema = trainer.ema.shadow
        assert all(torch.equal(ema[k], before[k]) for k in ema if k.startswith(("encoder.", "quantizer.")))
    else:
        assert changed.intersection(tokens)


def test_stage3_loss_weights_follow_the_release():
    for cfg in (paper_stages()[3], tiny_stages()[3], small_stages()[3]):
        assert cfg.freeze_tokenizer and cfg.loss.vq == 0.0 and cfg.loss.ce == 0.0 and cfg.loss.gan == 0.01
    # the release's ReconstructionLoss_Stage2 as its code runs: MSE x4, LeCam commented out, feature matching
    # 4 x 0.01 per layer, discriminator loss x0.01, ConvNeXt-S logits perceptual 0.1, the TATS 3-d discriminator
    paper = paper_stages()[3]
    assert (paper.loss.mse, paper.loss.lecam, paper.loss.feature_matching, paper.loss.disc) == (4.0, 0.0, 0.04, 0.01)
    assert (paper.loss.lpips, paper.perceptual, paper.discriminator) == (0.1, "convnext_logits", "tats3d")
    assert (paper.disc_width, paper.disc_layers, paper.lpips_frames) == (64, 3, 1)
    # the CPU presets keep their measured MSE weight; the small study's LeCam follows the release (0)
    assert (small_stages()[3].loss.mse, small_stages()[3].loss.lecam) == (1.0, 0.0)
    assert (tiny_stages()[3].loss.mse, tiny_stages()[3].loss.lecam) == (1.0, 0.001)


def test_lecam_regulariser_matches_its_formula_and_tracks_the_logit_means():
    torch.manual_seed(0)
    disc = PatchDiscriminator()
    disc.lecam_ema.copy_(torch.tensor([0.5, -0.25]))
    real, fake = torch.tensor([1.0, 0.0, -1.0]), torch.tensor([0.0, 1.0, 2.0])
    reg = disc.lecam(real, fake, decay=0.9)
    # relu(real - ema_fake)^2: (1.25^2, 0.25^2, 0) ; relu(ema_real - fake)^2: (0.5^2, 0, 0)
    expected = (1.25**2 + 0.25**2) / 3 + 0.5**2 / 3
    assert abs(float(reg) - expected) < 1e-6
    torch.testing.assert_close(disc.lecam_ema, torch.tensor([0.9 * 0.5 + 0.1 * 0.0, 0.9 * -0.25 + 0.1 * 1.0]))
    assert "lecam_ema" in disc.state_dict()  # resumes with the discriminator


def test_discriminator_loss_adds_the_weighted_lecam_term():
    cfg = stage3(disc_start=0, loss=LossWeights(ce=0.0, vq=0.0, mse=1.0, gan=0.01, lecam=0.5))
    objective = CurriculumObjective([cfg])
    x, y = clips(seed=1), clips(seed=2)
    ema = objective.discriminator.lecam_ema.clone()
    loss, metrics = objective.discriminator_loss(x, y, step=0)
    objective.discriminator.lecam_ema.copy_(ema)
    no_lecam = CurriculumObjective([stage3(disc_start=0, loss=LossWeights(mse=1.0, gan=0.01, vq=0.0, ce=0.0))])
    no_lecam.discriminator.load_state_dict(objective.discriminator.state_dict())
    plain, _ = no_lecam.discriminator_loss(x, y, step=0)
    assert abs(float(loss.detach()) - (float(plain.detach()) + 0.5 * metrics["lecam"])) < 1e-5 and metrics["lecam"] > 0


def test_interleaved_decoder_mixes_positions_after_the_temporal_step():
    x = clips(1)
    for layout, mixes in (("interleaved", True), ("two_step", False)):
        torch.manual_seed(0)
        # 2 temporal blocks: in the interleaved layout the first runs after spatial layer 0, so layer 1 mixes
        model = SweetTokenizer(preset("tiny", {"decoder": {"layout": layout, "temporal_layers": 2}})).eval()
        ids = model.encode(x)
        other = ids.clone()
        n_s = model.num_spatial
        other[0, n_s + 5] = (other[0, n_s + 5] + 1) % model.quantizer.size("temporal")  # position 5's temporal id
        with torch.no_grad():
            a = model.code_logits(model.quantizer.embed(ids[:, :n_s], "spatial"),
                                  model.quantizer.embed(ids[:, n_s:], "temporal"))
            b = model.code_logits(model.quantizer.embed(other[:, :n_s], "spatial"),
                                  model.quantizer.embed(other[:, n_s:], "temporal"))
        diff = (a - b).abs().amax(dim=(0, 1, 4)).flatten()  # per position of the 4x4 grid
        assert diff[5] > 0
        others = torch.cat([diff[:5], diff[6:]])
        assert bool((others > 1e-6).any()) == mixes, (layout, others)


def test_quantizer_loss_weights_commitment_and_codebook_terms_separately():
    config = QuantizerConfig(latent_dim=4, spatial_size=8, temporal_size=8, l2_normalize=False,
                             beta=1.0, codebook_weight=0.25)
    torch.manual_seed(0)
    q = LearnedQuantizer(config)
    z = torch.randn(2, 3, 4, requires_grad=True)
    out = q.quantize(z, "spatial")
    codes = q.spatial[out.ids].detach()
    mse = F.mse_loss(z.detach(), codes)
    assert abs(float(out.loss) - 1.25 * float(mse)) < 1e-6
    out.loss.backward()
    n = z.numel()
    torch.testing.assert_close(z.grad, 1.0 * 2 * (z.detach() - codes) / n)  # commitment: weight 1 (release)
    code_grad = torch.zeros_like(q.spatial).index_add_(0, out.ids.flatten(), (0.25 * 2 * (codes - z.detach()) / n).reshape(-1, 4))
    torch.testing.assert_close(q.spatial.grad, code_grad)  # codebook term: weight 0.25 (release)


def test_no_weight_decay_on_biases_norms_queries_canvas_and_positions():
    model = SweetTokenizer(preset("tiny"))
    params = [p for n, p in model.named_parameters() if not n.startswith("teacher.")]
    decay, no_decay = param_groups(model, params, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in no_decay["params"]}
    for name in ("encoder.queries_s", "encoder.queries_t", "encoder.pos_s", "decoder.canvas", "decoder.pos_time",
                 "decoder.pos_latent_s", "encoder.spatial.source.0.norm1.weight", "head.proj.bias"):
        assert name in skipped, name
    assert all(p.ndim >= 2 for p in decay["params"])
    assert "head.proj.weight" in {names[id(p)] for p in decay["params"]}
    trainer = Trainer(model, CurriculumObjective([tiny_stages()[2]]), tiny_stages()[2])
    groups = trainer.optimizer.param_groups
    assert len(groups) == 2 and sorted(g["weight_decay"] for g in groups) == [0.0, tiny_stages()[2].weight_decay]


@pytest.mark.parametrize("b", [1, 3])
def test_flat_baseline_keeps_the_token_layout_and_the_decode_invariant(b):
    torch.manual_seed(0)
    model = SweetTokenizer(preset("tiny", {"architecture": "flat"})).eval()
    x = clips(b)
    ids = model.encode(x)
    assert ids.shape == (b, model.num_spatial + model.num_temporal)
    latents = model.quantize(x)
    torch.testing.assert_close(model.decode_ids(ids), model.decode(latents.zq_s, latents.zq_t))
    assert model.encode(x[:, :, :1]).shape == (b, model.num_spatial)  # an image: spatial tokens only
    # not decoupled: the first frame alone changes the temporal tokens' latents too
    y = x.clone()
    y[:, :, 0] = -y[:, :, 0]
    assert not torch.allclose(model.quantize(y).zq_t, latents.zq_t)
