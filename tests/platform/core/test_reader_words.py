"""Reading a corpus back as words with a language-codebook tokenizer (the shipped bundle): every spatial
token is a noun or an adjective and every temporal token a verb or an adverb of the bundle's own vocabulary
file, as the paper's part-of-speech split says."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
from sweettok_platform.core.reader import CorpusDataset, ray_dataset
from sweettok_platform.tokenize.samples import make_sample_dataset
from sweettok_platform.core.sources import SourceConfig
from sweettok_platform.core.tokenizer import EncodeConfig
from sweettok_platform.core.bundles import default_bundle

BRANCH_POS = {"spatial": {"noun", "adjective"}, "temporal": {"verb", "adverb"}}


def test_language_corpus_reads_back_as_words_of_the_right_part_of_speech(ray_cluster, real_videos, tmp_path):
    bundle = default_bundle()
    vocab = json.loads((Path(bundle) / "vocab.json").read_text())
    pos_of = defaultdict(set)
    for entry in vocab:
        pos_of[entry["word"]].add(entry["pos"])
    root = tmp_path / "ucf"
    make_sample_dataset(root, [p for p in real_videos if p.name == "bikes.mp4"], layout="ucf101", per_class=2,
                        frames=12)
    config = TokenizeJobConfig(source=SourceConfig(kind="ucf101", root=str(root), split="train"),
                            output=str(tmp_path / "corpus"), encode=EncodeConfig(bundle=bundle), progress=False)
    card = tokenize_dataset(config)
    assert card.quantizer == "language" and card.clips >= 1

    examples = list(CorpusDataset(config.output, words=True))
    n_s, n_t = card.spatial_tokens, card.temporal_tokens
    for example in examples:
        words = example["words"]
        assert len(words) == n_s + n_t == len(example["ids"])
        assert all(pos_of[w] & BRANCH_POS["spatial"] for w in words[:n_s]), words[:n_s]
        assert all(pos_of[w] & BRANCH_POS["temporal"] for w in words[n_s:]), words[n_s:]
    rows = ray_dataset(config.output, words=True).take_all()
    assert {r["id"]: list(r["words"]) for r in rows} == {e["id"]: e["words"] for e in examples}
