"""The Pólya urn over a set's items (ppl_fewshot.models.urn) and the models with one."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from pyro import poutine

from ppl_fewshot.diagnostics import elbo_terms
from ppl_fewshot.inference.checkpoint import (
    CheckpointError,
    export_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from ppl_fewshot.inference.objectives import ELBOLoss
from ppl_fewshot.models import build
from ppl_fewshot.models.urn import (
    Urn,
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
        build("gmn-small", urn_concentration=1.0, urn_atoms=-2)
    with pytest.raises(ValueError, match="needs urn_concentration"):
        build("vae-small", urn_atoms=20)


TINY = {
    "ns-small": {"c_dim": 4, "z_dim": 3, "hidden": 16, "channels": 4},
    "gmn-small": {"z_dim": 3, "state_dim": 8, "hidden": 16, "channels": 4},
    "gmn-small/mixture+image-read": {"z_dim": 3, "state_dim": 8, "hidden": 16, "channels": 4,
                                     "prior": "mixture", "image_read": True},
    "cvae-small/last": {"z_dim": 3, "hidden": 16, "channels": 4, "condition_on": "last"},
}


def tiny(case: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(case.split("/")[0], **TINY[case], **kw).eval()


def with_repeats() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets of 5 drawings with exact repeats, and the mask of their distinct items."""
    torch.manual_seed(1)
    x = torch.rand(2, 5, 1, 28, 28).bernoulli()
    x[0, 3], x[1, 2], x[1, 4] = x[0, 1], x[1, 0], x[1, 0]
    distinct = torch.tensor([[True, True, True, False, True], [True, True, False, True, False]])
    return x, distinct


@pytest.mark.parametrize("case", list(TINY))
def test_a_masked_item_is_as_if_absent(case: str) -> None:
    """What the urn relies on in every model: the model's and the guide's densities of a set
    whose item is masked out equal those of the set without it, for the same latent values."""
    m = tiny(case)
    x, _ = with_repeats()
    x, keep = x[:1], [0, 2, 4]
    mask = torch.tensor([[True, False, True, False, True]])
    xc = x[:, keep]
    guide = poutine.trace(m.guide).get_trace(xc)
    vals_c, vals = {}, {}
    for name, site in guide.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and name in ("c", "z"):
            v = site["value"]
            vals_c[name] = v
            if name == "z":
                full = torch.randn(*v.shape[:-2], 5, v.shape[-1])  # holes: any value
                full[..., keep, :] = v
                v = full
            vals[name] = v

    def log_density(fn, xs, mk, data) -> float:
        return poutine.trace(poutine.condition(fn, data=data)).get_trace(xs, mk).log_prob_sum()

    for fn in (m.model, m.guide):
        got = log_density(fn, x, mask, vals)
        ref = log_density(fn, xc, None, vals_c)
        assert got.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-3)


@pytest.mark.parametrize("case", list(TINY))
def test_urn_log_marginal_is_the_partition_plus_the_distinct_items(case: str) -> None:
    plain, withurn = tiny(case), tiny(case, urn_concentration=2.5)
    x, distinct = with_repeats()
    torch.manual_seed(3)
    got = withurn.log_marginal(x, num_particles=7)
    torch.manual_seed(3)
    ref = plain.log_marginal(x, distinct, num_particles=7)
    for b in range(2):
        part = partition_log_prob(set_partition(x[b]), 2.5)
        assert got[b].item() == pytest.approx(ref[b].item() + part, abs=1e-3)


