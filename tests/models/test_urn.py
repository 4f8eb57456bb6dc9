"""The Pólya urn over a set's items (ppl_fewshot.models.urn) and the Neural Statistician with it."""

from __future__ import annotations

import itertools
import math

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from ppl_fewshot.inference.checkpoint import (
    CheckpointError,
    export_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from ppl_fewshot.models import build
from ppl_fewshot.models.urn import (
    UrnMixture,
    fit_concentration,
    partition_log_prob,
    set_partition,
    urn_log_prob,
    urn_log_weights,
)


def labelled_items(labels: list[int]) -> torch.Tensor:
    """One set ``[1, T, 3]``: item t is the vector of ``labels[t]`` (equal labels, equal items)."""
    return torch.tensor([[float(v), 0.5, -1.0] for v in labels]).unsqueeze(0)


def sequential_log_prob(labels: list[int], theta: float, atoms: int) -> float:
    """The urn's product of predictive weights along the sequence: a continuous base measure
    (density 1 for a new item, probability 0 that a new atom repeats an item)."""
    x = labelled_items(labels)
    new, copy, repeat = urn_log_weights(x, torch.ones(1, len(labels), dtype=torch.bool), theta,
                                        atoms)
    return torch.where(repeat, copy, new).sum().item()


@pytest.mark.parametrize("theta,atoms", [(0.7, 0), (14.3, 0), (3.0, 5), (40.0, 20),
                                          (math.inf, 20)])
def test_sequential_urn_is_the_exchangeable_partition_probability(theta: float,
                                                                   atoms: int) -> None:
    """The product of the urn's weights equals the closed-form EPPF (Ewens / Dirichlet-
    multinomial) for every order of the same multiset: the urn is exchangeable."""
    labels = [0, 1, 0, 2, 1, 0, 3]
    counts = set_partition(labelled_items(labels)[0])
    assert counts == [3, 2, 1, 1]
    expect = partition_log_prob(counts, theta, atoms)
    rng = torch.Generator().manual_seed(0)
    for _ in range(5):
        perm = torch.randperm(len(labels), generator=rng).tolist()
        got = sequential_log_prob([labels[i] for i in perm], theta, atoms)
        assert got == pytest.approx(expect, abs=1e-4)


def test_large_theta_with_atoms_is_uniform_sampling_with_replacement() -> None:
    """theta -> inf with N atoms: each draw picks one of N drawings uniformly."""
    counts = [3, 2, 1, 1]
    k, n, N = len(counts), sum(counts), 20
    exact = math.log(math.perm(N, k)) - n * math.log(N)
    assert partition_log_prob(counts, math.inf, N) == pytest.approx(exact)
    assert partition_log_prob(counts, 1e9, N) == pytest.approx(exact, abs=1e-5)
    assert partition_log_prob([1] * 21, math.inf, N) == -math.inf  # more than N distinct


def test_dirichlet_process_predictive_sums_to_one_over_a_discrete_base() -> None:
    """With a discrete base measure new atoms can repeat old ones; the DP's counting by
    equal items is still exact: the joint of every sequence of 3 symbols sums to one."""
    base = torch.tensor([0.5, 0.3, 0.2]).log()
    theta, total = 1.7, 0.0
    for seq in itertools.product(range(3), repeat=3):
        x = labelled_items(list(seq))
        new, copy, _ = urn_log_weights(x, torch.ones(1, 3, dtype=torch.bool), theta)
        total += urn_log_prob(base[list(seq)].unsqueeze(0), new, copy).sum().exp().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_padding_neither_counts_nor_scores() -> None:
    x = labelled_items([0, 0, 0, 1])
    mask = torch.tensor([[True, False, True, True]])
    new, copy, repeat = urn_log_weights(x, mask, 2.0)
    assert repeat.tolist() == [[False, False, True, False]]
    assert copy[0, 2].item() == pytest.approx(math.log(1 / 3))  # one earlier copy, m = 1
    assert new[0, 3].item() == pytest.approx(math.log(2 / 4))  # m = 2 present before it
    assert new[0, 1].item() == 0.0
    empty = urn_log_weights(torch.zeros(2, 0, 3), torch.zeros(2, 0, dtype=torch.bool), 2.0)
    assert [t.shape for t in empty] == [torch.Size([2, 0])] * 3


def test_fit_concentration_recovers_theta_of_simulated_sets() -> None:
    rng = torch.Generator().manual_seed(1)
    theta, parts = 4.0, []
    for _ in range(1500):  # Chinese restaurant process, 20 customers
        counts: list[int] = []
        for m in range(20):
            w = torch.tensor([float(c) for c in counts] + [theta]) / (theta + m)
            j = int(torch.multinomial(w, 1, generator=rng))
            counts.append(1) if j == len(counts) else counts.__setitem__(j, counts[j] + 1)
        parts.append(counts)
    assert fit_concentration(parts) == pytest.approx(theta, rel=0.1)
    with pytest.raises(ValueError, match="at least one"):
        fit_concentration([])


def test_bad_urn_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="concentration"):
        build("ns-small", urn_concentration=0.0)
    with pytest.raises(ValueError, match="atoms"):
        build("ns-small", urn_concentration=1.0, urn_atoms=-2)
    x = labelled_items([0, 1])
    mix = UrnMixture(dist.Normal(x, 1.0).to_event(1), torch.zeros(1, 2),
                     torch.zeros(1, 2))
    with pytest.raises(NotImplementedError):
        mix.sample()


