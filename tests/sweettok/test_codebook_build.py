"""Building the language codebook: vocabulary, real MiniLM embeddings, a tiny Qwen2, files, bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sweettok.codebook import build_codebook, default_model_dir, read_codebook
from sweettok.codebook.embeddings import word_embeddings
from sweettok.codebook.graph import cooccurrence_edges
from sweettok.codebook.lexicon import BRANCH_POS, POS_ORDER, tag, tokenize
from sweettok.codebook.vocab import default_vocabulary

CAPTIONS = Path(__file__).parent / "data" / "captions.txt"


@pytest.fixture(scope="module")
def default_small(tmp_path_factory) -> str:
    """The default vocabulary (lexicon + wordfreq, kNN graph) capped at 300 words per branch, real MiniLM."""
    out = str(tmp_path_factory.mktemp("cb") / "default")
    build_codebook(corpus=None, model_dir=None, output=out, max_words_per_branch=300)
    return out


def test_related_words_are_closer_in_the_real_minilm_embeddings():
    triples = [  # (word, related, unrelated)
        ("dog", "puppy", "car"), ("ocean", "sea", "pencil"), ("jump", "leap", "sleep"),
        ("quickly", "rapidly", "yellow"), ("car", "truck", "apple"), ("happy", "joyful", "metal"),
    ]
    words = sorted({w for t in triples for w in t})
    vectors = dict(zip(words, word_embeddings(default_model_dir(), words)))
    for word, related, unrelated in triples:
        near = F.cosine_similarity(vectors[word], vectors[related], dim=0)
        far = F.cosine_similarity(vectors[word], vectors[unrelated], dim=0)
        assert near > far + 0.1, (word, related, unrelated, float(near), float(far))


def test_tagger_lemmatizes_and_tags_from_the_lexicon():
    tagged = tag(tokenize("A man rides a red bike quickly while two dogs are running."))
    got = {(t.lemma, t.pos) for t in tagged if t}
    assert {("man", "noun"), ("ride", "verb"), ("red", "adjective"), ("bike", "noun"), ("quickly", "adverb"),
            ("dog", "noun"), ("run", "verb")} <= got
    assert tagged[0] is None  # "a" is not a content word


def test_corpus_vocabulary_counts_and_frequency_threshold(tmp_path):
    info = build_codebook(corpus=str(CAPTIONS), model_dir=None, output=str(tmp_path / "cb"), min_freq=3,
                          min_words_per_branch=4)
    codebook = read_codebook(info.uri)
    entries = {(e.word, e.pos): e.frequency for e in codebook.vocab.entries}
    tokens = Counter(tokenize(CAPTIONS.read_text()))
    assert entries[("dog", "noun")] == tokens["dog"] + tokens["dogs"]
    assert entries[("quickly", "adverb")] == tokens["quickly"]
    assert ("ride", "verb") in entries and ("red", "adjective") in entries
    assert min(entries.values()) >= 3
    assert tokens["axe"] == 1 and not any(w == "axe" for w, _ in entries)  # below the threshold
    assert info.metadata["source"]["vocabulary"] == "corpus" and info.metadata["graph"]["window"] == 5
    # co-occurrence edges join words near each other in a caption: "a small dog runs across the grass"
    index = {(e.word, e.branch): i for i, e in enumerate(codebook.vocab.entries)}
    edges = {tuple(e) for e in codebook.edges.tolist()}
    assert tuple(sorted((index[("run", "temporal")], index[("dog", "spatial")]))) in edges
    assert tuple(sorted((index[("ride", "temporal")], index[("horse", "spatial")]))) in edges


def test_cooccurrence_window_is_five_tokens():
    edges, weights = cooccurrence_edges([[0, None, None, None, 1, 2], [0, 1]], window=5)
    pairs = dict(zip(map(tuple, edges.tolist()), weights.tolist()))
    assert pairs == {(0, 1): 2.0, (1, 2): 1.0}  # 0 and 2 are 5 apart: outside the window


def test_part_of_speech_subsets_are_disjoint_and_cover_the_vocabulary(default_small):
    codebook = read_codebook(default_small)
    entries = codebook.vocab.entries
    subsets = {pos: {i for i, e in enumerate(entries) if e.pos == pos} for pos in POS_ORDER}
    assert all(subsets.values())
    assert sum(len(s) for s in subsets.values()) == len(set().union(*subsets.values())) == len(entries)
    for branch, tags in BRANCH_POS.items():
        index = codebook.index[branch].tolist()
        assert set(index) == subsets[tags[0]] | subsets[tags[1]]
        words = codebook.words(branch)
        assert len(words) == len(set(words)) == 300  # one entry per word within a branch
    assert codebook.embeddings.shape == (600, 384)
    assert codebook.metadata["graph"]["source"].startswith("k nearest neighbours")


def test_default_vocabulary_is_real_size():
    vocab = default_vocabulary()
    counts = vocab.counts()
    assert len(vocab.branch("spatial")) == 10481  # the paper's spatial size
    assert len(vocab.branch("temporal")) > 5000
    assert all(counts[pos] > 1000 for pos in POS_ORDER), counts
    spatial = {vocab.entries[i].word for i in vocab.branch("spatial")}
    temporal = {vocab.entries[i].word for i in vocab.branch("temporal")}
    assert {"dog", "car", "tree", "red", "small"} <= spatial
    assert {"run", "jump", "swim", "throw", "quickly", "slowly"} <= temporal


def test_build_is_deterministic(default_small, tmp_path):
    again = build_codebook(corpus=None, model_dir=None, output=str(tmp_path / "again"), max_words_per_branch=300)
    first = json.loads((Path(default_small) / "codebook.json").read_text())
    assert again.hash == first["hash"]
    for name in ("codebook.safetensors", "vocab.json", "codebook.json"):
        assert (Path(default_small) / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def _tiny_qwen2(path: Path) -> Path:
    """A tiny Qwen2 checkpoint with a byte-level BPE tokenizer trained on the test captions, saved offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CAPTIONS.read_text().splitlines(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_tiny_qwen2_checkpoint_loads_through_the_same_path(tmp_path):
    qwen = _tiny_qwen2(tmp_path / "qwen2")
    info = build_codebook(corpus=str(CAPTIONS), model_dir=str(qwen), output=str(tmp_path / "cb"), min_freq=3,
                          min_words_per_branch=4)
    codebook = read_codebook(info.uri)
    assert info.metadata["model"]["model_type"] == "qwen2" and codebook.embeddings.shape[1] == 32
    # the embedding of a word is the mean of its sub-token rows of Qwen2's input embedding table
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    table = load_file(str(qwen / "model.safetensors"))["model.embed_tokens.weight"]
    tokenizer = AutoTokenizer.from_pretrained(str(qwen))
    words = [e.word for e in codebook.vocab.entries]
    i = words.index("quickly")
    ids = tokenizer(" quickly", add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(codebook.embeddings[i], table[ids].float().mean(0))


def test_hidden_state_mode_embeds_through_the_encoder():
    words = ["dog", "puppy", "car"]
    hidden = word_embeddings(default_model_dir(), words, mode="hidden")
    assert hidden.shape == (3, 384)
    assert F.cosine_similarity(hidden[0], hidden[1], dim=0) > F.cosine_similarity(hidden[0], hidden[2], dim=0)


def test_build_from_and_to_s3(s3_bucket, default_small, tmp_path):
    uri = f"s3://{s3_bucket}/codebooks/small"
    info = build_codebook(corpus=None, model_dir=None, output=uri, max_words_per_branch=300)
    assert info.hash == json.loads((Path(default_small) / "codebook.json").read_text())["hash"]
    assert read_codebook(uri).words("temporal") == read_codebook(default_small).words("temporal")
    from sweettok import storage

    corpus = f"s3://{s3_bucket}/captions/train.txt"
    storage.write_bytes(corpus, CAPTIONS.read_bytes())
    remote = build_codebook(corpus=corpus, model_dir=None, output=f"{uri}-captions", min_freq=3, min_words_per_branch=4)
    local = build_codebook(corpus=str(CAPTIONS), model_dir=None, output=str(tmp_path / "local"), min_freq=3,
                           min_words_per_branch=4)
    assert remote.hash == local.hash and remote.metadata["source"]["corpus"] == corpus


# ---- bad input ---------------------------------------------------------------------------------------
def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="is empty"):
        build_codebook(corpus=str(tmp_path / "empty.txt"), model_dir=None, output=str(tmp_path / "o"))


def test_non_text_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "clip.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="is not text"):
        build_codebook(corpus=str(tmp_path / "clip.bin"), model_dir=None, output=str(tmp_path / "o"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8"):
        build_codebook(corpus=str(tmp_path / "latin1.txt"), model_dir=None, output=str(tmp_path / "o"))
    (tmp_path / "c.jsonl").write_text('{"caption": "a dog runs"}\n{"oops": 1}\n')
    with pytest.raises(ValueError, match="line 2: expected a string field"):
        build_codebook(corpus=str(tmp_path / "c.jsonl"), model_dir=None, output=str(tmp_path / "o"))
    (tmp_path / "none.txt").write_text("the of and 123\n")
    with pytest.raises(ValueError, match="no English content words"):
        build_codebook(corpus=str(tmp_path / "none.txt"), model_dir=None, output=str(tmp_path / "o"))


def test_a_directory_that_is_not_a_transformers_model_is_a_clear_error(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    with pytest.raises(ValueError, match="not a Hugging Face transformers model directory"):
        build_codebook(corpus=str(CAPTIONS), model_dir=str(tmp_path / "notes"), output=str(tmp_path / "o"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ValueError, match="is not a loadable transformers model"):
        build_codebook(corpus=str(CAPTIONS), model_dir=str(tmp_path / "broken"), output=str(tmp_path / "o"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_codebook(corpus=str(CAPTIONS), model_dir=str(tmp_path / "missing"), output=str(tmp_path / "o"))


def test_a_vocabulary_below_the_minimum_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="fewer than the minimum 500"):
        build_codebook(corpus=str(CAPTIONS), model_dir=None, output=str(tmp_path / "o"), min_freq=2,
                       min_words_per_branch=500)
    assert not (tmp_path / "o").exists()
