"""A worker's share of a token corpus: rows split across ranks without duplicates, batches in a seeded order.

Rows are ordered by their stable ``id`` and dealt round-robin (row ``i`` to rank ``i % world``); every rank
keeps ``rows // world`` of them, so ranks step in lockstep and no row is seen by two ranks (at most
``world - 1`` rows are left out). Only the ``spatial``, ``temporal`` and ``label`` columns are read: a clip is
1,280 int32 ids at the paper's size, so UCF-101's ~13k clips are ~70 MB per worker before sharding.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import torch

from sweettok_platform.core.reader import read_table


def corpus_arrays(corpus: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row ids sorted, ids (n, N_s + N_t) int64, labels (n,) int64) of a whole corpus."""
    table = read_table(corpus, columns=["id", "label", "spatial", "temporal"])
    table = table.take(pc.sort_indices(table, [("id", "ascending")]))
    n = table.num_rows
    spatial = table["spatial"].combine_chunks().flatten().to_numpy().reshape(n, -1)
    temporal = table["temporal"].combine_chunks().flatten().to_numpy().reshape(n, -1)
    ids = np.concatenate([spatial, temporal], axis=1).astype(np.int64)
    return np.asarray(table["id"].to_pylist()), ids, table["label"].to_numpy().astype(np.int64)


class TokenShard:
    """This rank's rows; ``next_batch()`` -> (ids (b, N) long, labels (b,) long). ``position`` counts samples
    consumed and ``seek`` restores it exactly (each epoch's order is a pure function of seed and epoch)."""

    def __init__(self, corpus: str, *, rank: int, world: int, batch_size: int, seed: int) -> None:
        keys, ids, labels = corpus_arrays(corpus)
        per_rank = len(keys) // world
        if per_rank < 1:
            raise ValueError(f"{corpus} holds {len(keys)} clips, fewer than the {world} workers")
        mine = np.arange(rank, per_rank * world, world)
        self.keys, self.ids, self.labels = keys[mine], ids[mine], labels[mine]
        self.batch_size, self.seed, self.position = batch_size, seed, 0
        self._order: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.keys)

    def seek(self, position: int) -> None:
        self.position = int(position)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.keys)
        picks = []
        for k in range(self.position, self.position + self.batch_size):
            epoch, i = divmod(k, n)
            if self._order[0] != epoch:
                self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(n))
            picks.append(self._order[1][i])
        self.position += self.batch_size
        return torch.from_numpy(self.ids[picks]), torch.from_numpy(self.labels[picks])
