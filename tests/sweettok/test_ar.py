"""The class-conditional AR generator: KV cache equals the full pass, samplers agree, ids in range and layout."""

from __future__ import annotations

import pytest
import torch

from sweettok.ar import ArConfig, ArTransformer, KVCache, SampleConfig, class_drop_mask, filter_logits, generate

# branch vocabularies of different sizes, so an id of the wrong branch (or an offset vocabulary) shows
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny steps crawl with OpenMP spinning on 2 shared cores

GEOMETRY = dict(spatial_vocab=50, temporal_vocab=30, spatial_tokens=8, temporal_tokens=16, num_classes=3)


def model(seed: int = 0, **sizes) -> ArTransformer:
    torch.manual_seed(seed)
    return ArTransformer(ArConfig(**GEOMETRY, **{"width": 32, "depth": 2, "heads": 4, **sizes})).eval()


def random_ids(b: int) -> torch.Tensor:
    return torch.cat([torch.randint(0, 50, (b, 8)), torch.randint(0, 30, (b, 16))], dim=1)


def test_incremental_passes_with_the_cache_equal_the_full_pass() -> None:
    m, ids, labels = model(), random_ids(3), torch.tensor([0, 1, 2])
    full = m(labels, ids)  # (3, 25, w): class + 24 tokens
    cache = KVCache(m.config, 3, 25, torch.device("cpu"), torch.float32)
    parts = [m(labels, ids[:, :k], cache) for k in (5, 6, 7, 15, 24)]  # a prefill, single steps, a chunk
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    s, t = m.logits(full)
    assert s.shape == (3, 8, 50) and t.shape == (3, 17, 30)  # the last position (after t_15) predicts nothing


@pytest.mark.parametrize("sampling", [dict(), dict(top_k=5), dict(top_p=0.8, temperature=0.7),
                                      dict(cfg_scale=3.0, top_k=20, top_p=0.95)])
def test_cached_and_uncached_samplers_give_identical_ids(sampling: dict) -> None:
    m = model(1)
    labels = torch.tensor([0, 2, 1, 1])
    for seed in (0, 1, 2):
        cached = generate(m, labels, SampleConfig(**sampling), torch.Generator().manual_seed(seed))
        uncached = generate(m, labels, SampleConfig(**sampling, use_cache=False), torch.Generator().manual_seed(seed))
        assert torch.equal(cached, uncached)
    other = generate(m, labels, SampleConfig(**sampling), torch.Generator().manual_seed(99))
    assert not torch.equal(other, cached)  # the seed matters: the comparison above is not vacuous


def test_sampled_ids_are_in_range_per_branch_and_in_the_canonical_layout() -> None:
    m = model(2)
    ids = generate(m, torch.arange(3).repeat(20), SampleConfig(cfg_scale=2.0), torch.Generator().manual_seed(0))
    assert ids.shape == (60, 24) and ids.dtype == torch.long
    spatial, temporal = ids[:, :8], ids[:, 8:]
    assert spatial.min() >= 0 and spatial.max() < 50 and temporal.min() >= 0 and temporal.max() < 30
    assert spatial.max() >= 30  # spatial positions do use the part of their range temporal ids cannot reach


def test_top_k_and_top_p_keep_what_they_should() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.8)).tolist() == [[True, True, True, False]]


def test_class_dropout_feeds_the_no_class_row() -> None:
    m, ids = model(3), random_ids(4)
    labels = torch.tensor([0, 1, 2, 0])
    null = torch.full_like(labels, m.config.null_class)
    assert torch.equal(m.loss(ids, labels, torch.ones(4, dtype=torch.bool)), m.loss(ids, null))
    assert not torch.equal(m.loss(ids, labels), m.loss(ids, null))
    mask = class_drop_mask(10_000, 0.1, torch.Generator().manual_seed(0))
    assert 0.08 < mask.float().mean() < 0.12


def test_a_trained_model_generates_each_class_sequence_greedily() -> None:
    """Two classes, one sequence each: after training, greedy sampling of a class gives its sequence back."""
    m = model(4, class_dropout=0.0).train()
    ids, labels = random_ids(2), torch.tensor([0, 1])
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = m.loss(ids, labels)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    out = generate(m, labels, SampleConfig(top_k=1))
    assert torch.equal(out, ids)
