"""One evaluation protocol for every model: NLL tables, few-shot classification, CLI, report.

Exact references: the Beta-Bernoulli predictive (NLL table), the Bayes-optimal accuracy of a
Beta-Bernoulli classification problem (enumerated), and the exact pixel model (guide =
posterior, so importance sampling is exact) on perfectly separable classes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pyro
import pytest
import torch

from ppl_fewshot import models
from ppl_fewshot.cli import main
from ppl_fewshot.data import ClassDataset, Episode, load_bank
from ppl_fewshot.inference import ELBOLoss, TrainConfig, nll_table, train
from ppl_fewshot.inference.classify import (
    accuracy,
    classify,
    likelihood_scores,
    make_tasks,
    min_kl_scores,
    predict,
    wilson_interval,
)
from ppl_fewshot.inference.compare import compare, paired_nll
from ppl_fewshot.inference.report import PUBLISHED, collect_results, nll_curves, render_report
from tests.conftest import make_prototype_classes, one_line_error, run


# ------------------------------------------------------------------------ NLL table
@pytest.fixture(scope="module")
def fitted_beta_bernoulli():
    """Beta-Bernoulli whose amortized guide is trained (a few seconds) to near the posterior."""
    pyro.set_rng_seed(0)
    m = models.build("beta-bernoulli", dim=3)
    loss, opt = ELBOLoss(m), torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(200):
        x, mask, _ = m.simulate(64, 8)
        value = loss(x, mask)
        opt.zero_grad()
        value.backward()
        opt.step()
    return m.eval()


def test_nll_table_equals_exact_predictive_on_conjugate_model(fitted_beta_bernoulli) -> None:
    m, E, T = fitted_beta_bernoulli, 150, 6
    pyro.set_rng_seed(1)
    x, mask, _ = m.simulate(E, T, sizes=torch.full((E,), T))
    bank = Episode(x, torch.zeros(E, T, dtype=torch.long), mask)
    shots = (0, 1, 2, 5)
    table = nll_table(m, bank, shots, num_particles=300, batch_size=E)
    ev = torch.stack([m.exact_log_evidence(x[:, : t + 1]) for t in range(T)], 1)
    exact = -(ev - torch.cat([torch.zeros(E, 1), ev[:, :-1]], 1))[:, list(shots)]
    # same episodes, so only Monte Carlo error separates them (measured ~0.01 nats)
    assert torch.allclose(torch.tensor(table["nll"]), exact.mean(0), atol=0.05), (table, exact)
    assert table["nll"][0] == pytest.approx(float(exact[:, 0].mean()), abs=2e-3)  # q = prior
    # all positions (telescoping prefixes) agree with the asked-positions-only path
    full = -m.conditional_log_likelihoods(x, mask, 300)[:, list(shots)]
    assert torch.allclose(full.mean(0), exact.mean(0), atol=0.05), (full.mean(0), exact)
    se = exact.std(0) / math.sqrt(E)
    assert torch.allclose(torch.tensor(table["se"]), se, rtol=0.2, atol=0.01)


def test_in_memory_tables_pair_with_the_exact_answer(fitted_beta_bernoulli, tmp_path) -> None:
    """``paired_nll`` on two ``nll_table`` results in memory: the estimator against the exact
    conditional NLL per episode; the paired error is importance sampling's alone."""
    m, E, T = fitted_beta_bernoulli, 100, 4
    pyro.set_rng_seed(2)
    x, mask, _ = m.simulate(E, T, sizes=torch.full((E,), T))
    bank = Episode(x, torch.zeros(E, T, dtype=torch.long), mask)
    shots = (0, 1, 3)
    ev = torch.stack([m.exact_log_evidence(x[:, : t + 1]) for t in range(T)], 1)
    exact = -(ev - torch.cat([torch.zeros(E, 1), ev[:, :-1]], 1))[:, list(shots)]
    truth = {"label": "exact", "shots": list(shots), "per_episode": exact.tolist()}
    table = nll_table(m, bank, shots, num_particles=100, batch_size=E)
    pair = paired_nll(truth, {**table, "label": "K 100"})
    assert (pair.base, pair.new, pair.episodes) == ("exact", "K 100", E)
    for j, col in enumerate(pair.columns):
        d = torch.tensor(table["per_episode"], dtype=torch.float64)[:, j] - exact[:, j].double()
        assert col.diff == pytest.approx(float(d.mean()), abs=1e-6)
        assert col.se == pytest.approx(float(d.std() / math.sqrt(E)), rel=1e-4)
        assert abs(col.diff) < 4 * col.se + 0.01  # unbiased up to importance sampling
        assert col.se < 0.25 * table["se"][j]  # the episodes' spread cancels
    assert compare(truth, table).base == "exact"
    with pytest.raises(ValueError, match="different banks"):  # a table does not name its bank
        paired_nll(truth, _write_nll_folder(tmp_path, table))
    with pytest.raises(ValueError, match="'shots' and 'per_episode'"):
        paired_nll({"shots": [0]}, truth)
    with pytest.raises(ValueError, match="one value per shot column"):
        paired_nll({"shots": [0], "per_episode": [[1.0, 2.0]]}, truth)


