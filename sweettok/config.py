"""Configuration dataclasses for every SweetTokenizer component, and the named presets.

Each component takes its own keyword-only config. ``TokenizerConfig`` only groups them so a whole model
can be built, saved (``to_dict``) and restored (``from_dict``) in one piece. YAML or CLI overrides are
nested dicts merged onto a preset with ``apply_overrides``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sweettok.typed import build


@dataclass(kw_only=True)
class PatchConfig:
    """Clip geometry: ``frames = 1 + p_t * k``; the first frame is the spatial reference."""

    frames: int = 17
    height: int = 256
    width: int = 256
    channels: int = 3
    p_t: int = 4
    p_h: int = 8
    p_w: int = 8

    @property
    def grid(self) -> tuple[int, int]:
        return self.height // self.p_h, self.width // self.p_w

    @property
    def positions(self) -> int:
        h, w = self.grid
        return h * w

    @property
    def temporal_steps(self) -> int:
        return (self.frames - 1) // self.p_t


@dataclass(kw_only=True)
class TransformerConfig:
    """Width and depth of one CQAE stack (encoder or decoder)."""

    width: int = 512
    heads: int = 8
    spatial_layers: int = 8
    temporal_layers: int = 4
    mlp_ratio: float = 4.0


DECODER_LAYOUTS = ("two_step", "interleaved")
ARCHITECTURES = ("decoupled", "flat")


@dataclass(kw_only=True)
class DecoderConfig(TransformerConfig):
    """The decoder stack and how it reads the temporal latents.

    ``two_step`` (the paper's Fig. 3): the canvas reads the spatial latents, is expanded to 1 + k frames,
    then reads each position's temporal latent along time, with no spatial mixing afterwards.
    ``interleaved`` (the release's ``external_temporal_layer_nums``): the canvas is expanded to 1 + k
    frames first; temporal cross-attention blocks run after spatial layers, so positions keep mixing.
    """

    layout: str = "interleaved"

    def __post_init__(self) -> None:
        if self.layout not in DECODER_LAYOUTS:
            raise ValueError(f"decoder.layout must be one of {DECODER_LAYOUTS}, got {self.layout!r}")


@dataclass(kw_only=True)
class QuantizerConfig:
    """``kind='learned'`` is the paper's "w/o LLC" baseline; ``kind='language'`` uses a codebook bundle."""

    kind: str = "learned"
    latent_dim: int = 256
    spatial_size: int = 10481
    temporal_size: int = 11139
    # eq. 5: codebook_weight * ||sg(z) - q||^2 + beta * ||z - sg(q)||^2. The paper weights both 1; the
    # release (and this default) puts 1 on the commitment term and 0.25 on the codebook term.
    beta: float = 1.0
    codebook_weight: float = 0.25
    l2_normalize: bool = True  # match unit vectors (Euclidean NN on the sphere): keeps every code in play
    codebook: str | None = None  # directory or s3:// URI of a built language codebook
    gcn_hidden: int = 512
    # "per_branch" (the release): one GCN per branch over edges within the branch; "joint" (one GCN over
    # the whole word graph, nouns joined to verbs)
    gcn_graph: str = "per_branch"

    def __post_init__(self) -> None:
        if self.kind not in ("learned", "language"):
            raise ValueError(f"quantizer.kind must be 'learned' or 'language', got {self.kind!r}")
        if self.gcn_graph not in ("per_branch", "joint"):
            raise ValueError(f"quantizer.gcn_graph must be 'per_branch' or 'joint', got {self.gcn_graph!r}")


@dataclass(kw_only=True)
class TeacherConfig:
    """The proxy-code teacher: a VQ tokenizer whose code grid matches the decoder canvas."""

    kind: str = "vq"  # "vq" (trained by this project, stage 0) or "omnitokenizer"
    codebook_size: int = 8192
    code_dim: int = 8
    hidden: int = 64
    checkpoint: str | None = None


@dataclass(kw_only=True)
class TokenizerConfig:
    """A whole SweetTokenizer: what ``config.json`` in a bundle holds."""

    preset: str = "paper"
    # "decoupled": the paper's spatial + temporal CQAEs; "flat": Table 4's baseline, one 1-D query
    # autoencoder over all patches with the same number of tokens
    architecture: str = "decoupled"
    patch: PatchConfig = field(default_factory=PatchConfig)
    encoder: TransformerConfig = field(default_factory=TransformerConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    spatial_queries: int = 256
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")

    @property
    def temporal_queries(self) -> int:
        """One temporal query per spatial position (paper: 32 x 32 = 1024)."""
        return self.patch.positions

    @property
    def num_tokens(self) -> int:
        return self.spatial_queries + self.temporal_queries

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenizerConfig":
        return build_dataclass(cls, data)


def build_dataclass(cls: type, data: dict[str, Any]) -> Any:
    """Build a (nested) dataclass from a dict: ``sweettok.typed.build`` (types coerced and checked, unknown
    keys refused, errors naming the dotted key)."""
    return build(cls, data)


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """Return a copy of ``config`` with nested ``overrides`` merged in (dataclass or dict)."""
    merged = merge_dicts(dataclasses.asdict(config), overrides)
    return build_dataclass(type(config), merged)


def merge_dicts(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` merged onto ``base``, nested dicts merged key by key (neither input is modified)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def paper() -> TokenizerConfig:
    """The paper's model (§4.1, §6.1): 17x256x256, 256 + 1024 tokens, the language codebook and the
    OmniTokenizer teacher. Building it needs ``quantizer.codebook`` and ``teacher.checkpoint``; the
    "w/o LLC" ablation with the project's own VQ teacher is the explicit override
    ``{"quantizer": {"kind": "learned"}, "teacher": {"kind": "vq"}}`` (``PAPER_ABLATION``)."""
    return TokenizerConfig(
        preset="paper",
        quantizer=QuantizerConfig(kind="language"),
        teacher=TeacherConfig(kind="omnitokenizer"),
    )


# the paper's geometry with a learned codebook and the project's VQ teacher: buildable with no weights
PAPER_ABLATION: dict[str, Any] = {"quantizer": {"kind": "learned"}, "teacher": {"kind": "vq"}}


def small() -> TokenizerConfig:
    """A CPU-trainable model on 9x64x64 clips: 32 spatial + 64 temporal tokens."""
    return TokenizerConfig(
        preset="small",
        patch=PatchConfig(frames=9, height=64, width=64),
        encoder=TransformerConfig(width=128, heads=4, spatial_layers=2, temporal_layers=2),
        decoder=DecoderConfig(width=128, heads=4, spatial_layers=2, temporal_layers=2),
        spatial_queries=32,
        quantizer=QuantizerConfig(latent_dim=32, spatial_size=1024, temporal_size=1024, gcn_hidden=128),
        teacher=TeacherConfig(codebook_size=512, code_dim=8, hidden=48),
    )


def tiny() -> TokenizerConfig:
    """The smallest model that exercises every path: 5x32x32 clips, 8 + 16 tokens."""
    return TokenizerConfig(
        preset="tiny",
        patch=PatchConfig(frames=5, height=32, width=32),
        encoder=TransformerConfig(width=64, heads=4, spatial_layers=2, temporal_layers=1),
        decoder=DecoderConfig(width=64, heads=4, spatial_layers=2, temporal_layers=1),
        spatial_queries=8,
        quantizer=QuantizerConfig(latent_dim=16, spatial_size=256, temporal_size=256, gcn_hidden=64),
        teacher=TeacherConfig(codebook_size=128, code_dim=8, hidden=32),
    )


PRESETS = {"paper": paper, "small": small, "tiny": tiny}


def preset(name: str, overrides: dict[str, Any] | None = None) -> TokenizerConfig:
    """A named preset with optional nested overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[name]()
    return apply_overrides(config, overrides) if overrides else config
