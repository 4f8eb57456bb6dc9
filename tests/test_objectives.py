"""The loss module: KL annealing scales latent sites only; IWAE bound >= ELBO."""

from __future__ import annotations

import pyro
import pytest
import torch

from ppl_fewshot import models
from ppl_fewshot.inference import ELBOLoss
from tests.conftest import make_prototype_classes


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    ds = make_prototype_classes(4, 6)
    return ds.to_float(ds.images[:, :3])


def test_beta_scales_only_the_kl_part(x) -> None:
    """loss(beta) = recon + beta * KL exactly, for the same random draws."""
    m = models.build("vae-small")
    L = ELBOLoss(m)
    vals = {}
    for beta in (0.0, 0.5, 1.0):
        L.beta = beta
        pyro.set_rng_seed(0)
        with torch.no_grad():
            vals[beta] = float(L(x))
    assert vals[0.5] == pytest.approx(0.5 * (vals[0.0] + vals[1.0]), rel=1e-5)
    assert vals[1.0] > vals[0.0]  # KL(q || p) > 0 adds to the loss


def test_iwae_bound_is_tighter_than_elbo(x) -> None:
    pyro.set_rng_seed(0)
    m = models.build("vae-small")
    elbo = torch.stack([ELBOLoss(m)(x) for _ in range(20)]).mean()
    iwae = torch.stack([ELBOLoss(m, "iwae", 50)(x) for _ in range(5)]).mean()
    assert iwae < elbo  # a larger lower bound, so a smaller loss


@pytest.mark.parametrize(
    "kw", [{"objective": "nope"}, {"num_particles": 0}, {"objective": "iwae", "num_particles": 1}]
)
def test_bad_settings(kw) -> None:
    with pytest.raises(ValueError):
        ELBOLoss(models.build("vae-small"), **kw)
