"""Build a language codebook: vocabulary -> frozen word embeddings -> word graph -> files."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sweettok import storage
from sweettok.codebook import embeddings as emb
from sweettok.codebook.files import METADATA, encode_files, write_codebook
from sweettok.codebook.graph import cooccurrence_edges, knn_edges
from sweettok.codebook.lexicon import POS_BRANCH, lexicon_version
from sweettok.codebook.vocab import (
    check_sizes,
    default_vocabulary,
    decode_captions,
    tag_corpus,
    vocabulary_from_corpus,
)


@dataclass
class CodebookInfo:
    """What a build produced: where, its content hash, branch and part-of-speech sizes, and provenance."""

    uri: str
    hash: str
    sizes: dict[str, int]
    metadata: dict[str, Any]
    seconds: float


def build_codebook(
    *,
    corpus: str | None,
    model_dir: str | None,
    output: str,
    min_freq: int = 5,
    max_words_per_branch: int | None = None,
    min_words_per_branch: int = 32,
    window: int = 5,
    knn: int = 8,
    mode: str = "input",
    text_field: str | None = None,
) -> CodebookInfo:
    """Build the codebook and write ``codebook.safetensors``, ``vocab.json``, ``codebook.json`` to ``output``.

    ``corpus``: captions (text, one per line, or JSONL; local or s3://), or None for the default
    vocabulary (lexicon + wordfreq, kNN graph). ``model_dir``: a Hugging Face model directory, or None for
    the bundled MiniLM. ``mode``: 'input' (mean sub-token input embedding) or 'hidden'.
    """
    start = time.perf_counter()
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    model_dir = model_dir or emb.default_model_dir()
    if mode not in ("input", "hidden"):
        raise ValueError(f"embedding mode must be 'input' or 'hidden', got {mode!r}")
    if corpus is not None:
        data = storage.read_bytes(corpus)
        captions = decode_captions(data, corpus, text_field)
    tokenizer, model = emb.load_model(model_dir)  # fails before the vocabulary work on a bad model directory
    if corpus is not None:
        tagged = tag_corpus(captions)
        vocab = vocabulary_from_corpus(tagged, min_freq=min_freq, max_words_per_branch=max_words_per_branch)
        source = {
            "vocabulary": "corpus",
            "corpus": corpus,
            "corpus_sha256": hashlib.sha256(data).hexdigest(),
            "captions": len(captions),
            "min_freq": min_freq,
            "frequency": "occurrences of (lemma, part of speech) in the corpus",
        }
    else:
        vocab = default_vocabulary(max_words_per_branch=max_words_per_branch)
        source = {
            "vocabulary": "lexicon+wordfreq",
            "corpus": None,
            "frequency": "wordfreq occurrences per million words (English)",
            "wordfreq": _version("wordfreq"),
        }
    check_sizes(vocab, min_words_per_branch)
    words = [e.word for e in vocab.entries]
    vectors = emb.embed_words(tokenizer, model, words, mode=mode)
    del model
    if corpus is not None:
        position = {(e.word, e.branch): i for i, e in enumerate(vocab.entries)}
        sequences = [[None if t is None else position.get((t.lemma, POS_BRANCH[t.pos])) for t in c] for c in tagged]
        edges, weights = cooccurrence_edges(sequences, window=window)
        graph = {"source": "co-occurrence in captions", "window": window, "weight": "pair count"}
    else:
        edges, weights = knn_edges(vectors, k=knn)
        graph = {"source": "k nearest neighbours in the frozen embeddings (no caption corpus)", "k": knn, "weight": 1}
    metadata = {
        "source": source,
        "graph": graph,
        "lexicon": lexicon_version(),
        "model": {**emb.describe_model(model_dir), "embedding": mode},
        "max_words_per_branch": max_words_per_branch,
    }
    files = encode_files(vocab, vectors, edges, weights, metadata)
    write_codebook(files, output)
    meta = json.loads(files[METADATA])
    return CodebookInfo(uri=output, hash=meta["hash"], sizes=meta["sizes"], metadata=meta,
                        seconds=time.perf_counter() - start)


def _version(package: str) -> str:
    from importlib.metadata import version

    return f"{package} {version(package)}"