def _write_nll_folder(tmp_path, table):
    """``table`` saved as an ``evaluate`` folder of a named bank."""
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "nll.json").write_text(json.dumps({"bank": "/b/x-E100.pt", "shots": table["shots"]}))
    (folder / "nll_episodes.csv").write_text(
        "episode," + ",".join(f"shots_{s}" for s in table["shots"]) + "\n" + "".join(
            f"{i}," + ",".join(map(str, r)) + "\n" for i, r in enumerate(table["per_episode"])))
    return folder


def test_episode_bank_is_fixed_across_runs_and_models(capsys, tmp_path, monkeypatch,
                                                       checkpoint) -> None:
    monkeypatch.setenv("PPL_FEWSHOT_CACHE", str(tmp_path / "cache"))
    from ppl_fewshot.inference.eval_data import test_bank

    a, pa = test_bank("glyphs", 1, 6, 4, "distinct", 3, None)
    b, pb = test_bank("glyphs", 1, 6, 4, "distinct", 3, None)  # from the cache
    assert pa == pb and torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels)
    c, _ = test_bank("glyphs", 1, 6, 4, "distinct", 4, None)
    assert not torch.equal(a.x, c.x)
    # two different models evaluated through the CLI read the very same bank file
    ck = checkpoint
    banks = []
    for i, argv in enumerate((["--checkpoint", str(ck)], ["--model", "pixel-beta-bernoulli",
                                                          "--fit-steps", "2"])):
        out = tmp_path / f"o{i}"
        code, _, err = run(["evaluate", *argv, "--protocol", "glyphs", "--episodes", "4",
                            "--set-size", "6", "--shots", "0,1,5", "--sampler", "distinct",
                            "--seed", "3", "--samples", "3", "--out", str(out)], capsys)
        assert code == 0, err
        banks.append(json.loads((out / "nll.json").read_text())["bank"])
    assert banks[0] == banks[1] == str(pa)
    assert torch.equal(load_bank(banks[0]).x, a.x)


# ------------------------------------------------------------------ classification
def test_make_tasks_is_seeded_and_well_formed() -> None:
    ds = make_prototype_classes(8, 6)
    t1, t2 = make_tasks(ds, 7, 5, 2, 2, seed=1), make_tasks(ds, 7, 5, 2, 2, seed=1)
    assert torch.equal(t1.support, t2.support) and torch.equal(t1.query, t2.query)
    assert not torch.equal(make_tasks(ds, 7, 5, 2, 2, seed=2).support, t1.support)
    assert t1.support.shape == (7, 5, 2, 1, 28, 28) and t1.query.shape == (7, 10, 1, 28, 28)
    assert t1.labels.tolist()[0] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert all(len(set(row)) == 5 for row in t1.classes.tolist())  # distinct classes per task
    with pytest.raises(ValueError, match="classes"):
        make_tasks(ds, 1, 9, 1)
    with pytest.raises(ValueError, match="drawings"):
        make_tasks(ds, 1, 2, 6, 1)


def test_wilson_interval_and_random_tie_breaking() -> None:
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    pred = predict(torch.zeros(4000, 1, 4), seed=0)  # all tied: uniform over the 4 classes
    counts = torch.bincount(pred.flatten(), minlength=4).float() / 4000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.03)


def _bayes_accuracy(m, dim: int) -> float:
    """Exact accuracy of argmax_c p(q | s_c), 2-way 1-shot, by enumerating all binary items."""
    items = torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)))
    n = len(items)
    i0, i1, iq = (g.reshape(-1) for g in torch.meshgrid(
        torch.arange(n), torch.arange(n), torch.arange(n), indexing="ij"))
    s0, s1, q = items[i0], items[i1], items[iq]
    joint = (m.exact_log_evidence(torch.stack([s0, q], 1))
             + m.exact_log_evidence(s1.unsqueeze(1))).exp()  # P(s0, s1, q | q from class 0)
    l0 = m.exact_log_predictive(q.unsqueeze(1), s0.unsqueeze(1))[:, 0]
    l1 = m.exact_log_predictive(q.unsqueeze(1), s1.unsqueeze(1))[:, 0]
    win = (l0 > l1).double() + 0.5 * (l0 == l1).double()
    assert float(joint.sum()) == pytest.approx(1.0, abs=1e-5)
    return float((joint * win).sum())


def test_likelihood_classification_reaches_bayes_optimal_accuracy(fitted_beta_bernoulli) -> None:
    dim, m = 3, fitted_beta_bernoulli
    bayes = _bayes_accuracy(m, dim)
    assert 0.55 < bayes < 0.9
    pyro.set_rng_seed(2)  # classes drawn from the model's own prior: 4000 classes of 2 items
    x, _, _ = m.simulate(4000, 2, sizes=torch.full((4000,), 2))
    ds = ClassDataset((x * 255).to(torch.uint8).reshape(4000, 2, 1, 1, dim),
                      [f"c{i}" for i in range(4000)], "fixed", "beta-bernoulli")
    tasks = make_tasks(ds, 3000, 2, 1, 1, seed=0)
    res = classify(m, tasks, "likelihood", exact=True)
    n = res["decisions"]
    assert n == 6000
    assert abs(res["accuracy"] / 100 - bayes) < 3.3 * math.sqrt(bayes * (1 - bayes) / n)
    # the importance-sampled path scores the same pairs: it must agree with the exact one
    small = make_tasks(ds, 100, 2, 1, 1, seed=1)
    ex = likelihood_scores(m, small, exact=True)
    est = likelihood_scores(m, small, num_particles=400)
    assert (est - ex).abs().max() < 0.1


