"""SweetTokenizer: a compact semantic video tokenizer (pure PyTorch; never imports Ray)."""

from sweettok.bundle import load_bundle, save_bundle
from sweettok.config import TokenizerConfig, preset
from sweettok.model import SweetTokenizer
from sweettok.patchify import ClipError, from_uint8, to_uint8

__all__ = [
    "ClipError",
    "SweetTokenizer",
    "TokenizerConfig",
    "from_uint8",
    "load_bundle",
    "preset",
    "save_bundle",
    "to_uint8",
]
