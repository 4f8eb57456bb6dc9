"""Hierarchical Beta-Bernoulli pixel model: empirical Bayes and exact few-shot densities."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

from ppl_fewshot.models import FewShotModel, build

DATA = Path(os.environ.get("PPL_FEWSHOT_DATA", Path(__file__).resolve().parents[3] / "shared/data"))
SMALL = (1, 3, 3)




def simulate_classes(alpha: torch.Tensor, beta: torch.Tensor, num_classes: int, per_class: int,
                     seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    theta = torch.distributions.Beta(alpha, beta).sample((num_classes,))
    u = torch.rand(num_classes, per_class, *alpha.shape, generator=g)
    return (u < theta.unsqueeze(1)).float()


@pytest.fixture(scope="module")
def truth():
    torch.manual_seed(0)
    alpha = torch.empty(SMALL).uniform_(0.3, 3.0)
    beta = torch.empty(SMALL).uniform_(0.3, 3.0)
    return alpha, beta, simulate_classes(alpha, beta, 2000, 20)


def test_empirical_bayes_recovers_hyperparameters(truth) -> None:
    alpha, beta, images = truth
    m = build("pixel-beta-bernoulli", event_shape=SMALL)
    losses = m.fit_empirical_bayes(images, num_steps=250, lr=0.08)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        fitted = m.exact_log_evidence(images).sum()
        ref = build("pixel-beta-bernoulli", event_shape=SMALL)
        ref.log_alpha.data, ref.log_beta.data = alpha.log(), beta.log()
        at_truth = ref.exact_log_evidence(images).sum()
    # a maximum of the marginal likelihood is at least as high as at the true values
    assert fitted >= at_truth - 1e-3 * abs(at_truth)
    mean_hat = m.alpha / (m.alpha + m.beta)
    assert torch.allclose(mean_hat, alpha / (alpha + beta), atol=0.03)
    conc_ratio = (m.alpha + m.beta) / (alpha + beta)
    assert torch.all((conc_ratio > 0.7) & (conc_ratio < 1.4)), conc_ratio


def test_exact_conditionals_chain_rule_and_padding(truth) -> None:
    _, _, images = truth
    m = build("pixel-beta-bernoulli", event_shape=SMALL, init_alpha=0.7, init_beta=1.3)
    x = images[:4, :6]
    cond = m.conditional_log_likelihoods(x)
    assert cond.shape == (4, 6)
    assert torch.allclose(cond.sum(1), m.exact_log_evidence(x), atol=1e-4)
    # each conditional is the exact predictive given the earlier items
    for t in (0, 1, 5):
        assert torch.allclose(cond[:, t], m.exact_log_predictive(x[:, t : t + 1], x[:, :t])[:, 0],
                              atol=1e-5)
    # padding (anywhere) contributes nothing and changes nothing else
    xp = torch.cat([x[:, :3], torch.ones_like(x[:, :2]), x[:, 3:]], 1)
    mp = torch.ones(4, 8, dtype=torch.bool)
    mp[:, 3:5] = False
    cp = m.conditional_log_likelihoods(xp, mp)
    assert torch.equal(cp[:, 3:5], torch.zeros(4, 2))
    assert torch.allclose(torch.cat([cp[:, :3], cp[:, 5:]], 1), cond, atol=1e-5)


def test_importance_sampling_with_exact_guide_is_exact(truth) -> None:
    """Guide = exact posterior, so every importance weight equals p(X): the generic
    estimators of the base class reproduce the closed forms with any K."""
    _, _, images = truth
    pyro.set_rng_seed(0)
    m = build("pixel-beta-bernoulli", event_shape=SMALL, init_alpha=0.7, init_beta=1.3)
    x = images[:3, :5]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.allclose(m.log_marginal(x, mask, 20), m.exact_log_evidence(x, mask), atol=1e-4)
    generic = FewShotModel.conditional_log_likelihoods(m, x, mask, num_particles=20)
    assert torch.allclose(generic, m.conditional_log_likelihoods(x, mask), atol=1e-4)
    lp = m.log_predictive(images[3:6, :2], x, 20, context_mask=mask)
    assert torch.allclose(lp, m.exact_log_predictive(images[3:6, :2], x, mask), atol=1e-4)
    # the ELBO with the exact guide is the evidence itself
    elbo = -pyro.infer.Trace_ELBO(num_particles=3, vectorize_particles=True,
                                  max_plate_nesting=2).loss(m.model, m.guide, x, mask)
    assert abs(elbo - m.exact_log_evidence(x, mask).sum().item()) < 1e-3


def test_full_size_contract_and_order_invariance() -> None:
    torch.manual_seed(1)
    m = build("pixel-beta-bernoulli")
    x = (torch.rand(2, 7, 1, 28, 28) < 0.1).float()
    mask = torch.rand(2, 7) < 0.6
    perm = torch.randperm(7)
    q1, q2 = m.guide_params(x, mask), m.guide_params(x[:, perm], mask[:, perm])
    assert all(torch.equal(a, b) for a, b in zip(q1, q2))
    assert m.context_posterior(x, mask).batch_shape == (2,)
    s = m.sample(x, 3, mask)
    assert s.shape == (2, 3, 1, 28, 28) and torch.all((s >= 0) & (s <= 1))
    assert m.sample(x[:, :0], 2).shape == (2, 2, 1, 28, 28)
    assert m.exact_log_predictive(x[:, :2], x[:, :0]).shape == (2, 2)


def _load(path: Path, limit: int) -> torch.Tensor:
    with np.load(path) as d:
        arr = np.stack([d[k] for k in sorted(d.keys())[:limit]])
    return torch.from_numpy((arr < 128).astype(np.float32)).reshape(limit, 20, 1, 28, 28)


def test_real_omniglot_few_shot_nll_drops_with_shots() -> None:
    if not (DATA / "gmn" / "train_small.npz").exists():
        pytest.skip(f"GMN arrays not found under {DATA}")
    train = _load(DATA / "gmn" / "train_small.npz", 100)
    test = _load(DATA / "gmn" / "test_small.npz", 40)
    m = build("pixel-beta-bernoulli")
    m.fit_empirical_bayes(train, num_steps=100, lr=0.1)
    with torch.no_grad():
        nll = -m.conditional_log_likelihoods(test).mean(0)
    # the full benchmark (benchmarks/pixel_nll.py) gives ~178 nats at 0 shots
    assert 120 < nll[0] < 260, nll
    assert nll[19] < nll[1] < nll[0], nll