def test_separable_classes_give_100_percent_and_shuffled_labels_give_chance() -> None:
    ds = make_prototype_classes(12, 6)
    pix = models.build("pixel-beta-bernoulli")
    tasks = make_tasks(ds, 60, 5, 1, 2, seed=0)
    # guide = exact posterior, so importance sampling (any chunking) equals the exact score
    few = make_tasks(ds, 6, 5, 1, 2, seed=1)
    ex = likelihood_scores(pix, few, exact=True)
    est = likelihood_scores(pix, few, num_particles=2, max_items=100)  # 25 pairs a call
    assert torch.allclose(est, ex, atol=1e-2)
    assert classify(pix, tasks, "likelihood", exact=True)["accuracy"] == 100.0
    assert classify(pix, tasks, "min-kl")["accuracy"] == 100.0
    assert classify(pix, tasks, "min-kl-reverse")["accuracy"] == 100.0
    # the two KL directions, checked against the closed form of one pair
    fwd, rev = min_kl_scores(pix, few), min_kl_scores(pix, few, reverse=True)
    qx = pix.context_posterior(few.query[:1, :1].reshape(1, 1, *pix.event_shape))
    qs = pix.context_posterior(few.support[:1, 2].reshape(1, 1, *pix.event_shape))
    kl = torch.distributions.kl_divergence
    assert torch.allclose(fwd[0, 0, 2], -kl(qx, qs)[0]) and torch.allclose(rev[0, 0, 2],
                                                                          -kl(qs, qx)[0])
    assert not torch.allclose(fwd, rev)
    g = torch.Generator().manual_seed(0)
    tasks.labels = torch.stack([row[torch.randperm(row.numel(), generator=g)]
                                for row in tasks.labels])
    res = classify(pix, tasks, "likelihood", exact=True)
    assert res["ci95"][0] < 20.0 < res["ci95"][1]


def test_context_free_vae_is_at_chance_and_cosine_runs() -> None:
    ds = make_prototype_classes(12, 4)
    vae = models.build("vae-small")
    tasks = make_tasks(ds, 80, 5, 1, 1, seed=0)
    res = classify(vae, tasks, "likelihood", num_particles=3)
    assert res["ci95"][0] < 20.0 < res["ci95"][1]  # log p(x | X_c) = log p(x): ties, chance
    cos = classify(vae, tasks, "cosine")
    assert cos["decisions"] == 400 and 0 <= cos["accuracy"] <= 100
    with pytest.raises(ValueError, match="per-set latent"):
        classify(vae, tasks, "min-kl")
    with pytest.raises(ValueError, match="unknown method"):
        classify(vae, tasks, "telepathy")


def test_task_norm_stats_normalize_each_task_by_its_own_items() -> None:
    """``norm_stats="task"``: a task's support sets are normalized together, its queries
    together (by hand: a copy in training mode), no other task counts, and the running
    averages are left as they were."""
    import copy

    from ppl_fewshot.nn import batch_statistics

    ds = make_prototype_classes(12, 6)
    torch.manual_seed(0)
    ns = models.build("ns", c_dim=3, z_dim=2, hidden=16, channels=2, norm="batch")
    with torch.no_grad():  # move the running averages away from their initial values
        ns.train().context_posterior(ds.to_float(ds.images[:4]))
    ns.eval()
    tasks = make_tasks(ds, 5, 3, 2, 1, seed=0)
    state = copy.deepcopy(ns.state_dict())
    task = classify(ns, tasks, "min-kl-reverse", norm_stats="task")
    assert task["norm_stats"] == "task" and "transductive" in task["estimator"]
    assert all(torch.equal(v, ns.state_dict()[k]) for k, v in state.items())
    hand = copy.deepcopy(ns).train()
    rows = []
    with torch.no_grad():
        for i in range(tasks.num_tasks):
            qs = hand.context_posterior(tasks.support[i])  # the 3 support sets of task i
            qx = hand.context_posterior(tasks.query[i].unsqueeze(1))  # its 3 queries
            rows.append(-torch.stack([torch.distributions.kl_divergence(
                torch.distributions.Normal(qs.base_dist.loc[w], qs.base_dist.scale[w]),
                torch.distributions.Normal(qx.base_dist.loc, qx.base_dist.scale)).sum(-1)
                for w in range(3)], -1))
            one = dataclasses.replace(tasks, support=tasks.support[i : i + 1],
                                      query=tasks.query[i : i + 1])
            with batch_statistics(ns) as n:
                assert n == sum(k.endswith("running_mean") for k in state)
                assert torch.allclose(min_kl_scores(ns, one, reverse=True)[0], rows[-1],
                                      atol=1e-4, rtol=1e-4)
    hand_scores = torch.stack(rows)
    assert task["correct"] == accuracy(predict(hand_scores), tasks.labels)["correct"]
    running = min_kl_scores(ns, tasks, reverse=True)
    assert not torch.allclose(running, hand_scores, atol=1e-3)  # the statistics matter
    with pytest.raises(ValueError, match="norm_stats"):
        classify(ns, tasks, "min-kl", norm_stats="batch")
    with pytest.raises(ValueError, match="needs batch normalization"):
        classify(models.build("ns-small"), tasks, "min-kl", norm_stats="task")


