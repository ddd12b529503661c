"""English lexicon (lemminflect's bundled ``lemma_lu.csv.gz``) and a small contextual part-of-speech tagger.

The lexicon maps every inflected form to the lemma for each part of speech it can take
(``"runs" -> {noun: run, verb: run}``). A caption word is tagged by choosing one of those parts of speech
from its neighbours (determiners, pronouns, modals, the previous word's tag); words the lexicon does not
know (function words, names, typos) get no tag and never enter the codebook.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NOUN, ADJ, VERB, ADV = "noun", "adjective", "verb", "adverb"
POS_ORDER = (NOUN, ADJ, VERB, ADV)
BRANCH_POS = {"spatial": (NOUN, ADJ), "temporal": (VERB, ADV)}
POS_BRANCH = {pos: branch for branch, tags in BRANCH_POS.items() for pos in tags}
_LEXICON_TAGS = {"noun": NOUN, "adj": ADJ, "verb": VERB, "adv": ADV}  # 'aux' (be/have/do, modals) is skipped

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
DETERMINERS = frozenset(
    "a an the this that these those my your his her its our their some any each every no another many several "
    "few both all one two three four five six seven eight nine ten".split()
)
SUBJECTS = frozenset("i you he she it we they who which someone somebody people".split())
VERB_CUES = frozenset("to can could will would shall should may might must does do did not".split())
BE = frozenset("am is are was were be been being".split())
# function words the lexicon also lists as content words ("while" as a verb, "can" or "i" as a noun)
STOP_WORDS = frozenset(
    "be have do can could will would shall should may might must ought need dare "
    "i me my mine you your yours he him his she her hers it its we us our ours they them their theirs "
    "this that these those who whom whose which what how why when where whether "
    "and or but nor if though although because unless since while like as so then than there here "
    "also just too not yet once ever else of to for at by from with about in on no other more most much many "
    "some any all each every both either neither such own same".split()
)


def lexicon_path() -> Path:
    """Where lemminflect keeps its lexicon inside site-packages."""
    spec = importlib.util.find_spec("lemminflect")
    if spec is None or not spec.origin:
        raise ModuleNotFoundError("lemminflect is not installed; it provides the English lexicon (pip install lemminflect)")
    return Path(spec.origin).parent / "resources" / "lemma_lu.csv.gz"


def lexicon_version() -> str:
    from importlib.metadata import version

    return f"lemminflect {version('lemminflect')} resources/lemma_lu.csv.gz"


@lru_cache(maxsize=1)
def load_lexicon() -> dict[str, dict[str, str]]:
    """Lower-case surface form -> {part of speech: lemma}, for nouns, adjectives, verbs and adverbs."""
    table: dict[str, dict[str, str]] = {}
    with gzip.open(lexicon_path(), "rt", encoding="utf-8") as f:
        for form, tag, lemmas in csv.reader(f):
            pos = _LEXICON_TAGS.get(tag)
            lemma = lemmas.split("/")[0]
            if pos is None or not form.islower() or not lemma.isalpha() or not lemma.islower():
                continue  # proper nouns and non-words stay out of the codebook
            if lemma in STOP_WORDS or form in STOP_WORDS:
                continue
            table.setdefault(form, {}).setdefault(pos, lemma)
    return table


@lru_cache(maxsize=1)
def lemmas_by_pos() -> dict[str, frozenset[str]]:
    """Every lemma the lexicon knows, per part of speech."""
    out: dict[str, set[str]] = {pos: set() for pos in POS_ORDER}
    for tags in load_lexicon().values():
        for pos, lemma in tags.items():
            out[pos].add(lemma)
    return {pos: frozenset(words) for pos, words in out.items()}


@lru_cache(maxsize=1)
def graded_adjectives() -> frozenset[str]:
    """Adjectives with comparative/superlative forms (``redder`` -> red): these read as adjectives first."""
    return frozenset(t[ADJ] for form, t in load_lexicon().items() if ADJ in t and t[ADJ] != form)


@lru_cache(maxsize=1)
def verb_only_forms() -> dict[str, list[str]]:
    """Lemma that is both a noun and a verb -> its forms that are only verb forms of it (``made`` for make)."""
    out: dict[str, list[str]] = {}
    nouns = lemmas_by_pos()[NOUN]
    for form, tags in load_lexicon().items():
        lemma = tags.get(VERB)
        if lemma is not None and lemma in nouns and tags.get(NOUN) != lemma and form != lemma:
            out.setdefault(lemma, []).append(form)
    return {lemma: sorted(forms) for lemma, forms in out.items()}


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters with an optional apostrophe suffix)."""
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class Tagged:
    lemma: str
    pos: str


def _choose(token: str, tags: dict[str, str], prev: str | None, prev_pos: str | None, next_tags: dict) -> str:
    """Pick one part of speech for ``token`` from its candidates ``tags`` using its neighbours."""
    if len(tags) == 1:
        return next(iter(tags))
    if prev in DETERMINERS or prev_pos == ADJ:
        if ADJ in tags and NOUN in next_tags:
            return ADJ
        return NOUN if NOUN in tags else (ADJ if ADJ in tags else next(iter(tags)))
    if VERB in tags and (prev in VERB_CUES or prev in SUBJECTS or prev_pos == NOUN):
        return VERB
    if prev in BE:
        if VERB in tags and token.endswith(("ing", "ed")):
            return VERB
        if ADJ in tags:
            return ADJ
    if ADV in tags and token.endswith("ly"):
        return ADV
    if prev_pos in (VERB, ADV):  # "rides quickly down the hill"
        for pos in (ADV, NOUN, ADJ):
            if pos in tags:
                return pos
    for pos in (NOUN, VERB, ADJ, ADV):
        if pos in tags:
            return pos
    raise AssertionError("unreachable: tags is not empty")


def tag(tokens: list[str]) -> list[Tagged | None]:
    """Tag a tokenized caption: one (lemma, part of speech) per token, None for words outside the lexicon."""
    lexicon = load_lexicon()
    out: list[Tagged | None] = []
    prev_pos: str | None = None
    for i, token in enumerate(tokens):
        tags = lexicon.get(token)
        if not tags:
            out.append(None)
            prev_pos = None
            continue
        prev = tokens[i - 1] if i else None
        next_tags = lexicon.get(tokens[i + 1], {}) if i + 1 < len(tokens) else {}
        pos = _choose(token, tags, prev, prev_pos, next_tags)
        out.append(Tagged(tags[pos], pos))
        prev_pos = pos
    return out
