"""Class-conditional autoregressive generation over SweetTok ids (pure PyTorch; never imports Ray)."""

from sweettok.ar.model import AR_SIZES, ArConfig, ArTransformer, KVCache, class_drop_mask
from sweettok.ar.sample import SampleConfig, draw, filter_logits, generate

__all__ = ["AR_SIZES", "ArConfig", "ArTransformer", "KVCache", "SampleConfig", "class_drop_mask", "draw",
           "filter_logits", "generate"]