# ------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A vae-small trained for 2 steps on synthetic classes."""
    out = tmp_path_factory.mktemp("ck") / "run"
    data = (make_prototype_classes(6, 10), make_prototype_classes(2, 10, seed=3))
    cfg = TrainConfig(model="vae-small", protocol="synthetic", steps=2, batch_size=2,
                      set_size=2, val_batches=1, checkpoint_every=2, device="cpu")
    train(cfg, out, data=data, progress=False)
    return out / "checkpoint.pt"


@pytest.fixture(autouse=True)
def _glyphs_once(monkeypatch):
    """The synthetic ``glyphs`` protocol is regenerated on every load: memoize it here."""
    import ppl_fewshot.data as data
    import ppl_fewshot.inference.eval_data as eval_data

    real = data.load_split

    def cached(protocol, split, data_dir=None):
        key = (protocol, split)
        if protocol == "glyphs" and key not in _GLYPHS:
            _GLYPHS[key] = real(protocol, split, data_dir)
        return _GLYPHS[key] if protocol == "glyphs" else real(protocol, split, data_dir)

    monkeypatch.setattr(data, "load_split", cached)
    monkeypatch.setattr(eval_data, "load_split", cached)


_GLYPHS: dict = {}


@pytest.mark.parametrize("extra, needle", [
    (["--task", "bogus"], "unknown task"),
    (["--methods", "likelihood,bogus"], "unknown method"),
    (["--samples", "0"], "positive"),
    (["--classify-samples", "-1"], "positive"),
    (["--proposal-scale", "0"], "> 0"),
    (["--proposal-scale", "wide"], "wide"),
    (["--task", "classify", "--proposal-scale", "fit"], "--task nll"),
    (["--proposal-scale", "fit", "--ais-steps", "2"], "plain importance sampling"),
    (["--proposal-scale", "fit", "--fit-scales", "1,0"], "positive numbers"),
    (["--ways", "0"], "positive"),
    (["--task", "classify", "--ways", "41"], "41-way"),
    (["--task", "classify", "--k-shots", "20"], "drawings per class"),
    (["--task", "classify", "--methods", "min-kl"], "per-set latent"),
    (["--classes", "99"], "test classes"),
    (["--sampler", "distinct", "--set-size", "30"], "distinct items"),
    (["--model", "vae"], "exactly one"),
    (["--protocol", "nope"], "unknown protocol"),
    (["--binarization", "none"], "applies to classification"),
    (["--task", "classify", "--binarization", "none"], "likelihood classification scores"),
    (["--task", "classify", "--norm-stats", "task"], "batch normalization"),
])
def test_evaluate_bad_arguments_one_line_nothing_written(extra, needle, capsys, tmp_path,
                                                          checkpoint) -> None:
    ck = checkpoint
    out = tmp_path / "out"
    argv = ["evaluate", "--checkpoint", str(ck), "--protocol", "glyphs", *extra, "--out", str(out)]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and needle in one_line_error(err)
    assert not out.exists(), "nothing may be written on error"


