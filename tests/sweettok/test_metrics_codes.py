"""Codebook usage counts: values worked by hand, and one branch order however the counts arrive."""

from __future__ import annotations

import math

import numpy as np

from sweettok.metrics.codes import CodeCounts


def test_usage_and_perplexity_by_hand():
    counts = CodeCounts.empty({"spatial": 4, "temporal": 8})
    counts.add("spatial", np.array([0, 0, 1, 1]))  # two ids, equally often: perplexity 2
    counts.add("temporal", np.array([3, 3, 3, 3]))
    assert counts.used() == {"spatial": 2, "temporal": 1}
    assert counts.usage() == {"spatial": 0.5, "temporal": 0.125}
    assert math.isclose(counts.perplexity()["spatial"], 2.0) and counts.perplexity()["temporal"] == 1.0


def test_branch_order_does_not_depend_on_arrival_order():
    a = CodeCounts({"temporal": np.ones(3, np.int64), "spatial": np.zeros(2, np.int64)})
    b = CodeCounts({"spatial": np.ones(2, np.int64), "temporal": np.zeros(3, np.int64)})
    assert list((a + b).used()) == list((b + a).used()) == ["spatial", "temporal"]
    assert list(a.perplexity()) == list(b.perplexity())
