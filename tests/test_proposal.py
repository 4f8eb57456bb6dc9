"""The proposal scale fitted per model, against a linear-Gaussian set model whose conditionals
and posterior are exact: a guide at 0.6 of the posterior's sd is fitted back to 1 / 0.6, where
importance sampling is exact."""

from __future__ import annotations

import pytest
import torch

from ppl_fewshot.data import Episode
from ppl_fewshot.inference.proposal import fit_proposal_scale
from tests.test_query_calibration import LinearGaussianAR, contexts, exact_conditionals


def _bank(B: int, T: int = 6, seed: int = 5) -> Episode:
    x = contexts(B=B, T=T, seed=seed)
    return Episode(x, torch.zeros(B, T, dtype=torch.long), torch.ones(B, T, dtype=torch.bool))


def test_a_too_narrow_guide_is_fitted_back_to_the_posterior_width() -> None:
    model, bank = LinearGaussianAR(guide_scale=0.6), _bank(B=100)
    shots = (0, 2, 5)
    fit = fit_proposal_scale(model, bank, scales=(1.0, 1 / 0.6, 3.5), num_particles=3,
                             shots=shots)
    assert fit.best == pytest.approx(1 / 0.6)
    exact = -exact_conditionals(model, bank.x)[:, list(shots)].mean()
    i = fit.scales.index(fit.best)
    assert fit.nll[i] == pytest.approx(float(exact), abs=1e-3)  # every weight is p(x_t | x_<t)
    for j in (0, 2):  # the others are biased high by more than their paired standard error
        assert fit.nll[j] > fit.nll[i] + 3 * fit.paired_se[j] > fit.nll[i]
    assert fit.paired_se[i] == 0 and fit.episodes == 100 and fit.num_particles == 3
    assert fit.to_dict()["shots"] == [0, 2, 5]


def test_an_exact_guide_keeps_its_width_and_the_caller_keeps_its_random_state() -> None:
    model, bank = LinearGaussianAR(), _bank(B=100)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    fit = fit_proposal_scale(model, bank, scales=(0.5, 1.0, 2.0), num_particles=5,
                             shots=(1, 4))
    assert torch.equal(torch.rand(3), expected)
    assert fit.best == 1.0 and min(fit.nll) == fit.nll[1]
    again = fit_proposal_scale(model, bank, scales=(0.5, 1.0, 2.0), num_particles=5,
                               shots=(1, 4))
    assert again == fit  # seeded: the same draws give the same fit


@pytest.mark.parametrize("kwargs, needle", [
    ({"scales": ()}, "at least one"),
    ({"scales": (1.0, 0.0)}, "positive finite"),
    ({"scales": (float("inf"),)}, "positive finite"),
    ({"shots": (0, 6)}, "T=6"),
])
def test_bad_fits_are_refused(kwargs, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        fit_proposal_scale(LinearGaussianAR(), _bank(B=2), num_particles=2, **kwargs)
