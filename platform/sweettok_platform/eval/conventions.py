"""How each metric is computed (written into eval.json), and the weight checks run before any work."""

from __future__ import annotations

from sweettok_platform.eval.config import EvalConfig

CONVENTIONS = {
    "psnr": "per frame on 8-bit pixels (the reconstruction rounded to uint8), 10*log10(255^2/MSE) over h, w, c, "
            "capped at 100 dB; averaged over the frames of a clip, then over clips",
    "ssim": "per frame on 8-bit pixels, Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, "
            "L=255, each channel, valid positions only; averaged over channels, frames of a clip, then clips",
    "floor": "the same PSNR/SSIM for a per-clip mean-colour prediction (every pixel = the clip's mean colour, "
             "8-bit), on the same clips: the floor a tokenizer must clear",
    "lpips": "LPIPS v0.1 (VGG16 trunk from the given torchvision-format weights, linear layers from the lpips "
             "wheel), per frame at the clip resolution, averaged per clip then over clips",
    "rfvd": "Frechet distance between I3D features (400-d logits, Kinetics-400 I3D) of the input clips and their "
            "reconstructions: each clip as the tokenizer sees it (its frames x height x width, e.g. 17x256x256 for "
            "the paper preset; the clip policy picks the frames), scaled to [0,1], shorter side resized to 224 "
            "bilinearly (align_corners=False, no antialias), centre-cropped to 224x224, scaled to [-1,1], as the "
            "SweetTok/OmniTokenizer evaluation (common_metrics_on_video_quality, VideoGPT and StyleGAN-V "
            "detectors); covariance unbiased (n-1); statistics merged exactly across actors",
    "rfid": "Frechet distance between Inception-v3 pool3 features (2048-d, pytorch-fid weights "
            "pt_inception-2015-12-05) of every input frame and its reconstruction: [0,1] pixels resized to 299x299 "
            "bilinearly (align_corners=False), scaled to [-1,1]; covariance unbiased (n-1)",
    "tokens_per_clip": "student tokens per clip (N_s + N_t; N_s for images); with teacher_only the teacher's "
                       "code grid t' x h' x w'",
    "codes_used": "distinct ids per branch over all scored clips",
    "usage": "codes_used / codebook size, per branch",
    "perplexity": "exp(entropy) of each branch's id histogram over all scored clips",
    "bits_per_pixel": "sum over branches of tokens * log2(codebook size), divided by frames*height*width",
}


def check_weights(config: EvalConfig, frames: int | None = None) -> None:
    """Load every given weights file once (refusing a file of the wrong layout with an error naming the
    setting) and check the clip length the I3D needs. Runs in the driver before any decoding."""
    from sweettok_platform.eval.scorer import local_weights

    checks = {"lpips_vgg": "sweettok.metrics.lpips_vgg:load_lpips", "i3d": "sweettok.metrics.i3d:load_i3d",
              "inception": "sweettok.metrics.inception:load_inception"}
    for setting, uri in config.weights().items():
        module, name = checks[setting].split(":")
        import importlib

        loader = getattr(importlib.import_module(module), name)
        try:
            net = loader(local_weights(uri))
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            raise ValueError(f"{setting}: {uri}: {str(e).splitlines()[0]}") from e
        if setting == "i3d" and frames is not None and frames < net.min_frames:
            raise ValueError(f"i3d: the {net.layout} I3D needs clips of at least {net.min_frames} frames; this "
                             f"tokenizer's clips have {frames} (rfvd cannot be computed: drop i3d)")
