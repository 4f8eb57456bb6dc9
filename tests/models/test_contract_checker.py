"""ppl_fewshot.models.contract.check_model: it passes the library's models (tests/test_contract.py)
and names what a broken one breaks; models of your own by import path."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_fewshot.inference import model_from_checkpoint, save_checkpoint
from ppl_fewshot.models import build, resolve
from ppl_fewshot.models.contract import ContractError, check_model
from ppl_fewshot.models.definetti import NeuralDeFinetti

HERE = "tests.models.test_contract_checker"


class Tiny(NeuralDeFinetti):
    """A model of one's own: NeuralDeFinetti with tiny networks by default."""

    def __init__(self, a_dim: int = 3, hidden: int = 16, channels: int = 4,
                 pooling: str = "mean", event_shape: tuple[int, ...] = (1, 28, 28)) -> None:
        super().__init__(a_dim, hidden, channels, pooling, event_shape)


class FirstItemGuide(Tiny):
    """q(a | X) reads the first item only: not exchangeable."""

    def guide_params(self, x, mask):
        return super().guide_params(x[:, :1], mask[:, :1])


class ScoresPadding(Tiny):
    """The model scores masked items too."""

    def model(self, x, mask=None, ctx=None):
        super().model(x, None, ctx)


class ExtraGuideSite(Tiny):
    """The guide samples a site the model does not have."""

    def guide(self, x, mask=None, ctx=None):
        super().guide(x, mask, ctx)
        pyro.sample("extra", dist.Normal(0.0, 1.0))


class OneSample(Tiny):
    """sample() returns one item whatever is asked."""

    def sample(self, context, num_samples, context_mask=None):
        return super().sample(context, num_samples, context_mask)[:, :1]


@pytest.fixture(scope="module")
def sets() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 5, 1, 28, 28, generator=g).lt(0.3).float()


def test_a_model_of_ones_own_by_import_path(sets, tmp_path) -> None:
    """build, check_model and a checkpoint round trip, all by the name module:Class."""
    torch.manual_seed(0)
    m = build(f"{HERE}:Tiny", a_dim=2)
    assert m.name == f"{HERE}:Tiny" and m.config()["a_dim"] == 2
    before = torch.random.get_rng_state()
    report = check_model(m, sets, num_particles=50)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's state is kept
    assert report.ok and report.results["exchangeable-posterior"] == "ok", report.results
    assert report.measured["masked_as_absent_gap"] < 1e-3
    save_checkpoint(tmp_path / "m.pt", m, None, step=0, train_config={})
    back, _ = model_from_checkpoint(tmp_path / "m.pt")
    assert type(back).__name__ == "Tiny" and back.config() == m.config()


@pytest.mark.parametrize("name, needle", [
    ("no-such-model", "import path"),
    ("os:path", "not a subclass"),
    (f"{HERE}:Nope", "has no attribute"),
    ("no_such_module_xyz:Model", "No module"),
])
def test_bad_names_say_why(name: str, needle: str) -> None:
    with pytest.raises(KeyError, match=needle):
        resolve(name)


@pytest.mark.parametrize("cls, broken", [
    ("FirstItemGuide", "exchangeable-posterior"),
    ("ScoresPadding", "masked-as-absent"),
    ("ExtraGuideSite", "sites"),
    ("OneSample", "sample"),
])
def test_a_broken_model_fails_the_check_it_breaks(cls: str, broken: str, sets) -> None:
    torch.manual_seed(0)
    m = build(f"{HERE}:{cls}")
    report = check_model(m, sets, num_particles=20, strict=False)
    assert broken in report.failures(), report.results
    assert report.results["rebuild"] == "ok"
    with pytest.raises(ContractError, match=broken):
        check_model(m, sets, num_particles=20)


def test_a_model_not_made_by_build_cannot_be_rebuilt(sets) -> None:
    report = check_model(Tiny(), sets, num_particles=20, strict=False)
    assert list(report.failures()) == ["rebuild"], report.results
    with pytest.raises(ValueError, match="x must be"):
        check_model(Tiny(), sets[0])