def test_model_without_checkpoint_must_be_fittable(capsys, tmp_path) -> None:
    code, _, err = run(["evaluate", "--model", "vae", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "needs a trained --checkpoint" in one_line_error(err)
    assert not (tmp_path / "o").exists()


def test_evaluate_tasks_and_report(capsys, tmp_path, checkpoint) -> None:
    ck = checkpoint
    out = tmp_path / "cls"
    code, stdout, err = run(["evaluate", "--checkpoint", str(ck), "--task", "classify",
                             "--protocol", "glyphs", "--ways", "5", "--k-shots", "1,2",
                             "--tasks", "6", "--classify-samples", "2", "--out", str(out)], capsys)
    assert code == 0, err
    res = json.loads((out / "classify.json").read_text())
    assert res["label"] == "vae-small (ppl_fewshot)" and len(res["checkpoint_sha256"]) == 64
    assert res["training_budget"]["steps"] == 2 and "wall_time_s" in res["training_budget"]
    assert {(r["method"], r["ways"], r["shots"]) for r in res["classification"]} == {
        (m, 5, k) for m in ("likelihood", "cosine") for k in (1, 2)}
    assert "5-way 2-shot" in (out / "classify.md").read_text()
    assert res["test_binarization"] == "fixed"
    code, _, err = run(["evaluate", "--checkpoint", str(ck), "--task", "classify",
                        "--protocol", "glyphs", "--ways", "5", "--k-shots", "1", "--tasks", "6",
                        "--methods", "cosine", "--binarization", "none", "--out",
                        str(tmp_path / "grey")], capsys)
    assert code == 0, err
    grey = json.loads((tmp_path / "grey" / "classify.json").read_text())
    assert grey["test_binarization"] == "none" and len(grey["classification"]) == 1
    assert "test binarization `none`" in (tmp_path / "grey" / "classify.md").read_text()
    assert (out / "classify.csv").read_text().count("\n") >= 5
    pix = tmp_path / "pix"
    code, _, err = run(["evaluate", "--model", "pixel-beta-bernoulli", "--task", "transfer",
                        "--protocol", "glyphs", "--fit-steps", "3", "--episodes", "3",
                        "--set-size", "6", "--shots", "0,1,5", "--ways", "3", "--k-shots", "1",
                        "--tasks", "5", "--out", str(pix)], capsys)
    assert code == 0, err
    tr = json.loads((pix / "transfer.json").read_text())
    assert tr["nll"]["shots"] == [0, 1, 5] and "exact" in tr["nll"]["estimator"]
    assert tr["training_budget"]["steps"] == 3 and (pix / "pixel-beta-bernoulli.pt").exists()
    assert {r["method"] for r in tr["classification"]} == {"likelihood", "min-kl",
                                                           "min-kl-reverse"}
    # report: ours beside the published numbers, with a plot
    page = tmp_path / "docs" / "results.md"
    code, _, err = run(["report", "--results", str(out), str(pix), "--out", str(page)], capsys)
    assert code == 0, err
    text = page.read_text()
    assert "vae-small (ppl_fewshot) [glyphs, 2 steps]" in text and "pixel-beta-bernoulli" in text
    assert "| GMN, C_train=2 (published) | 1 | authors' | 1000 | | 89.7 |" in text
    assert "82.7" in text and "78.6" in text and page.with_suffix(".png").exists()
    assert len(collect_results([out, pix])) == 2


def test_set_latent_model_through_the_cli(capsys, tmp_path) -> None:
    out = tmp_path / "ns"
    data = (make_prototype_classes(6, 10), make_prototype_classes(2, 10, seed=3))
    cfg = TrainConfig(model="ns-small", protocol="synthetic", steps=2, batch_size=2,
                      set_size=2, val_batches=1, checkpoint_every=2, device="cpu")
    train(cfg, out, data=data, progress=False)
    code, _, err = run(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--task",
                        "transfer", "--protocol", "glyphs", "--episodes", "2", "--set-size", "4",
                        "--shots", "0,1,3", "--samples", "3", "--ways", "3", "--k-shots", "1",
                        "--tasks", "3", "--classify-samples", "2", "--out", str(tmp_path / "o")],
                       capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "transfer.json").read_text())
    assert len(res["nll"]["nll"]) == 3 and all(math.isfinite(v) for v in res["nll"]["nll"])
    psis = res["nll"]["psis"]  # k-hat of the estimates behind the table, per shot
    assert psis["episodes"] == 2 and len(psis["median"]) == len(psis["ess_median"]) == 3
    assert "PSIS k-hat" in (tmp_path / "o" / "transfer.md").read_text()
    assert [r["method"] for r in res["classification"]] == ["likelihood", "cosine", "min-kl",
                                                            "min-kl-reverse"]
    # nested importance sampling: recorded in the result, the PSIS record and the report
    code, _, err = run(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--task", "nll",
                        "--protocol", "glyphs", "--episodes", "2", "--set-size", "4", "--shots",
                        "0,3", "--samples", "3", "--inner-samples", "2", "--khat-episodes", "2",
                        "--out", str(tmp_path / "n")], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "n" / "nll.json").read_text())
    assert res["inner_particles"] == 2 and res["psis"]["inner_particles"] == 2
    assert res["estimator"].startswith("nested importance sampling, K=3")
    assert all(math.isfinite(v) for v in res["nll"])
    code, _, err = run(["report", "--results", str(tmp_path / "n"), "--out",
                        str(tmp_path / "r.md"), "--no-plot"], capsys)
    assert code == 0, err
    assert "| 3 x 2 nested |" in (tmp_path / "r.md").read_text()
    # ... and in the likelihood classifier (the other methods draw no importance samples)
    code, _, err = run(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--task",
                        "classify", "--protocol", "glyphs", "--ways", "3", "--k-shots", "1",
                        "--tasks", "3", "--classify-samples", "2", "--inner-samples", "3",
                        "--methods", "likelihood,cosine", "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "c" / "classify.json").read_text())["classification"]
    assert "x 3 of each item's latents" in rows[0]["estimator"]
    assert rows[1]["estimator"].startswith("cosine")
    code, _, err = run(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--task",
                        "classify", "--protocol", "glyphs", "--ways", "3", "--k-shots", "1",
                        "--tasks", "3", "--inner-samples", "3", "--methods", "cosine",
                        "--out", str(tmp_path / "bad")], capsys)
    assert code == 2 and "use none" in one_line_error(err)
    assert not (tmp_path / "bad").exists()


