"""Gradient signal-to-noise ratios (ppl_fewshot.inference.gradients)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ppl_fewshot import models
from ppl_fewshot.inference.gradients import (
    gradient_snr,
    objective_gradient_snr,
    parameter_roles,
)
from tests.conftest import TINY_GMN
from tests.test_query_calibration import LinearGaussianAR, contexts


class LearnableAR(LinearGaussianAR):
    """The linear-Gaussian model with a learnable guide offset and scale (the guide's own), a
    learnable gain (the model's loc and the guide's mean use it) and a learnable observation
    bias (the model's own)."""

    def __init__(self, offset: float = 0.05, scale: float = 0.9) -> None:
        super().__init__()
        self.guide_offset = nn.Parameter(torch.tensor(offset))
        self.guide_scale = nn.Parameter(torch.tensor(scale))
        self.gain = nn.Parameter(torch.tensor(2.0))
        self.bias = nn.Parameter(torch.zeros(4))


def test_snr_of_a_gradient_with_known_noise() -> None:
    """Each draw's gradient is 1 + 0.5 eps element-wise (eps standard normal), so the SNR of
    every element is exactly 2: the median and the pooled estimates find it within 5% from
    400 draws, the mean's length is sqrt(1000), and the caller's RNG state is untouched."""
    theta = nn.Parameter(torch.zeros(1000))
    state = torch.get_rng_state()
    out = gradient_snr(lambda: (theta * (1 + 0.5 * torch.randn(1000))).sum(), {"a": [theta]}, 400)
    assert torch.equal(state, torch.get_rng_state())
    s = out["a"]
    assert s.size == 1000 and s.floor == pytest.approx(0.05)
    assert s.median_snr == pytest.approx(2.0, rel=0.05)
    assert s.pooled_snr == pytest.approx(2.0, rel=0.05)
    assert s.mean_norm == pytest.approx(1000 ** 0.5, rel=0.01)


def test_parameter_roles_split_guide_model_and_shared() -> None:
    m, x = LearnableAR(), contexts(B=5, T=3)
    state = torch.get_rng_state()
    roles = parameter_roles(m, x)
    assert torch.equal(state, torch.get_rng_state())
    names = {id(p): n for n, p in m.named_parameters()}
    got = {k: sorted(names[id(p)] for p in v) for k, v in roles.items()}
    assert got == {"guide": ["guide_offset", "guide_scale"], "model": ["bias"],
                   "shared": ["gain"]}
    gmn = models.build("gmn-small", **TINY_GMN)
    roles = parameter_roles(gmn, torch.rand(2, 4, 1, 28, 28).round())
    assert all(roles[k] for k in ("guide", "model", "shared")), {k: len(v) for k, v in
                                                                 roles.items()}


def test_iwae_guide_snr_falls_with_k_and_dregs_rises() -> None:
    """Rainforth et al. (2018): the IWAE bound's guide gradient has SNR of order 1/sqrt(K),
    the model's grows; DReG's guide SNR does not fall (Tucker et al., 2019). From K 2 to 32
    (expected ratio 4), IWAE's guide SNR falls by more than 2.5x, DReG's rises, the model's
    rises under both, the same draw for draw."""
    m, x = LearnableAR(), contexts(B=50, T=4)
    snr = {(o, k): objective_gradient_snr(m, x, None, o, k, num_draws=150, seed=0)
           for o in ("iwae", "iwae-dreg") for k in (2, 32)}
    iw2, iw32 = snr["iwae", 2]["guide"].pooled_snr, snr["iwae", 32]["guide"].pooled_snr
    dr2, dr32 = snr["iwae-dreg", 2]["guide"].pooled_snr, snr["iwae-dreg", 32]["guide"].pooled_snr
    assert iw32 < iw2 / 2.5, (iw2, iw32)
    assert dr32 > dr2 > 5 * iw2, (dr2, dr32, iw2)
    for k in (2, 32):
        a, b = snr["iwae", k]["model"], snr["iwae-dreg", k]["model"]
        assert a.pooled_snr == pytest.approx(b.pooled_snr, rel=1e-4)
    assert snr["iwae", 32]["model"].pooled_snr > snr["iwae", 2]["model"].pooled_snr


def test_bad_arguments() -> None:
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="num_draws"):
        gradient_snr(lambda: p.sum(), {"a": [p]}, 1)
    with pytest.raises(ValueError, match="more than one group"):
        gradient_snr(lambda: p.sum(), {"a": [p], "b": [p]}, 3)
