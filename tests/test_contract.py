"""Every image model through the contract: sample -> fit -> loss drops -> save/load."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.poutine.util import site_is_subsample as subsample

from ppl_fewshot import models
from ppl_fewshot.data.base import ClassDataset
from ppl_fewshot.inference import ELBOLoss, load_checkpoint, model_from_checkpoint, save_checkpoint
from ppl_fewshot.models.contract import check_model
from tests.conftest import make_prototype_classes

IMAGE_MODELS = [
    "vae-small", "vae-resnet", "cvae-small", "gmn-small", "ns-small", "neural-definetti"
]
PRESENT = [m for m in IMAGE_MODELS if m in models.available()]


def episodes(ds: ClassDataset, B: int, T: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cls = torch.randint(0, ds.num_classes, (B,), generator=g)
    idx = torch.randint(0, ds.images_per_class, (B, T), generator=g)
    return ds.to_float(ds.images[cls[:, None], idx])


@pytest.fixture(scope="module")
def data() -> ClassDataset:
    return make_prototype_classes(num_classes=8, per_class=10)


def test_registry_lists_and_rejects() -> None:
    names = models.available()
    assert "vae" in names and "vae-small" in names
    with pytest.raises(KeyError, match="unknown model"):
        models.build("no-such-model")
    with pytest.raises(TypeError, match="no setting"):
        models.build("vae", not_a_setting=1)


CONTRACT_CASES = [(name, {}) for name in PRESENT] + [
    (name, kw) for name, kw in [
        ("gmn-small", {"prior": "mixture", "image_read": True}),
        ("gmn-small", {"pseudo_input": False}),
        ("gmn-small", {"urn_concentration": 3.0}),
        ("ns-small", {"pooling": "attention"}),
        ("cvae-small", {"condition_on": "last"}),
    ] if name in PRESENT
]


@pytest.mark.parametrize("name,kw", CONTRACT_CASES)
def test_every_model_keeps_the_contract(name: str, kw: dict, data: ClassDataset) -> None:
    """ppl_fewshot.models.contract.check_model: sites, masked items as absent, sample shapes
    (empty context included), the chain rule, q(c | X)'s order invariance, rebuild."""
    torch.manual_seed(0)
    report = check_model(models.build(name, **kw), episodes(data, 2, 5, 1), num_particles=100)
    refuses = report.results["sample-empty-context"].startswith("n/a")
    assert refuses == (kw.get("pseudo_input") is False), report.results
    assert report.results["exchangeable-posterior"].startswith("n/a") != (name == "ns-small" or
                                                                          name.startswith("neural"))


@pytest.mark.parametrize("name", PRESENT)
def test_fit_lowers_heldout_loss_and_roundtrips(name: str, data: ClassDataset, tmp_path) -> None:
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    m = models.build(name)
    loss_fn = ELBOLoss(m)
    opt = torch.optim.Adam(loss_fn.parameters(), lr=2e-3)
    held = episodes(data, 8, 5, 999)

    def heldout() -> float:
        pyro.set_rng_seed(1)
        with torch.no_grad():
            return sum(float(loss_fn(held)) for _ in range(3)) / 3

    before = heldout()
    for step in range(60):
        loss = loss_fn(episodes(data, 8, 5, step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = heldout()
    assert math.isfinite(after) and after < before - 5.0, (before, after)

    path = tmp_path / "m.pt"
    save_checkpoint(path, m, opt, step=60, train_config={"note": "test"})
    assert load_checkpoint(path)["step"] == 60
    m2, _ = model_from_checkpoint(path)
    m.eval()
    pyro.set_rng_seed(3)
    a = m.log_weights(held[:2], None, 5)
    pyro.set_rng_seed(3)
    b = m2.log_weights(held[:2], None, 5)
    assert torch.equal(a, b)


SINGLETON_CASES = [(name, {}) for name in PRESENT] + [
    (name, kw) for name, kw in [
        ("gmn-small", {"prior": "mixture"}),
        ("gmn-small", {"image_read": True}),
        ("gmn-small", {"pseudo_input": False}),
        ("cvae-small", {"condition_on": "last"}),
    ] if name in PRESENT
]


@pytest.mark.parametrize("name,kw", SINGLETON_CASES)
def test_prepare_singletons_scores_each_item_alone(name: str, kw: dict, data) -> None:
    """Every real item's terms from ``prepare_singletons`` equal its terms as a set of one,
    for the same latent values; padded items stay masked."""
    pyro.set_rng_seed(0)
    m = models.build(name, **kw).eval()
    x = episodes(data, 3, 4, 2)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    x1, m1, ctx1 = m.prepare_singletons(x, mask, m.prepare(x, mask))
    ones = x[mask].unsqueeze(1)
    single = torch.ones(ones.shape[:2], dtype=torch.bool)
    trace = pyro.poutine.trace
    with torch.no_grad():
        guide = trace(m.guide).get_trace(ones, single)
        if x1.shape[:2] == ones.shape[:2]:  # the default: the real items as sets of one
            assert torch.equal(x1, ones) and bool(m1.all())
            return
        assert torch.equal(m1, mask)
        # the same latent values, put back in the [B, T] layout of the episodes
        data1 = {}
        for site, node in guide.nodes.items():
            if node["type"] == "sample" and not node["is_observed"] and not subsample(node):
                value = node["value"][:, 0]
                data1[site] = value.new_zeros(*mask.shape, *value.shape[1:])
                data1[site][mask] = value

        def terms(x, mask, ctx, values):
            g = trace(pyro.poutine.condition(m.guide, data=values)).get_trace(x, mask, ctx)
            mdl = trace(pyro.poutine.condition(m.model, data=values)).get_trace(x, mask, ctx)
            out = 0.0
            for tr, sign in ((mdl, 1.0), (g, -1.0)):
                for node in tr.nodes.values():
                    if node["type"] == "sample" and not subsample(node):
                        out = out + sign * node["fn"].log_prob(node["value"])
            return out

        alone = terms(ones, single, None, {k: v["value"] for k, v in guide.nodes.items()
                                            if k in data1})[:, 0]
        shared = terms(x1, m1, ctx1, data1)
    assert torch.allclose(shared[mask], alone, atol=1e-3)
    assert torch.all(shared[~mask] == 0)
