"""The release's stage-3 recipe as settings (issue 21): the ConvNeXt-S logit perceptual loss, the TATS-style
3-d discriminator, feature matching, the discriminator-loss weight, and the all-cells proxy cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from sweettok import SweetTokenizer, preset
from sweettok.train import CurriculumObjective, LossWeights, tiny_stages
from sweettok.train.config import StageConfig
from sweettok.train.convnext import ConvNeXtConfig, ConvNeXtLogitsLoss, ConvNeXtSmall
from sweettok.train.discriminator import DiscriminatorConfig, Tats3dDiscriminator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def clips(b: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, 5, 32, 32, generator=g) - 0.5  # (b, c, t, h, w), tiny preset


def stage(index: int, **changes) -> StageConfig:
    data = {**tiny_stages()[index].to_dict(), "steps": 3, **changes}
    loss = data.pop("loss")
    return StageConfig(**data, loss=loss if isinstance(loss, LossWeights) else LossWeights(**loss))


def test_convnext_small_has_torchvisions_layout_and_parameter_count():
    net = ConvNeXtSmall()
    # torchvision.models.convnext_small: 50,223,688 parameters (its documented num_params)
    assert sum(p.numel() for p in net.parameters()) == 50_223_688
    state = net.state_dict()
    for key, shape in {"features.0.0.weight": (96, 3, 4, 4), "features.0.1.weight": (96,),
                       "features.1.0.block.0.weight": (96, 1, 7, 7), "features.1.0.block.2.weight": (96,),
                       "features.1.0.block.3.weight": (384, 96), "features.1.0.block.5.weight": (96, 384),
                       "features.1.0.layer_scale": (96, 1, 1), "features.2.0.weight": (96,),
                       "features.2.1.weight": (192, 96, 2, 2), "features.5.26.block.5.weight": (384, 1536),
                       "features.7.2.layer_scale": (768, 1, 1), "classifier.0.weight": (768,),
                       "classifier.2.weight": (1000, 768)}.items():
        assert tuple(state[key].shape) == shape, key
    assert len(net.features) == 8 and len(net.features[5]) == 27


def test_convnext_weights_load_strictly_and_the_loss_compares_logits(tmp_path):
    torch.manual_seed(0)
    source = ConvNeXtSmall()
    path = tmp_path / "convnext_small.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loss = ConvNeXtLogitsLoss(ConvNeXtConfig(weights=str(path), size=64))
    torch.testing.assert_close(loss.net.state_dict()["classifier.2.weight"], source.state_dict()["classifier.2.weight"])
    x, y = clips(seed=1), clips(seed=2)
    assert torch.equal(loss(x, x), torch.zeros(2))
    d = loss(x, y)
    assert d.shape == (2,) and bool((d > 0).all())
    # one frame: the MSE of the two logit vectors, computed here from the network directly
    a, b = x[:1, :, 0], y[:1, :, 0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def logits(z: torch.Tensor) -> torch.Tensor:
        z = F.interpolate(z + 0.5, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        return source((z - mean) / std)

    torch.testing.assert_close(loss(a, b), (logits(a) - logits(b)).pow(2).mean(1), rtol=1e-4, atol=1e-6)
    broken = {k: v for k, v in source.state_dict().items() if k != "classifier.2.bias"}
    save_file({k: v.contiguous() for k, v in broken.items()}, str(tmp_path / "broken.safetensors"))
    with pytest.raises(RuntimeError, match="classifier.2.bias"):
        ConvNeXtLogitsLoss(ConvNeXtConfig(weights=str(tmp_path / "broken.safetensors")))


def test_convnext_perceptual_term_moves_the_stage3_loss_and_refuses_without_weights():
    cfg = stage(3, perceptual="convnext_logits", disc_start=100,
                loss=LossWeights(ce=0.0, vq=0.0, mse=1.0, lpips=0.5))
    with pytest.raises(ValueError, match="convnext_weights"):
        CurriculumObjective([cfg])  # no weights given: refused, never a silent random network
    torch.manual_seed(0)
    model = SweetTokenizer(preset("tiny"))
    objective = CurriculumObjective([cfg], convnext=ConvNeXtConfig(weights=None, size=32))  # explicit: random
    assert objective.lpips is None and objective.convnext is not None
    x = clips()
    torch.manual_seed(1)
    out = objective.compute(model, x, 3, step=0)
    assert out.metrics["convnext"] > 0 and "lpips" not in out.metrics
    assert abs(out.metrics["loss"] - (out.metrics["mse"] + 0.5 * out.metrics["convnext"])) < 1e-5


def test_a_training_job_with_convnext_and_no_weights_fails_before_workers_start(tmp_path):
    from sweettok_platform.train.config import TrainJobConfig
    from sweettok_platform.train.runner import check_perceptual_trunk

    job = TrainJobConfig.from_dict({"name": "t", "storage_path": str(tmp_path), "stages": ["stage3"],
                                    "model": {"preset": "small"},
                                    "stage_overrides": {"stage3": {"perceptual": "convnext_logits",
                                                                   "loss": {"lpips": 0.1}}}})
    stages = job.stage_configs()
    with pytest.raises(ValueError, match="convnext_weights is not set"):
        check_perceptual_trunk(job, "small", stages)
    missing = TrainJobConfig.from_dict({**job.to_dict(), "convnext_weights": str(tmp_path / "none.pt")})
    with pytest.raises(ValueError, match="convnext_weights: no such local file"):
        check_perceptual_trunk(missing, "small", stages)


@pytest.mark.parametrize("frames", [5, 1])
def test_tats3d_discriminator_strides_time_and_returns_its_features(frames):
    torch.manual_seed(0)
    disc = Tats3dDiscriminator(DiscriminatorConfig(kind="tats3d", width=16, layers=3))
    x = torch.rand(2, 3, frames, 32, 32) - 0.5
    logits, feats = disc.forward_features(x)
    assert len(feats) == 3 + 1  # every group's output but the logits'
    assert feats[0].shape[2] == (frames + 4 - 4) // 2 + 1  # strided in time (4x4x4, stride 2, padding 2)
    assert feats[1].shape[2] < feats[0].shape[2] or frames == 1
    assert logits.shape[:2] == (2, 1) and torch.equal(disc(x), logits)
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in disc.modules())
    assert "lecam_ema" in disc.state_dict()


def test_feature_matching_and_disc_weight_enter_the_losses():
    base = dict(perceptual="lpips_vgg", disc_start=0, discriminator="tats3d", disc_width=8, disc_layers=2)
    fm = stage(3, **base, loss=LossWeights(ce=0.0, vq=0.0, mse=1.0, gan=0.01, feature_matching=0.04, disc=0.01))
    torch.manual_seed(0)
    model = SweetTokenizer(preset("tiny"))
    objective = CurriculumObjective([fm])
    assert isinstance(objective.discriminator, Tats3dDiscriminator)
    x = clips()
    out = objective.compute(model, x, 3, step=0)
    assert out.metrics["feature_matching"] > 0
    expected = out.metrics["mse"] + 0.01 * out.metrics["gan"] + 0.04 * out.metrics["feature_matching"]
    assert abs(out.metrics["loss"] - expected) < 1e-5
    # the discriminator's loss scales with loss.disc (same weights, same inputs, BatchNorm in train mode)
    plain = CurriculumObjective([stage(3, **base, loss=LossWeights(ce=0.0, vq=0.0, mse=1.0, gan=0.01))])
    plain.discriminator.load_state_dict(objective.discriminator.state_dict())
    fake = out.reconstruction
    scaled, _ = objective.discriminator_loss(x, fake, step=0)
    whole, _ = plain.discriminator_loss(x, fake, step=0)
    assert float(whole.detach()) > 0 and abs(float(scaled.detach()) - 0.01 * float(whole.detach())) < 1e-6


def test_all_cells_mean_cross_entropy_is_one_mean_over_the_canvas():
    torch.manual_seed(0)
    model = SweetTokenizer(preset("tiny"))
    x = clips()
    per_branch = CurriculumObjective([stage(2)]).compute(model, x, 2, step=0)
    all_cells = CurriculumObjective([stage(2, ce_reduction="all_cells_mean")]).compute(model, x, 2, step=0)
    # outside reference: torch's cross-entropy over every cell of the teacher's code grid at once
    with torch.no_grad():
        targets = model.teacher.encode_codes(x)
        logits = model(x).logits.float()
        reference = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    assert abs(all_cells.metrics["ce"] - float(reference)) < 1e-5
    spatial, temporal = per_branch.metrics["ce_spatial"], per_branch.metrics["ce_temporal"]
    assert abs(per_branch.metrics["ce"] - (spatial + temporal)) < 1e-5
    cells_t = targets[:, 1:].numel() / targets[:, :1].numel()  # temporal cells per spatial cell
    assert abs(all_cells.metrics["ce"] - (spatial + cells_t * temporal) / (1 + cells_t)) < 1e-4


@pytest.mark.parametrize("key,value", [("perceptual", "vgg19"), ("discriminator", "stylegan"),
                                       ("ce_reduction", "sum")])
def test_bad_recipe_values_name_their_key(key, value):
    with pytest.raises(ValueError, match=key):
        stage(3, **{key: value})