def tiny_ns(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    m = build("ns-small", c_dim=4, z_dim=3, hidden=16, channels=4, **kw)
    return m.eval()


def test_ns_urn_without_repeats_adds_log_w_new_exactly() -> None:
    """On a set of distinct drawings the urn changes only the mixing weights: the same draws
    of the guide give the plain model's log-weights plus sum_t log w_new(t)."""
    plain, withurn = tiny_ns(), tiny_ns(urn_concentration=2.5)
    withurn.load_state_dict(plain.state_dict())
    x = torch.rand(2, 4, 1, 28, 28).bernoulli()
    torch.manual_seed(3)
    lw_plain = plain.log_weights(x, None, 7)
    torch.manual_seed(3)
    lw_urn = withurn.log_weights(x, None, 7)
    shift = sum(math.log(2.5 / (2.5 + m)) for m in range(4))
    assert torch.allclose(lw_urn - lw_plain, torch.full_like(lw_plain, shift), atol=1e-3)


def test_ns_urn_repeat_costs_log_w_copy_and_leaves_the_context() -> None:
    """A repeated drawing: the guide pools only the distinct items into q(c | X), draws the
    repeat's z from p(z | c) (log p - log q of z is 0), and x scores log(n / (theta + m))."""
    m = tiny_ns(urn_concentration=2.5)
    x = torch.rand(1, 3, 1, 28, 28).bernoulli()
    x[:, 2] = x[:, 0]
    q3, q2 = m.context_posterior(x), m.context_posterior(x[:, :2])
    assert torch.equal(q3.base_dist.loc, q2.base_dist.loc)
    guide = poutine.trace(m.guide).get_trace(x)
    model = poutine.trace(poutine.replay(m.model, trace=guide)).get_trace(x)
    for site in (guide.nodes["z"], model.nodes["z"]):
        site["log_prob"] = site["fn"].log_prob(site["value"])
    dz = model.nodes["z"]["log_prob"] - guide.nodes["z"]["log_prob"]
    assert dz[..., 2].abs().max().item() < 1e-5 and dz[..., :2].abs().min().item() > 1e-3
    lx = model.nodes["x"]["fn"].log_prob(x)
    assert lx[..., 2].item() == pytest.approx(math.log(1 / 4.5), abs=1e-5)
    assert lx[..., 1].item() < -100  # a new drawing still costs its pixels
    plug = m.log_predictive_plugin(x[:, :1], x[:, 1:], num_particles=5)
    assert plug.item() == pytest.approx(math.log(1 / 4.5), abs=1e-5)


def test_urn_settings_export_onto_a_plain_checkpoint(tmp_path) -> None:
    plain = tiny_ns()
    save_checkpoint(tmp_path / "plain.pt", plain)
    state = export_checkpoint(tmp_path / "plain.pt", tmp_path / "urn.pt",
                              settings={"urn_concentration": 14.3, "urn_atoms": 20})
    assert state["extra"]["export_settings"] == {"urn_concentration": 14.3, "urn_atoms": 20}
    model, _ = model_from_checkpoint(tmp_path / "urn.pt")
    assert (model.urn_concentration, model.urn_atoms) == (14.3, 20)
    with pytest.raises(CheckpointError, match="do not fit"):
        export_checkpoint(tmp_path / "plain.pt", tmp_path / "bad.pt", settings={"c_dim": 5})
    assert not (tmp_path / "bad.pt").exists()


def test_ns_urn_conditionals_are_exact_at_repeats_and_the_plain_model_elsewhere() -> None:
    """The NLL table's estimator with an urn: log w_copy at a repeat (no sampling), and
    log w_new plus the plain model's conditional given the distinct earlier items elsewhere
    (the same draws, the same seed)."""
    plain, withurn = tiny_ns(), tiny_ns(urn_concentration=2.5, urn_atoms=6)
    withurn.load_state_dict(plain.state_dict())
    x = torch.rand(2, 5, 1, 28, 28).bernoulli()
    x[0, 3], x[1, 2], x[1, 4] = x[0, 1], x[1, 0], x[1, 0]
    distinct = torch.tensor([[True, True, True, False, True], [True, True, False, True, False]])
    torch.manual_seed(5)
    got = withurn.conditional_log_likelihoods(x, num_particles=6, positions=[1, 2, 3, 4])
    torch.manual_seed(5)
    ref = plain.conditional_log_likelihoods(x, distinct, num_particles=6, positions=[1, 2, 3, 4])
    a = 2.5 / 6  # theta / N
    expect_copy = {(0, 3): math.log((1 + a) / (2.5 + 3)), (1, 2): math.log((1 + a) / (2.5 + 2)),
                   (1, 4): math.log((2 + a) / (2.5 + 4))}
    for b in range(2):
        for j, t in enumerate([1, 2, 3, 4]):
            if (b, t) in expect_copy:
                assert got[b, j].item() == pytest.approx(expect_copy[b, t], abs=1e-5)
                continue
            k = int(distinct[b, :t].sum())
            shift = math.log(2.5 * (1 - k / 6) / (2.5 + t))
            assert got[b, j].item() == pytest.approx(ref[b, j].item() + shift, abs=1e-3)
    assert withurn.urn_concentration == 2.5  # restored after the plain model's pass
