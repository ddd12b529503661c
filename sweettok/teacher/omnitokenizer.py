"""OmniTokenizer (Wang et al. 2024) as a SweetTokenizer teacher, loadable from the public checkpoints.

Written from the public release's module layout (FoundationVision/OmniTokenizer), so that its Lightning
checkpoints (``state_dict`` keys ``encoder.*``, ``decoder.*``, ``codebook.*``, ``pre_vq_conv.*``,
``post_vq_conv.*``; discriminator and LPIPS keys are dropped) load strictly. The default ``OmniConfig`` is
the released video tokenizer: linear patch embedding 8x8 (first frame) and 4x8x8 (later frames), 4
spatial blocks ``ttww`` (global attention with 2-d RoPE, then 8x8 window attention) and 4 causal
temporal blocks in the encoder, ``tttt`` + 4 causal temporal blocks in the decoder, width 512, 8 heads,
an 8192 x 8 l2-normalised codebook: a 17x256x256 clip -> a 5x32x32 code grid.

Behaviour follows what the release computes with torch >= 2.1 (its scaled_dot_product_attention path):
cosine-similarity attention with learned q/k scales and temperature 8, queries from the normalised
input but keys and values from the raw input (``context_norm`` is unused without context), no
relative-position bias in global attention (its parameters exist in the checkpoint but are unused),
causal masking in time, and the release's PEG (depth-wise 3x3x3 convolution) that reshapes its input to
(b, t, h, w) in memory order.
Covered: patch_embed 'linear', blocks 't' and 'w', spatial_pos 'rope' or 'rel', VQ (not the VAE
variant). Not covered: 'cnn'/'pixelshuffle' embeddings, pooling/upsampling blocks, deferred pooling.

Letters: b batch, c channels, t frames (t' code frames), h/w grid, d width, e code dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import Tensor, nn

from sweettok.config import PatchConfig, TeacherConfig
from sweettok.quantizer import nearest
from sweettok.safe_load import RELEASE_GLOBALS, load_torch_file
from sweettok.teacher.base import Teacher

# checkpoint prefixes that belong to training only (GAN, perceptual loss)
DROPPED_PREFIXES = ("image_discriminator.", "video_discriminator.", "perceptual_model.", "video_perceptual_model.")
# the release's ``codebook`` submodule is ``code_table`` here (``codebook`` is the Teacher's tensor property)
RENAMES = {"codebook.": "code_table."}


@dataclass(kw_only=True)
class OmniConfig:
    """Architecture of an OmniTokenizer VQ model (defaults: the released video tokenizer)."""

    dim: int = 512
    dim_head: int = 64
    heads: int = 8
    enc_block: str = "ttww"
    dec_block: str = "tttt"
    temporal_depth: int = 4
    window_size: int = 8
    ff_mult: float = 4.0
    causal_temporal: bool = True
    causal_peg: bool = True
    spatial_pos: str = "rope"  # "rope" | "rel"
    l2_code: bool = True

    def __post_init__(self) -> None:
        for name in ("enc_block", "dec_block"):
            bad = set(getattr(self, name)) - {"t", "w"}
            if bad:
                raise ValueError(f"OmniConfig.{name}: only 't' and 'w' blocks are implemented, got {sorted(bad)}")
        if self.spatial_pos not in ("rope", "rel"):
            raise ValueError(f"OmniConfig.spatial_pos must be 'rope' or 'rel', got {self.spatial_pos!r}")


def infer_arch(state: dict[str, Tensor]) -> OmniConfig:
    """Read an ``OmniConfig`` off a release state dict's key names and shapes.

    Width, head size and count, block strings, temporal depth, window size, feed-forward ratio and the
    spatial position scheme are visible in the weights; causality and l2 codes are not (release defaults).
    """
    def blocks(prefix: str) -> str:
        layers = sorted({int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)})
        if layers != list(range(len(layers))) or not layers:
            raise ValueError(f"checkpoint has no complete {prefix}* layers")
        return "".join("w" if f"{prefix}{i}.1.qkv.weight" in state else "t" for i in range(len(layers)))

    try:
        dim = state["encoder.to_patch_emb.2.weight"].shape[0]
        enc = blocks("encoder.enc_spatial_transformer.layers.")
        dec = blocks("decoder.dec_spatial_transformer.layers.")
        temporal = blocks("encoder.enc_temporal_transformer.layers.")
        t0 = "encoder.enc_temporal_transformer.layers.0."
        dim_head = state[t0 + "1.q_scale"].shape[0]
        heads = state[t0 + "1.to_q.weight"].shape[0] // dim_head
        inner = state[t0 + "3.4.weight"].shape[1]
    except KeyError as e:
        raise ValueError(f"not an OmniTokenizer checkpoint: key {e} is missing") from e
    mult = next((m for m in (4.0, round((inner + 0.5) * 1.5 / dim, 3)) if int(m * (2 / 3) * dim) == inner),
                (inner + 0.5) * 1.5 / dim)
    window = 8
    if "w" in enc + dec:
        prefix = "encoder.enc_spatial_transformer.layers." if "w" in enc else "decoder.dec_spatial_transformer.layers."
        i = (enc if "w" in enc else dec).index("w")
        window = (math.isqrt(state[f"{prefix}{i}.1.relative_position_bias_table"].shape[0]) + 1) // 2
    first_t = "encoder.enc_spatial_transformer.layers." + str(enc.index("t")) + ".1." if "t" in enc else None
    rel = first_t is not None and f"{first_t}spatial_rel_pos_bias.net.0.0.weight" in state
    return OmniConfig(dim=dim, dim_head=dim_head, heads=heads, enc_block=enc, dec_block=dec,
                      temporal_depth=len(temporal), window_size=window, ff_mult=mult,
                      spatial_pos="rel" if rel else "rope")


class OmniLayerNorm(nn.Module):
    """LayerNorm with a learned gain and a fixed (buffer) zero bias, as in the release."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta: Tensor
        self.register_buffer("beta", torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta)


