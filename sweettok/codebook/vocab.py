"""The codebook vocabulary: words with a part of speech, split into the spatial and temporal branches.

From a caption corpus: tokenize, tag and lemmatize each caption (``lexicon.tag``), count
(lemma, part of speech) pairs, drop pairs seen fewer than ``min_freq`` times. Without a corpus: every
lemma of the lexicon ranked by its ``wordfreq`` frequency. Within a branch a word appears once (with its
most frequent part of speech); the same word may appear in both branches ("run": noun in the spatial
branch, verb in the temporal one), because motion verbs are often nouns too.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from sweettok import storage
from sweettok.codebook.lexicon import (
    ADJ,
    ADV,
    BRANCH_POS,
    NOUN,
    POS_BRANCH,
    VERB,
    POS_ORDER,
    Tagged,
    graded_adjectives,
    lemmas_by_pos,
    tag,
    tokenize,
    verb_only_forms,
)

BRANCH_NAMES = ("spatial", "temporal")
# the paper's codebook (§4.1): 5,078 nouns + 5,403 adjectives, 9,267 verbs + 1,872 adverbs
PAPER_BRANCH_SIZES = {"spatial": 10481, "temporal": 11139}
# default vocabulary: a noun-and-verb lemma is a verb if >= 5% of its uses are verb-only forms, a noun if <= 50%
VERB_SHARE = (0.05, 0.5)


@dataclass(frozen=True)
class Entry:
    """One codebook word: its lemma, part of speech and frequency (corpus count or wordfreq per-million)."""

    word: str
    pos: str
    frequency: float

    @property
    def branch(self) -> str:
        return POS_BRANCH[self.pos]


@dataclass
class Vocabulary:
    """Entries ordered branch by branch (spatial, temporal), part of speech, frequency (desc), word."""

    entries: list[Entry]

    def branch(self, name: str) -> list[int]:
        """Indices (into ``entries``) of one branch, in id order."""
        return [i for i, e in enumerate(self.entries) if e.branch == name]

    def counts(self) -> dict[str, int]:
        out = {pos: 0 for pos in POS_ORDER}
        for e in self.entries:
            out[e.pos] += 1
        return out

    def to_json(self) -> bytes:
        rows = [{"word": e.word, "pos": e.pos, "frequency": e.frequency} for e in self.entries]
        return json.dumps(rows, indent=0, ensure_ascii=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Vocabulary":
        return cls([Entry(r["word"], r["pos"], r["frequency"]) for r in json.loads(data)])


def read_captions(uri: str, text_field: str | None = None) -> list[str]:
    """Captions from a text file (one per line) or JSONL (``text_field``, else 'caption' or 'text')."""
    return decode_captions(storage.read_bytes(uri), uri, text_field)


def decode_captions(data: bytes, uri: str, text_field: str | None = None) -> list[str]:
    """``read_captions`` on bytes already read from ``uri``."""
    if b"\0" in data[:65536]:
        raise ValueError(f"corpus {uri} is not text (binary data); expected UTF-8 captions, one per line, or JSONL")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"corpus {uri} is not UTF-8 text ({e.reason} at byte {e.start})") from e
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"corpus {uri} is empty; expected captions, one per line, or JSONL")
    if uri.endswith(".jsonl") or lines[0].startswith("{"):
        return [_caption(line, n, uri, text_field) for n, line in enumerate(lines, 1)]
    return lines


def _caption(line: str, n: int, uri: str, field: str | None) -> str:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"corpus {uri} line {n}: not JSON ({e.msg})") from e
    keys = [field] if field else ["caption", "text"]
    for key in keys:
        if isinstance(row, dict) and isinstance(row.get(key), str):
            return row[key]
    raise ValueError(f"corpus {uri} line {n}: expected a string field {' or '.join(map(repr, keys))}")


def tag_corpus(captions: list[str]) -> list[list[Tagged | None]]:
    """Every caption as a list of tagged tokens (None for words outside the lexicon)."""
    return [tag(tokenize(c)) for c in captions]


def vocabulary_from_corpus(
    tagged: list[list[Tagged | None]], *, min_freq: int = 5, max_words_per_branch: int | None = None
) -> Vocabulary:
    """Count (lemma, part of speech) pairs in tagged captions, keep those seen ``min_freq`` times or more."""
    counts = Counter((t.lemma, t.pos) for caption in tagged for t in caption if t is not None)
    if not counts:
        raise ValueError("the corpus has no English content words (nouns, adjectives, verbs, adverbs)")
    kept = {key: n for key, n in counts.items() if n >= min_freq}
    return _assemble(kept, {b: max_words_per_branch for b in BRANCH_NAMES})


def default_vocabulary(*, min_zipf: float = 1.5, max_words_per_branch: int | None = None) -> Vocabulary:
    """Lexicon lemmas with a ``wordfreq`` Zipf frequency >= ``min_zipf``, capped at the paper's branch sizes.

    The frequency recorded is wordfreq's occurrences per million words. Within a branch a word that is
    both a noun and an adjective is an adjective if it is graded (``red, redder``), else a noun; a word
    that is both a verb and an adverb is an adverb if it ends in "-ly", else a verb.
    """
    from wordfreq import zipf_frequency

    graded = graded_adjectives()
    by_pos = lemmas_by_pos()
    verb_forms = verb_only_forms()
    scores: dict[tuple[str, str], float] = {}
    for pos in POS_ORDER:
        for word in by_pos[pos]:
            zipf = zipf_frequency(word, "en")
            if zipf < min_zipf:
                continue
            if word in verb_forms and pos in (NOUN, VERB):
                # noun or verb? the share of verb-only forms (made, making) among all the lemma's uses
                verbal = sum(10**z for z in (zipf_frequency(f, "en") for f in verb_forms[word]) if z > 0)
                share = verbal / (10**zipf + verbal)
                if (pos == VERB and share < VERB_SHARE[0]) or (pos == NOUN and share > VERB_SHARE[1]):
                    continue
            scores[(word, pos)] = round(10 ** (zipf - 3), 4)  # Zipf = log10(frequency per billion words)
    preference = {}
    for word, pos in scores:
        if pos == ADJ:
            preference[(word, pos)] = 1 if word in graded else -1
        elif pos == ADV:
            preference[(word, pos)] = 1 if word.endswith("ly") else -1
    cap = {b: min(n, max_words_per_branch or n) for b, n in PAPER_BRANCH_SIZES.items()}
    return _assemble(scores, cap, preference)


def _assemble(
    scores: Mapping[tuple[str, str], float], limit: Mapping[str, int | None], preference: dict | None = None
) -> Vocabulary:
    """One entry per (word, branch) with its best part of speech, the top ``limit`` words per branch, in id order.

    The best part of speech: highest ``preference``, then highest frequency, then noun/verb first.
    """
    preference = preference or {}

    def rank(word: str, pos: str, freq: float) -> tuple:
        return (preference.get((word, pos), 0), freq, pos in (NOUN, VERB))

    best: dict[tuple[str, str], tuple[str, float]] = {}
    for (word, pos), freq in sorted(scores.items()):
        key = (word, POS_BRANCH[pos])
        if key not in best or rank(word, pos, freq) > rank(word, *best[key]):
            best[key] = (pos, freq)
    entries: list[Entry] = []
    for branch in BRANCH_NAMES:
        words = [Entry(w, pos, f) for (w, b), (pos, f) in best.items() if b == branch]
        words.sort(key=lambda e: (-e.frequency, e.word))
        words = words[: limit.get(branch)]
        order = {pos: i for i, pos in enumerate(BRANCH_POS[branch])}
        words.sort(key=lambda e: (order[e.pos], -e.frequency, e.word))
        entries.extend(words)
    return Vocabulary(entries)


def check_sizes(vocab: Vocabulary, min_words_per_branch: int) -> None:
    """Raise a readable error when a branch has fewer words than the configured minimum."""
    for branch in BRANCH_NAMES:
        n = len(vocab.branch(branch))
        if n < min_words_per_branch:
            pos = " and ".join(BRANCH_POS[branch])
            raise ValueError(
                f"the {branch} vocabulary ({pos}) has {n} words, fewer than the minimum {min_words_per_branch}; "
                "give a larger corpus, a lower min_freq or a lower min_words_per_branch"
            )