def test_report_errors_and_published_data(capsys, tmp_path) -> None:
    code, _, err = run(["report", "--results", str(tmp_path / "missing"),
                        "--out", str(tmp_path / "r.md")], capsys)
    assert code == 2 and "does not exist" in one_line_error(err)
    (tmp_path / "empty").mkdir()
    code, _, err = run(["report", "--results", str(tmp_path / "empty"),
                        "--out", str(tmp_path / "r.md")], capsys)
    assert code == 2 and "no evaluation results" in one_line_error(err)
    assert not (tmp_path / "r.md").exists()
    rows = PUBLISHED["omniglot_nll"]["rows"]
    assert rows[0][2][19] == 45.8 and len(rows) == 11
    assert PUBLISHED["omniglot_classification"]["rows"][0][2][(20, 5)] == 90.8
    assert "(published)" in render_report([{"label": "x (ppl_fewshot)", "task": "classify",
                                            "protocol": "gmn28", "_file": "f",
                                            "classification": []}])


def test_model_label_names_the_settings_that_differ_from_the_preset() -> None:
    from ppl_fewshot.models import label as model_label

    assert model_label(models.build("ns-small")) == "ns-small"
    m = models.build("ns-small", c_dim=8, sample_dropout=0.1)
    assert model_label(m) == "ns-small[c_dim=8,sample_dropout=0.1]"


