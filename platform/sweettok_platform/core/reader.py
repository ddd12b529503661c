"""Reading a token corpus back for generator training: a PyTorch ``IterableDataset`` and a Ray Dataset.

Each example is one clip: ``ids`` (canonical layout ``[N_s spatial | N_t temporal]``, empty temporal part
for images), ``label``, ``id``, and on request ``words`` (one word per token, from the tokenizer's codebook).
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from sweettok import storage
from sweettok_platform.core.corpus import DATA_DIR, ERRORS_DIR, ERROR_SCHEMA, CorpusCard
from sweettok_platform.core.tokenizer import EncodeConfig, load_tokenizer


def data_files(corpus: str) -> list[str]:
    """The corpus's data files, in shard order."""
    return storage.list_files(storage.join(corpus, DATA_DIR), (".parquet",))


def read_table(corpus: str, columns: list[str] | None = None):
    """The whole corpus (or some columns) as one pyarrow Table."""
    fs, path = storage.resolve(storage.join(corpus, DATA_DIR))
    return pq.read_table(path, filesystem=fs, columns=columns)


def read_errors(corpus: str):
    """The errors table (uri, source, reason); empty when no file failed."""
    uri = storage.join(corpus, ERRORS_DIR)
    if not storage.exists(uri):
        return ERROR_SCHEMA.empty_table()
    fs, path = storage.resolve(uri)
    return pq.read_table(path, filesystem=fs, schema=ERROR_SCHEMA)


class WordMap:
    """Token ids -> words with the corpus's tokenizer (the model is loaded once, on first use)."""

    def __init__(self, card: CorpusCard) -> None:
        self.card = card
        self._model = None

    def __call__(self, spatial: list[int], temporal: list[int]) -> list[str]:
        if self.card.quantizer == "learned":  # learned codebooks name ids s<id> / t<id>
            return [f"s{i}" for i in spatial] + [f"t{i}" for i in temporal]
        if self._model is None:
            self._model = load_tokenizer(EncodeConfig(bundle=self.card.bundle, preset=None if self.card.bundle
                                                      else self.card.preset, seed=self.card.seed))
        ids = torch.tensor([list(spatial) + list(temporal)], dtype=torch.long)
        return self._model.ids_to_words(ids)[0]


class CorpusDataset(IterableDataset):
    """Streams a corpus's clips; files are split across DataLoader workers and across ``world_size`` ranks.

    Yields ``{"id": str, "ids": LongTensor (N_s [+ N_t]), "label": int, "label_name": str}`` plus
    ``"words": list[str]`` with ``words=True``.
    """

    def __init__(self, corpus: str, *, words: bool = False, shuffle: bool = False, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.corpus = corpus
        self.card = CorpusCard.load(corpus)
        self.files = data_files(corpus)
        self.words = WordMap(self.card) if words else None
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _my_files(self) -> list[str]:
        files = list(self.files)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(files)
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return files[self.rank * workers + worker :: self.world_size * workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for uri in self._my_files():
            fs, path = storage.resolve(uri)
            rows = pq.read_table(path, filesystem=fs).to_pylist()
            if self.shuffle:
                random.Random(f"{self.seed}:{self.epoch}:{uri}").shuffle(rows)
            for row in rows:
                example = {"id": row["id"], "ids": torch.tensor(row["spatial"] + row["temporal"], dtype=torch.long),
                           "label": row["label"], "label_name": row["label_name"]}
                if self.words is not None:
                    example["words"] = self.words(row["spatial"], row["temporal"])
                yield example


def ray_dataset(corpus: str, words: bool = False):
    """The corpus as a Ray Dataset of rows (the corpus columns, plus ``words`` on request)."""
    import ray


    card = CorpusCard.load(corpus)
    fs, path = storage.resolve(storage.join(corpus, DATA_DIR))
    env = storage.storage_env()  # the S3 settings of this process, for the read tasks
    remote = {"runtime_env": {"env_vars": env}} if env else {}
    ds = ray.data.read_parquet(path, filesystem=fs, **remote)
    if not words:
        return ds

    class AddWords:
        def __init__(self) -> None:
            self.words = WordMap(card)

        def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
            row["words"] = self.words(list(row["spatial"]), list(row["temporal"]))
            return row

    return ds.map(AddWords, compute=ray.data.ActorPoolStrategy(size=1), **remote)
