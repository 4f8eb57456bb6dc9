"""``FewShotModel.query_posteriors``: the guide's posteriors of a new item's latents given a
context, checked against the code paths that compute the same distributions another way."""

from __future__ import annotations

import pytest
import torch

from ppl_fewshot.models import build
from ppl_fewshot.models.posteriors import query_posteriors


def images(B: int, T: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, 1, 28, 28, generator=g) < 0.2).float()


@pytest.mark.parametrize("kw", [{}, {"prior": "mixture", "image_read": True}])
def test_gmn_query_posterior_is_the_proposal_of_log_predictive(kw: dict) -> None:
    """GMN: q(z | x, X) of the query, traced from the guide over X u {x} (causal mask),
    equals the guide features computed against the context's memory (``features``)."""
    torch.manual_seed(0)
    m = build("gmn-small", **kw).eval()
    x = images(2, 6, 1)
    q = m.query_posteriors(x[:, 4:], x[:, :4])["z"]
    with torch.no_grad():
        feats = m.features(x[:, 4:], x[:, :4])
        alone = m.features(x[:, 4:])
    assert tuple(q.batch_shape) == (2, 2) and tuple(q.event_shape) == (m.z_dim,)
    assert torch.allclose(q.mean, feats, atol=1e-5)
    empty = m.query_posteriors(x[:, 4:], x[:, :0])["z"]
    assert torch.allclose(empty.mean, alone, atol=1e-5)
    assert not torch.allclose(empty.mean, q.mean, atol=1e-3)  # the context matters


def test_vae_query_posterior_ignores_the_context() -> None:
    torch.manual_seed(0)
    m = build("vae-small").eval()
    x = images(2, 5, 2)
    q = m.query_posteriors(x[:, 3:], x[:, :3])["z"]
    with torch.no_grad():
        own = m.posterior_z(x[:, 3:])
    assert torch.allclose(q.mean, own.mean, atol=1e-6)
    assert torch.allclose(q.stddev, own.stddev, atol=1e-6)


def test_ns_query_posteriors_c_with_the_query_and_z_given_c() -> None:
    """Neural Statistician: c's site is q(c | X u {x}) for each query; z's is q(z | x, c) at
    the guide's draw of c, repeatable with ``seed``; sample dropout is off and the model's
    training mode comes back."""
    torch.manual_seed(0)
    m = build("ns-small", sample_dropout=0.5).train()
    x = images(2, 6, 3)
    posts = m.query_posteriors(x[:, 4:], x[:, :4], seed=7)
    assert list(posts) == ["c", "z"] and m.training
    for j in range(2):
        with torch.no_grad():
            own = m.eval().context_posterior(torch.cat([x[:, :4], x[:, 4 + j : 5 + j]], 1))
        m.train()
        assert torch.allclose(posts["c"].mean[:, j], own.mean, atol=1e-5)
        assert torch.allclose(posts["c"].stddev[:, j], own.stddev, atol=1e-5)
    again = m.query_posteriors(x[:, 4:], x[:, :4], seed=7)["z"]
    other = m.query_posteriors(x[:, 4:], x[:, :4], seed=8)["z"]
    assert torch.equal(again.mean, posts["z"].mean)
    assert not torch.allclose(other.mean, posts["z"].mean)


def test_masked_context_items_are_absent() -> None:
    torch.manual_seed(0)
    m = build("gmn-small").eval()
    x = images(3, 6, 4)
    mask = torch.tensor([[True, True, False, True]] * 3)
    full = m.query_posteriors(x[:, 4:], x[:, :4], mask)["z"]
    kept = m.query_posteriors(x[:, 4:], x[:, [0, 1, 3]])["z"]
    assert torch.allclose(full.mean, kept.mean, atol=1e-5)
    assert torch.allclose(full.stddev, kept.stddev, atol=1e-5)


def test_bad_shapes_are_refused() -> None:
    m = build("vae-small")
    x = images(2, 4, 5)
    with pytest.raises(ValueError, match="query must be"):
        query_posteriors(m, x[:, 0], x)
    with pytest.raises(ValueError, match="context must be"):
        query_posteriors(m, x, x[:1])