class PEG(nn.Module):
    """Position-encoding generator: depth-wise 3x3x3 convolution over (t, h, w)."""

    def __init__(self, dim: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.dsconv = nn.Conv3d(dim, dim, 3, groups=dim)

    def forward(self, x: Tensor, shape: tuple[int, int, int, int]) -> Tensor:
        # x: (n, l, d) in any token order; viewed as (b, t, h, w, d) in memory order, like the release
        y = rearrange(x.reshape(*shape, -1), "b t h w d -> b d t h w")
        y = F.pad(y, (1, 1, 1, 1, *((2, 0) if self.causal else (1, 1))))
        y = rearrange(self.dsconv(y), "b d t h w -> b t h w d")
        return y.reshape(x.shape)


class ContinuousPositionBias(nn.Module):
    """The release's relative-position MLP (2 -> d -> d -> heads); present in checkpoints, unused here."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([
            nn.Sequential(nn.Linear(2, dim), nn.LeakyReLU(0.1)),
            nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.1)),
            nn.Linear(dim, heads),
        ])


def rope_2d(q: Tensor, n: int) -> Tensor:
    """2-d rotary embedding on (b, heads, n, dh): pairs (2i, 2i+1) rotate by x (even i) / y (odd i) angles."""
    dh = q.shape[-1]
    side = int(math.sqrt(n))
    pos = torch.arange(n, device=q.device)
    freqs = 1.0 / (10000 ** (torch.arange(0, dh, 4, device=q.device)[: dh // 4].float() / dh))  # (dh/4,)
    angles = torch.stack([torch.outer(pos % side, freqs), torch.outer(pos // side, freqs)], dim=-1)
    angles = angles.reshape(n, dh // 2)  # [x f0, y f0, x f1, y f1, ...]
    cos, sin = angles.cos(), angles.sin()
    pairs = q.float().reshape(*q.shape[:-1], dh // 2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return out.flatten(-2).type_as(q)


class Attention(nn.Module):
    """Cosine-similarity multi-head self-attention (temperature 8, learned q/k scales)."""

    def __init__(self, dim: int, dim_head: int, heads: int, causal: bool, spatial_pos: str) -> None:
        super().__init__()
        self.heads, self.causal, self.spatial_pos = heads, causal, spatial_pos
        inner = dim_head * heads
        if spatial_pos == "rel":
            self.spatial_rel_pos_bias = ContinuousPositionBias(dim, heads)
        self.norm = OmniLayerNorm(dim)
        self.context_norm = OmniLayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.q_scale = nn.Parameter(torch.ones(dim_head))
        self.k_scale = nn.Parameter(torch.ones(dim_head))
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: Tensor, is_spatial: bool) -> Tensor:
        # x: (n, l, d) -> (n, l, d)
        # as in the release: queries read the normalised input, keys/values the raw input
        k, v = self.to_kv(x).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "n l (h e) -> n h l e", h=self.heads) for t in (self.to_q(self.norm(x)), k, v))
        if self.spatial_pos == "rope" and is_spatial:
            q, k = rope_2d(q, x.shape[1]), rope_2d(k, x.shape[1])
        q = F.normalize(q, dim=-1) * self.q_scale
        k = F.normalize(k, dim=-1) * self.k_scale
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=8.0)
        return self.to_out(rearrange(out, "n h l e -> n l (h e)"))


class WindowAttention(nn.Module):
    """Swin-style attention inside non-overlapping w x w windows with a relative-position bias table."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.norm = OmniLayerNorm(dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # (w², w², 2)
        self.relative_position_index: Tensor
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        # x: (n, h*w, d) with a square grid
        n, length, d = x.shape
        side, w = int(math.sqrt(length)), self.window
        if side % w:
            raise ValueError(f"OmniTokenizer window attention: grid {side}x{side} not divisible by window {w}")
        x = rearrange(self.norm(x), "n (y i x j) d -> (n y x) (i j) d", y=side // w, i=w, j=w)
        q, k, v = rearrange(self.qkv(x), "m l (s h e) -> s m h l e", s=3, h=self.heads)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = rearrange(bias, "(i j) h -> h i j", i=w * w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        out = self.proj(rearrange(out, "m h l e -> m l (h e)"))
        return rearrange(out, "(n y x) (i j) d -> n (y i x j) d", n=n, y=side // w, i=w)


class GEGLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * x


def feed_forward(dim: int, mult: float) -> nn.Sequential:
    inner = int(mult * (2 / 3) * dim)
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, inner * 2, bias=False),
        GEGLU(),
        nn.Identity(),  # the release's dropout slot (index 3)
        nn.Linear(inner, dim, bias=False),
    )


def _layer(*modules: nn.Module | None) -> nn.ModuleList:
    """One release layer; ``None`` slots (no PEG, no cross-attention) keep the release's numbering."""
    return nn.ModuleList(modules)  # type: ignore[arg-type]  # ModuleList stores None entries as absent


class OmniTransformer(nn.Module):
    """Blocks ``[PEG | None, attention, None (no cross-attention), feed-forward]`` and a final norm."""

    def __init__(self, cfg: OmniConfig, block: str, causal: bool, spatial_pos: str) -> None:
        super().__init__()
        layers: list[nn.ModuleList] = []  # None entries keep the release's layer numbering
        for kind in block:
            if kind == "t":
                layers.append(_layer(
                    PEG(cfg.dim, cfg.causal_peg),
                    Attention(cfg.dim, cfg.dim_head, cfg.heads, causal, spatial_pos),
                    None,
                    feed_forward(cfg.dim, cfg.ff_mult),
                ))
            else:
                layers.append(_layer(
                    None, WindowAttention(cfg.dim, cfg.window_size, cfg.heads), None, feed_forward(cfg.dim, cfg.ff_mult)
                ))
        self.layers = nn.ModuleList(layers)
        self.norm_out = OmniLayerNorm(cfg.dim)

    def forward(self, x: Tensor, shape: tuple[int, int, int, int], is_spatial: bool) -> Tensor:
        for layer in self.layers:
            peg, attn, _, ff = cast(nn.ModuleList, layer)  # iterating yields the None slots too
            if peg is not None:
                x = peg(x, shape) + x
            x = (attn(x, is_spatial) if isinstance(attn, Attention) else attn(x)) + x
            x = ff(x) + x
        return self.norm_out(x)


class OmniEncoder(nn.Module):
    """Clip (b, c, t, h, w) -> features (b, d, t', h', w')."""

    def __init__(self, patch: PatchConfig, cfg: OmniConfig) -> None:
        super().__init__()
        c, pt, ph, pw, d = patch.channels, patch.p_t, patch.p_h, patch.p_w, cfg.dim
        self.to_patch_emb_first_frame = nn.Sequential(
            Rearrange("b c 1 (h p1) (w p2) -> b 1 h w (c p1 p2)", p1=ph, p2=pw),
            nn.LayerNorm(c * ph * pw), nn.Linear(c * ph * pw, d), nn.LayerNorm(d),
        )
        self.to_patch_emb = nn.Sequential(
            Rearrange("b c (t pt) (h p1) (w p2) -> b t h w (c pt p1 p2)", pt=pt, p1=ph, p2=pw),
            nn.LayerNorm(c * pt * ph * pw), nn.Linear(c * pt * ph * pw, d), nn.LayerNorm(d),
        )
        self.enc_spatial_transformer = OmniTransformer(cfg, cfg.enc_block, False, cfg.spatial_pos)
        self.enc_temporal_transformer = OmniTransformer(cfg, "t" * cfg.temporal_depth, cfg.causal_temporal, "rel")

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.to_patch_emb_first_frame(x[:, :, :1])
        if x.shape[2] > 1:
            tokens = torch.cat([tokens, self.to_patch_emb(x[:, :, 1:])], dim=1)  # (b, t', h, w, d)
        b, t, h, w, _ = tokens.shape
        y = self.enc_spatial_transformer(rearrange(tokens, "b t h w d -> (b t) (h w) d"), (b, t, h, w), True)
        y = rearrange(y, "(b t) (h w) d -> (b h w) t d", b=b, h=h)
        y = self.enc_temporal_transformer(y, (b, t, h, w), False)
        return rearrange(y, "(b h w) t d -> b d t h w", b=b, h=h)


class OmniDecoder(nn.Module):
    """Features (b, d, t', h', w') -> clip (b, c, t, h, w): time first, then space, then pixels."""

    def __init__(self, patch: PatchConfig, cfg: OmniConfig) -> None:
        super().__init__()
        c, pt, ph, pw, d = patch.channels, patch.p_t, patch.p_h, patch.p_w, cfg.dim
        self.dec_spatial_transformer = OmniTransformer(cfg, cfg.dec_block, False, cfg.spatial_pos)
        self.dec_temporal_transformer = OmniTransformer(cfg, "t" * cfg.temporal_depth, cfg.causal_temporal, "rel")
        self.to_pixels_first_frame = nn.Sequential(
            nn.Linear(d, c * ph * pw), Rearrange("b 1 h w (c p1 p2) -> b c 1 (h p1) (w p2)", p1=ph, p2=pw)
        )
        self.to_pixels = nn.Sequential(
            nn.Linear(d, c * pt * ph * pw),
            Rearrange("b t h w (c pt p1 p2) -> b c (t pt) (h p1) (w p2)", pt=pt, p1=ph, p2=pw),
        )

    def forward(self, z: Tensor) -> Tensor:
        b, _, t, h, w = z.shape
        y = self.dec_temporal_transformer(rearrange(z, "b d t h w -> (b h w) t d"), (b, t, h, w), False)
        y = rearrange(y, "(b h w) t d -> (b t) (h w) d", b=b, h=h)
        y = rearrange(self.dec_spatial_transformer(y, (b, t, h, w), True), "(b t) (h w) d -> b t h w d", b=b, h=h)
        pixels = self.to_pixels_first_frame(y[:, :1])
        if t > 1:
            pixels = torch.cat([pixels, self.to_pixels(y[:, 1:])], dim=2)
        return pixels


class CodeTable(nn.Module):
    """The release's EMA codebook, as buffers (``embeddings`` (n, e) plus its running statistics)."""

    def __init__(self, n_codes: int, dim: int) -> None:
        super().__init__()
        self.embeddings: Tensor
        self.register_buffer("embeddings", torch.randn(n_codes, dim))
        self.register_buffer("N", torch.zeros(n_codes))
        self.register_buffer("z_avg", self.embeddings.clone())
        self.register_buffer("codebook_usage", torch.zeros(n_codes))


def _channel_linear(d_in: int, d_out: int) -> nn.Sequential:
    # (b, c, t, h, w) -> (b, c', t, h, w), a per-cell linear map as the release writes it
    return nn.Sequential(
        Rearrange("b c t h w -> b t h w c"), nn.Linear(d_in, d_out), Rearrange("b t h w c -> b c t h w")
    )


class OmniTokenizerTeacher(Teacher):
    """OmniTokenizer's encoder + codebook (proxy codes) and decoder (pixels) behind the Teacher interface.

    ``config.checkpoint`` (a path) is loaded strictly at construction, its architecture read off the
    weights unless ``arch`` is given; ``None`` builds ``arch`` (default: the release) with random weights,
    e.g. when a bundle's state dict is loaded afterwards.
    """

    def __init__(self, patch: PatchConfig, config: TeacherConfig, arch: OmniConfig | None = None) -> None:
        super().__init__()
        state = None
        if config.checkpoint is not None:
            state = read_release_state(config.checkpoint)
            arch = arch or infer_arch(state)
            codes = state.get("codebook.embeddings")
            if codes is not None and tuple(codes.shape) != (config.codebook_size, config.code_dim):
                raise ValueError(
                    f"{config.checkpoint}: codebook is {tuple(codes.shape)}, but the teacher config says "
                    f"codebook_size={config.codebook_size}, code_dim={config.code_dim}"
                )
        self.patch, self.config, self.arch = patch, config, arch or OmniConfig()
        d = self.arch.dim
        self.encoder = OmniEncoder(patch, self.arch)
        self.decoder = OmniDecoder(patch, self.arch)
        self.code_table = CodeTable(config.codebook_size, config.code_dim)
        self.pre_vq_conv = _channel_linear(d, config.code_dim)
        self.post_vq_conv = _channel_linear(config.code_dim, d)
        if state is not None and config.checkpoint is not None:
            self.load_release_state(state, config.checkpoint)

    @property
    def codebook(self) -> Tensor:
        return self.code_table.embeddings

    def encode_latents(self, x: Tensor) -> Tensor:
        """Pixels (b, c, t, h, w) -> pre-quantization latents (b, t', h', w', e) (l2-normalised)."""
        z = rearrange(self.pre_vq_conv(self.encoder(x)), "b e t h w -> b t h w e")
        return F.normalize(z, dim=-1) if self.arch.l2_code else z

    def encode_codes(self, x: Tensor) -> Tensor:
        return nearest(self.encode_latents(x), self.codebook)

    def decode_embeddings(self, e: Tensor) -> Tensor:
        return self.decoder(self.post_vq_conv(rearrange(e, "b t h w e -> b e t h w")))

    def pixel_decoder_parameters(self) -> list[nn.Parameter]:
        """``post_vq_conv`` and the decoder (what stage 3 may fine-tune)."""
        return [*self.post_vq_conv.parameters(), *self.decoder.parameters()]

    # ---- checkpoints ---------------------------------------------------------------------------
    def release_state_dict(self) -> dict[str, Tensor]:
        """This model's weights under the release's key names."""
        return {_rename(k, reverse=True): v for k, v in self.state_dict().items()}

    def load_checkpoint(self, path: str) -> None:
        """Load a release checkpoint strictly (training-only keys dropped); readable errors on mismatch."""
        self.load_release_state(read_release_state(path), path)

    def load_release_state(self, state: dict[str, Tensor], path: str = "state dict") -> None:
        """Load release-named tensors strictly: every key present, none extra, every shape equal."""
        ours = {_rename(k): v for k, v in state.items()}
        expected = self.state_dict()
        missing = sorted(set(expected) - set(ours))
        unexpected = sorted(set(ours) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"{path} does not match the OmniTokenizer architecture ({self.arch}): "
                f"{len(missing)} missing keys (e.g. {[_rename(k, True) for k in missing[:3]]}), "
                f"{len(unexpected)} unexpected keys (e.g. {[_rename(k, True) for k in unexpected[:3]]})"
            )
        wrong = [k for k in expected if tuple(ours[k].shape) != tuple(expected[k].shape)]
        if wrong:
            k = wrong[0]
            raise ValueError(f"{path}: {len(wrong)} tensors have the wrong shape, e.g. {_rename(k, True)}: "
                             f"checkpoint {tuple(ours[k].shape)}, model {tuple(expected[k].shape)}")
        self.load_state_dict(ours, strict=True)


def _rename(key: str, reverse: bool = False) -> str:
    for theirs, ours in RENAMES.items():
        src, dst = (ours, theirs) if reverse else (theirs, ours)
        if key.startswith(src):
            return dst + key[len(src):]
    return key


def read_release_state(path: str) -> dict[str, Tensor]:
    """A release checkpoint (Lightning ``.ckpt`` / ``.pt`` / ``.safetensors``) -> the tokenizer's tensors."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"OmniTokenizer checkpoint not found: {path}")
    state: Any  # a file's top level: a state dict, or a Lightning checkpoint holding one
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:  # tensors + the release's allow-listed types only: never unpickles code (sweettok.safe_load)
        state = load_torch_file(path, RELEASE_GLOBALS)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