@pytest.mark.parametrize("case", list(TINY))
def test_urn_conditionals_are_exact_at_repeats_and_the_model_elsewhere(case: str) -> None:
    """The NLL table's estimator with an urn: log w_copy at a repeat (no sampling), and
    log w_new plus the model's own conditional given the distinct earlier items elsewhere
    (the same draws, the same seed)."""
    plain, withurn = tiny(case), tiny(case, urn_concentration=2.5, urn_atoms=6)
    x, distinct = with_repeats()
    pos = [1, 2, 3, 4]
    torch.manual_seed(5)
    got = withurn.conditional_log_likelihoods(x, num_particles=6, positions=pos)
    torch.manual_seed(5)
    ref = plain.conditional_log_likelihoods(x, distinct, num_particles=6, positions=pos)
    a = 2.5 / 6  # theta / N
    expect_copy = {(0, 3): math.log((1 + a) / (2.5 + 3)), (1, 2): math.log((1 + a) / (2.5 + 2)),
                   (1, 4): math.log((2 + a) / (2.5 + 4))}
    for b in range(2):
        for j, t in enumerate(pos):
            if (b, t) in expect_copy:
                assert got[b, j].item() == pytest.approx(expect_copy[b, t], abs=1e-5)
                continue
            k = int(distinct[b, :t].sum())
            shift = math.log(2.5 * (1 - k / 6) / (2.5 + t))
            assert got[b, j].item() == pytest.approx(ref[b, j].item() + shift, abs=1e-3)
    query = x[:, 3:4]  # the predictive: a repeat of the context is log w_copy
    lp = withurn.log_predictive(query, x[:, :3], num_particles=4)
    assert lp[0, 0].item() == pytest.approx(math.log((1 + a) / (2.5 + 3)), abs=1e-5)


@pytest.mark.parametrize("case", ["ns-small", "gmn-small"])
def test_urn_training_loss_is_the_distinct_items_bound_plus_the_urn(case: str) -> None:
    plain, withurn = tiny(case), tiny(case, urn_concentration=2.5)
    x, distinct = with_repeats()
    torch.manual_seed(7)
    got = ELBOLoss(withurn)(x) * 10
    torch.manual_seed(7)
    ref = ELBOLoss(plain)(x, distinct) * 7
    _, terms = Urn(2.5).split(x, torch.ones(2, 5, dtype=torch.bool))
    assert got.item() == pytest.approx(ref.item() - terms.sum().item(), rel=1e-5)
    torch.manual_seed(8)
    split = elbo_terms(withurn, x, num_particles=2)
    assert torch.allclose(split["urn"], -terms.sum(-1))
    if case == "gmn-small":  # per item: a repeat scores only its urn term
        items = elbo_terms(withurn, x, num_particles=2, per_item=True)
        assert torch.allclose(items["urn"], -terms)
        assert (items["z"][~distinct] == 0).all() and (items["x"][~distinct] == 0).all()


def test_ns_urn_context_ignores_repeats_and_the_plugin_copies() -> None:
    m = tiny("ns-small", urn_concentration=2.5)
    x = torch.rand(1, 3, 1, 28, 28).bernoulli()
    x[:, 2] = x[:, 0]
    q3, q2 = m.context_posterior(x), m.context_posterior(x[:, :2])
    assert torch.equal(q3.base_dist.loc, q2.base_dist.loc)
    plug = m.log_predictive_plugin(x[:, :1], x[:, 1:], num_particles=5)
    assert plug.item() == pytest.approx(math.log(1 / 4.5), abs=1e-5)


def test_urn_settings_export_onto_a_plain_checkpoint(tmp_path) -> None:
    plain = tiny("gmn-small")
    save_checkpoint(tmp_path / "plain.pt", plain)
    state = export_checkpoint(tmp_path / "plain.pt", tmp_path / "urn.pt",
                              settings={"urn_concentration": 14.3, "urn_atoms": 20})
    assert state["extra"]["export_settings"] == {"urn_concentration": 14.3, "urn_atoms": 20}
    model, _ = model_from_checkpoint(tmp_path / "urn.pt")
    assert model.urn == Urn(14.3, 20)
    assert model.config()["urn_concentration"] == 14.3
    with pytest.raises(CheckpointError, match="do not fit"):
        export_checkpoint(tmp_path / "plain.pt", tmp_path / "bad.pt", settings={"hidden": 5})
    assert not (tmp_path / "bad.pt").exists()


def test_urn_diagnostics_leave_out_the_exact_repeats() -> None:
    from ppl_fewshot.diagnostics import conditional_importance_diagnostics

    m = tiny("gmn-small", urn_concentration=2.5)
    x, distinct = with_repeats()
    out = conditional_importance_diagnostics(m, x, positions=[1, 2, 3, 4], num_particles=8)
    assert torch.equal(torch.isnan(out["khat"]), ~distinct[:, 1:])
