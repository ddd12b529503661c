"""The language quantizer: per-branch word subsets, GCN projection, cache, words, bundles, statistics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sweettok import SweetTokenizer, load_bundle, preset, save_bundle
from sweettok.codebook import LanguageQuantizer, build_codebook, codebook_stats, language_config, read_codebook
from sweettok.codebook.lexicon import BRANCH_POS

CAPTIONS = Path(__file__).parent / "data" / "captions.txt"


@pytest.fixture(scope="module")
def codebook_uri(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("cb") / "codebook")
    build_codebook(corpus=str(CAPTIONS), model_dir=None, output=out, min_freq=2, min_words_per_branch=8)
    return out


@pytest.fixture
def model(codebook_uri) -> SweetTokenizer:
    torch.manual_seed(0)
    return SweetTokenizer(language_config(preset("tiny"), codebook_uri)).eval()


def clips(n: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(n, 5, 32, 32, 3) - 0.5


def test_language_config_takes_the_sizes_from_the_codebook(codebook_uri):
    codebook = read_codebook(codebook_uri)
    config = language_config(preset("tiny"), codebook_uri)
    q = config.quantizer
    assert (q.kind, q.codebook) == ("language", codebook_uri)
    assert (q.spatial_size, q.temporal_size) == (codebook.size("spatial"), codebook.size("temporal"))
    assert q.latent_dim == preset("tiny").quantizer.latent_dim
    wrong = dataclasses.replace(q, spatial_size=q.spatial_size + 1)
    with pytest.raises(ValueError, match="build the config with language_config"):
        LanguageQuantizer(wrong)
    with pytest.raises(ValueError, match="needs quantizer.codebook"):
        LanguageQuantizer(dataclasses.replace(q, codebook=None))


def test_frozen_embeddings_stay_out_of_the_state_dict(model):
    keys = [k for k in model.state_dict() if k.startswith("quantizer.")]
    assert keys and all(k.startswith("quantizer.projectors.") for k in keys)
    assert not any(p is model.quantizer.spatial_embeddings for p in model.parameters())
    for branch in ("spatial", "temporal"):  # one projector per branch (the release)
        projector = model.quantizer.projectors[branch]
        assert projector.layers[0].in_features == 384  # MiniLM width
        assert len(projector.layers) == 3  # 2 hidden layers + output
        assert projector.layers[-1].out_features == model.config.quantizer.latent_dim


def test_each_branch_quantizes_to_its_own_words(model, codebook_uri):
    codebook = read_codebook(codebook_uri)
    pos = {(e.word, e.branch): e.pos for e in codebook.vocab.entries}
    words = model.ids_to_words(model.encode(clips()))
    for row in words:
        assert len(row) == model.num_spatial + model.num_temporal
        assert all(pos[(w, "spatial")] in BRANCH_POS["spatial"] for w in row[: model.num_spatial])
        assert all(pos[(w, "temporal")] in BRANCH_POS["temporal"] for w in row[model.num_spatial :])


def test_ids_to_words_round_trips(model):
    q = model.quantizer
    for branch in ("spatial", "temporal"):
        every = torch.arange(q.size(branch))[None]
        assert torch.equal(q.word_ids(q.words(every, branch), branch), every)
    ids = model.encode(clips())
    words = model.ids_to_words(ids)
    s = q.word_ids([w[: model.num_spatial] for w in words], "spatial")
    t = q.word_ids([w[model.num_spatial :] for w in words], "temporal")
    assert torch.equal(torch.cat([s, t], 1), ids)


def test_nearest_neighbour_over_the_projected_branch_codes(model):
    q = model.quantizer
    torch.manual_seed(2)
    z = torch.randn(2, 7, q.config.latent_dim)
    for branch in ("spatial", "temporal"):
        codes = q.lookup_codes(branch)  # unit vectors: the match is on the sphere (QuantizerConfig.l2_normalize)
        assert torch.allclose(codes, torch.nn.functional.normalize(q.codes(branch), dim=-1))
        out = q.quantize(z, branch)
        unit = torch.nn.functional.normalize(z, dim=-1)
        expected = torch.cdist(unit, codes[None].expand(2, -1, -1)).argmin(-1)
        assert torch.equal(out.ids, expected)
        torch.testing.assert_close(out.z_q, codes[expected])


def test_projected_codebook_is_cached_in_eval_and_refreshed_when_weights_change(model):
    q = model.quantizer
    calls = []
    for projector in q.projectors.values():  # one GCN per branch
        projector.register_forward_hook(lambda *a: calls.append(1))
    x = clips()
    first = model.encode(x)
    for _ in range(3):
        assert torch.equal(model.encode(x), first)
        model.ids_to_words(first)
        model.decode_ids(first)
    assert len(calls) == 2  # one projection per branch for every request since eval()
    before = q.codes("spatial").clone()
    with torch.no_grad():
        q.projectors["spatial"].layers[-1].bias.add_(1.0)  # in place, as an optimizer step or load_state_dict does
    assert not torch.allclose(q.codes("spatial"), before) and len(calls) == 4
    model.train()
    assert q.codes("spatial").requires_grad and len(calls) == 5
    q.codes("temporal")
    assert len(calls) == 6  # train mode recomputes: gradients must reach the GCN
    model.eval()
    q.codes("spatial")
    q.codes("temporal")
    assert len(calls) == 8


def test_straight_through_and_commitment_loss_train_encoder_and_gcn(model):
    model.train()
    latents = model.quantize(clips())
    (latents.zq_s.sum() + latents.zq_t.sum() + latents.vq_loss).backward()
    assert model.encoder.parameters().__next__().grad is not None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.quantizer.projectors.parameters())


def test_bundle_carries_the_codebook(model, codebook_uri, tmp_path):
    ids = model.encode(clips())
    save_bundle(model, str(tmp_path / "bundle"))
    for name in ("codebook.safetensors", "vocab.json", "codebook.json"):
        assert (tmp_path / "bundle" / name).read_bytes() == (Path(codebook_uri) / name).read_bytes()
    loaded = load_bundle(str(tmp_path / "bundle"))
    assert loaded.config.quantizer.codebook == str(tmp_path / "bundle")
    assert torch.equal(loaded.encode(clips()), ids)
    assert loaded.ids_to_words(ids) == model.ids_to_words(ids)
    # a loaded bundle names its own folder as the codebook: saving it again, and again from that copy, gives
    # one hash (no path of the folder it was loaded from leaks into the content)
    again = save_bundle(loaded, str(tmp_path / "again"))
    assert save_bundle(load_bundle(str(tmp_path / "again")), str(tmp_path / "again2")) == again


def test_codebook_stats():
    uniform = codebook_stats(torch.arange(8).repeat(4), 8)
    assert uniform["usage"] == 1.0 and abs(uniform["perplexity"] - 8) < 1e-9
    one = codebook_stats(torch.full((3, 5), 2), 16)
    assert one["usage"] == 1 / 16 and abs(one["perplexity"] - 1) < 1e-9 and one["codes_used"] == 1
    half = codebook_stats(torch.tensor([0, 0, 0, 1]), 4)
    assert 1 < half["perplexity"] < 2 and half["usage"] == 0.5
    with pytest.raises(ValueError, match="out of range"):
        codebook_stats(torch.tensor([0, 4]), 4)


def test_each_branch_has_its_own_projector_over_edges_within_the_branch(codebook_uri):
    codebook = read_codebook(codebook_uri)
    torch.manual_seed(0)
    per_branch = SweetTokenizer(language_config(preset("tiny"), codebook_uri)).quantizer
    for branch in ("spatial", "temporal"):  # every edge stays inside its branch's words
        index = getattr(per_branch, f"{branch}_adj_index")
        assert int(index.max()) < per_branch.size(branch)
    spatial = set(codebook.index["spatial"].tolist())
    crossing = [(int(a), int(b)) for a, b in codebook.edges if (int(a) in spatial) != (int(b) in spatial)]
    assert crossing, "the test codebook's graph joins nouns to verbs"
    before = per_branch.codes("spatial").detach().clone()
    with torch.no_grad():
        per_branch.temporal_embeddings.add_(torch.randn_like(per_branch.temporal_embeddings))  # move every verb
    assert torch.equal(per_branch.codes("spatial"), before)  # nouns cannot notice

    joint_cfg = language_config(preset("tiny", {"quantizer": {"gcn_graph": "joint"}}), codebook_uri)
    joint = SweetTokenizer(joint_cfg).quantizer
    before = joint.codes("spatial").detach().clone()
    temporal_entries = codebook.index["temporal"]
    with torch.no_grad():
        joint.joint_embeddings[temporal_entries] += torch.randn(len(temporal_entries), joint.joint_embeddings.shape[1])
    joint.train()  # one graph: verbs reach nouns through the crossing edges
    assert not torch.allclose(joint.codes("spatial"), before)