def test_evaluate_with_annealing_records_it_in_result_and_report(capsys, tmp_path,
                                                                  checkpoint) -> None:
    out = tmp_path / "ais"
    code, _, err = run(["evaluate", "--checkpoint", str(checkpoint), "--protocol", "glyphs",
                        "--episodes", "2", "--set-size", "3", "--shots", "0,2", "--samples", "2",
                        "--ais-steps", "3", "--ais-leapfrog", "1", "--khat-episodes", "2",
                        "--out", str(out)], capsys)
    assert code == 0, err
    res = json.loads((out / "nll.json").read_text())
    assert res["ais"]["steps"] == 3 and res["ais"]["leapfrog"] == 1
    rows = (out / "nll_episodes.csv").read_text().splitlines()
    assert rows[0] == "episode,shots_0,shots_2" and len(rows) == 3
    per_ep = torch.tensor([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
    assert torch.allclose(per_ep.mean(0), torch.tensor(res["nll"]), atol=2e-3)
    assert "annealed through 3 distributions" in res["estimator"]
    assert all(math.isfinite(v) for v in res["nll"]) and "psis" in res
    code, _, err = run(["report", "--results", str(out), "--out", str(tmp_path / "r.md"),
                        "--no-plot"], capsys)
    assert code == 0, err
    assert "| 2, AIS 3 |" in (tmp_path / "r.md").read_text()
    for extra, words in ((["--inner-samples", "2"], "has none"),  # no per-set latent
                         (["--inner-samples", "2", "--ais-steps", "2"], "choose one")):
        code, _, err = run(["evaluate", "--checkpoint", str(checkpoint), "--protocol", "glyphs",
                            "--episodes", "2", *extra, "--out", str(tmp_path / "bad")], capsys)
        assert code == 2 and words in one_line_error(err)
        assert not (tmp_path / "bad").exists()


def test_evaluate_with_a_widened_proposal_records_it(capsys, tmp_path, checkpoint) -> None:
    out = tmp_path / "wide"
    code, _, err = run(["evaluate", "--checkpoint", str(checkpoint), "--protocol", "glyphs",
                        "--task", "nll", "--episodes", "2", "--set-size", "3", "--shots", "0,2",
                        "--samples", "4", "--khat-episodes", "0", "--proposal-scale", "1.5",
                        "--out", str(out)], capsys)
    assert code == 0, err
    res = json.loads((out / "nll.json").read_text())
    assert res["proposal_scale"] == 1.5 and "Normal scales x 1.5" in res["estimator"]
    # the same bank at x 1, paired per episode with the widened one (ppl-fewshot compare)
    code, _, err = run(["evaluate", "--checkpoint", str(checkpoint), "--protocol", "glyphs",
                        "--task", "nll", "--episodes", "2", "--set-size", "3", "--shots", "0,2",
                        "--samples", "4", "--khat-episodes", "0", "--out", str(tmp_path / "x1")],
                       capsys)
    assert code == 0, err
    plain = json.loads((tmp_path / "x1" / "nll.json").read_text())
    pair = paired_nll(tmp_path / "x1", out)
    assert pair.episodes == 2 and [c.shots for c in pair.columns] == [0, 2]
    for c, a, b in zip(pair.columns, plain["nll"], res["nll"]):
        assert (c.base, c.new, c.diff) == pytest.approx((a, b, b - a), abs=2e-3)
    code, _, err = run(["evaluate", "--checkpoint", str(checkpoint), "--protocol", "glyphs",
                        "--task", "classify", "--ways", "2", "--k-shots", "1", "--tasks", "2",
                        "--classify-samples", "2", "--methods", "likelihood,cosine",
                        "--proposal-scale", "1.5", "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "c" / "classify.json").read_text())["classification"]
    assert ["x 1.5" in r["estimator"] for r in rows] == [True, False]
    # the same tasks at x 1, paired per task: the mean of the per-task differences is the
    # difference of the accuracies (equal queries per task), cosine does not move
    code, _, err = run(["evaluate", "--checkpoint", str(checkpoint), "--protocol", "glyphs",
                        "--task", "classify", "--ways", "2", "--k-shots", "1", "--tasks", "2",
                        "--classify-samples", "2", "--methods", "likelihood,cosine",
                        "--out", str(tmp_path / "c1")], capsys)
    assert code == 0, err
    plain = json.loads((tmp_path / "c1" / "classify.json").read_text())["classification"]
    lik, cos = compare(tmp_path / "c1", tmp_path / "c").classification
    assert [len(r["correct_per_task"]) for r in rows] == [2, 2]
    assert lik.diff == pytest.approx(rows[0]["accuracy"] - plain[0]["accuracy"])
    assert (cos.method, cos.diff, cos.se) == ("cosine", 0.0, 0.0)


def test_evaluate_fits_the_proposal_scale_on_other_episodes(capsys, tmp_path, checkpoint) -> None:
    """``--proposal-scale fit`` scores its own seeded episodes at every candidate scale, keeps the
    best, and then gives the table that scale given by hand gives (the fit leaves the
    estimator's random state alone)."""
    common = ["evaluate", "--checkpoint", str(checkpoint), "--protocol", "glyphs", "--episodes",
              "2", "--set-size", "3", "--shots", "0,2", "--samples", "4", "--khat-episodes", "0"]
    out = tmp_path / "fit"
    code, _, err = run([*common, "--proposal-scale", "fit", "--fit-scales", "1.5,3",
                        "--fit-episodes", "3", "--fit-split", "test", "--out", str(out)], capsys)
    assert code == 0, err
    res = json.loads((out / "nll.json").read_text())
    fit = res["proposal_fit"]
    assert fit["scales"] == [1.5, 3.0] and fit["episodes"] == 3 and fit["split"] == "test"
    assert fit["num_particles"] == 4 and fit["shots"] == [0, 2] and fit["paired_se"][
        fit["scales"].index(fit["best"])] == 0
    assert fit["best"] == fit["scales"][min(range(2), key=fit["nll"].__getitem__)]
    assert fit["bank"] != res["bank"] and "-E3-" in fit["bank"]  # other episodes than the table's
    assert res["proposal_scale"] == fit["best"] and f"x {fit['best']:g}" in res["estimator"]
    assert f"x {fit['best']:g} (mean NLL per item" in (out / "nll.md").read_text()
    code, _, err = run([*common, "--proposal-scale", str(fit["best"]), "--out",
                        str(tmp_path / "given")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "given" / "nll.json").read_text())["nll"] == res["nll"]


def test_report_puts_every_mnist_protocol_under_transfer() -> None:
    row = {"method": "min-kl", "ways": 10, "shots": 1, "accuracy": 56.3, "ci95": [55.4, 57.3]}
    text = render_report([{"label": f"ns-{p} (ppl_fewshot)", "task": "classify", "protocol": p,
                           "_file": "f", "classification": [row]}
                          for p in ("mnist28-t10k", "ns28")])
    start = text.index("## 4. Transfer to MNIST")
    transfer = text[start:text.index("\n## ", start + 1)]
    omniglot = text[text.index("## 2. Few-shot"):text.index("## 3. Transfer")]
    assert "ns-mnist28-t10k" in transfer and "ns-mnist28-t10k" not in omniglot
    assert "ns-ns28" in omniglot and "ns-ns28" not in transfer


def test_evaluate_on_the_training_and_validation_classes_of_a_checkpoint(
        capsys, tmp_path, monkeypatch) -> None:
    import ppl_fewshot.data as data
    import ppl_fewshot.inference.trainer as trainer
    from ppl_fewshot.inference.eval_data import eval_split

    monkeypatch.setattr(trainer, "load_split", data.load_split)  # the memoized glyphs
    cfg = TrainConfig(model="vae-small", protocol="glyphs", steps=1, batch_size=2, set_size=2,
                      val_classes=7, val_batches=1, checkpoint_every=1, seed=3, device="cpu")
    train(cfg, tmp_path / "run", data=None, progress=False)
    ck = str(tmp_path / "run" / "checkpoint.pt")
    full = data.load_split("glyphs", "train")
    tr, va = (eval_split(s, "glyphs", cfg.to_json(), None) for s in ("train", "val"))
    # exactly the trainer's split: disjoint, together every training class, 7 held out
    assert va.num_classes == 7 and tr.num_classes == full.num_classes - 7
    assert sorted(tr.class_names + va.class_names) == sorted(full.class_names)
    assert tr.name == "glyphs/train" and va.name == "glyphs/val"
    assert eval_split("test", "glyphs", None, None).class_names == \
        data.load_split("glyphs", "test").class_names
    out = tmp_path / "val"
    code, _, err = run(["evaluate", "--checkpoint", ck, "--split", "val", "--episodes", "3",
                        "--set-size", "3", "--shots", "0,2", "--samples", "2", "--out",
                        str(out)], capsys)
    assert code == 0, err
    res = json.loads((out / "nll.json").read_text())
    assert res["protocol"] == "glyphs" and res["split"] == "val" and res["split_classes"] == 7
    assert res["label"] == "vae-small (ppl_fewshot), val classes" and "-val-" in res["bank"]
    bank = load_bank(res["bank"])  # every item is a drawing of a held-out class
    pool = va.to_float(va.images).flatten(0, 1).flatten(1)
    items = bank.x.flatten(0, 1).flatten(1)
    assert bool(((items[:, None] == pool[None]).all(-1)).any(1).all())
    code, _, err = run(["report", "--results", str(out), "--out", str(tmp_path / "r.md"),
                        "--no-plot"], capsys)
    text = (tmp_path / "r.md").read_text()
    assert code == 0 and "val classes [glyphs, 1 steps]" in text[text.index("## 5."):]
    assert "val classes" not in text[:text.index("## 5.")]
    assert nll_curves([{**res, "_file": "f"}]) == {}  # the NLL figure shows test rows only
    code, _, err = run(["evaluate", "--checkpoint", ck, "--protocol", "glyphs", "--episodes",
                        "2", "--set-size", "3", "--shots", "0", "--samples", "2",
                        "--khat-episodes", "0",
                        "--proposal-scale", "fit", "--fit-episodes", "2", "--out",
                        str(tmp_path / "fit")], capsys)  # fitted on the held-out classes
    assert code == 0, err
    fit = json.loads((tmp_path / "fit" / "nll.json").read_text())["proposal_fit"]
    assert fit["split"] == "val" and "-val-" in fit["bank"] and len(fit["nll"]) == 4
    for extra, needle in ((["--split", "val", "--task", "transfer"], "MNIST test digits"),
                          (["--split", "train", "--protocol", "gmn28"], "training protocol"),
                          (["--split", "elsewhere"], "unknown split")):
        try:
            code = main(["evaluate", "--checkpoint", ck, *extra, "--out", str(tmp_path / "x")])
        except SystemExit as e:
            code = e.code
        assert code == 2 and needle in one_line_error(capsys.readouterr().err)
    code, _, err = run(["evaluate", "--model", "pixel-beta-bernoulli", "--split", "val",
                        "--protocol", "glyphs", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "none is held out" in one_line_error(err)
    with pytest.raises(ValueError, match="written by train"):
        eval_split("train", "glyphs", {"protocol": "glyphs"}, None)
    pix = tmp_path / "pix"  # a free baseline's training classes: all of the protocol's
    code, _, err = run(["evaluate", "--model", "pixel-beta-bernoulli", "--split", "train",
                        "--protocol", "glyphs", "--fit-steps", "2", "--episodes", "2",
                        "--set-size", "3", "--shots", "0,2", "--out", str(pix)], capsys)
    assert code == 0, err
    assert json.loads((pix / "nll.json").read_text())["split_classes"] == full.num_classes
    with pytest.raises(ValueError, match="val_classes=0"):
        eval_split("val", "glyphs", {**cfg.to_json(), "val_classes": 0}, None)
    assert not (tmp_path / "x").exists()


def test_training_class_overlap_between_protocols(shared_data, capsys, caplog,
                                                  tmp_path) -> None:
    """ns28 draws its training characters from both Omniglot sets: the gmn28 test characters
    among them are found by name, agree in number with ns28's seeded split of the global
    character ids, and are recorded in the result and flagged in the report; protocols
    that split the same way (gmn28 / lake28) share none, and one protocol is never checked."""
    from ppl_fewshot.data import get_protocol, load_split
    from ppl_fewshot.inference.eval_data import training_class_overlap

    p = get_protocol("ns28")
    perm = torch.randperm(1623, generator=torch.Generator().manual_seed(p.split_seed))
    n_train = int(p.num_train_classes)
    evaluation_ids = int((perm[:n_train] >= 964).sum())  # ids 965-1623 (0-based 964-1622)
    gmn_test = load_split("gmn28", "test")
    o = training_class_overlap("ns28", "gmn28", gmn_test, None)
    assert o["classes"] == len(o["names"]) == evaluation_ids > 400 and o["of"] == 659
    assert all(n.startswith("images_evaluation/") for n in o["names"])
    ns_test = load_split("ns28", "test")
    back = training_class_overlap("gmn28", "ns28", ns_test, None)
    assert back["classes"] == int((perm[n_train:] < 964).sum()) > 0
    assert training_class_overlap("gmn28/train", "lake28", load_split("lake28", "test"),
                                  None)["classes"] == 0
    assert training_class_overlap("gmn28", "gmn28", gmn_test, None) is None
    assert training_class_overlap(None, "gmn28", gmn_test, None) is None
    # through the CLI: the shipped ns28 Neural Statistician scored on gmn28
    out = tmp_path / "ns-on-gmn28"
    code, _, err = run(["evaluate", "--checkpoint", "models/ns-medium-omniglot.pt", "--task",
                        "nll", "--protocol", "gmn28", "--episodes", "2", "--set-size", "3",
                        "--shots", "0,1", "--samples", "2", "--out", str(out)], capsys)
    assert code == 0, err
    assert f"{evaluation_ids} of the 659 test classes of gmn28" in caplog.text
    res = json.loads((out / "nll.json").read_text())
    assert res["training_class_overlap"] == {"train_protocol": "ns28",
                                             "classes": evaluation_ids, "of": 659}
    assert f"TRAINED ON {evaluation_ids} of the 659 test classes (ns28)" in render_report(
        collect_results([out]))
