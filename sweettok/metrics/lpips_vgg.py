"""LPIPS for evaluation: the project's plain-torch LPIPS (``sweettok.train.lpips``) with a required VGG16
trunk in the torchvision layout (``vgg16-397923af.pth``); a file of another layout is refused."""

from __future__ import annotations

from sweettok.train.lpips import LPIPS, LPIPSConfig, VGG16Features, load_vgg16_state


def load_lpips(path: str) -> LPIPS:
    """LPIPS with the VGG16 trunk weights at ``path`` (never a random trunk)."""
    try:
        state = load_vgg16_state(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # not a torch file at all
        raise ValueError(f"{path}: not a torch state dict ({type(e).__name__}); expected torchvision VGG16 weights") from e
    if not state:
        raise ValueError(f"{path}: no features.* tensors; expected a torchvision VGG16 state dict")
    expected = set(VGG16Features().state_dict())
    if set(state) != expected:
        raise ValueError(f"{path}: not a torchvision VGG16 state dict (features.N.weight/bias for the 13 convolutions): "
                         f"missing {sorted(expected - set(state))[:3]}, unexpected {sorted(set(state) - expected)[:3]}")
    return LPIPS(LPIPSConfig(vgg_weights=path))
