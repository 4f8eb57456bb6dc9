"""Contrasts of several evaluations of one bank (``ppl_fewshot.inference.contrast``)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ppl_fewshot.inference.compare import mean_se, paired_accuracy, paired_nll
from ppl_fewshot.inference.contrast import contrast
from tests.conftest import one_line_error, run
from tests.test_compare import BANK, write_cls, write_eval


def test_weights_minus_one_plus_one_are_the_paired_difference(tmp_path) -> None:
    g = torch.Generator().manual_seed(1)
    base = 100 + 10 * torch.randn(50, 3, generator=g, dtype=torch.float64)
    write_eval(tmp_path / "a", base, label="A")
    write_eval(tmp_path / "b", base - 1 + torch.randn(50, 3, generator=g, dtype=torch.float64),
               label="B")
    c = contrast([tmp_path / "a", tmp_path / "b"], [-1, 1])
    p = paired_nll(tmp_path / "a", tmp_path / "b")
    assert c.labels == ("A", "B") and c.bank == p.bank and c.classification == ()
    for cell, col in zip(c.nll, p.columns, strict=True):
        assert cell.key == f"{col.shots}-shot" and cell.units == 50
        assert cell.means == pytest.approx((col.base, col.new))
        assert (cell.value, cell.se) == (pytest.approx(col.diff), pytest.approx(col.se))
    write_cls(tmp_path / "ca", {("likelihood", 5, 1): [5, 4, 3, 5], ("cosine", 5, 1): [1, 2, 3, 4]})
    write_cls(tmp_path / "cb", {("likelihood", 5, 1): [5, 5, 4, 5], ("cosine", 5, 1): [2, 2, 3, 5]})
    c = contrast([tmp_path / "ca", tmp_path / "cb"], [-1, 1])
    assert c.nll == () and c.bank is None
    for cell, pair in zip(c.classification, paired_accuracy(tmp_path / "ca", tmp_path / "cb"),
                          strict=True):
        assert cell.key == f"{pair.method} 5-way 1-shot" and cell.units == 4
        assert cell.means == pytest.approx((pair.base, pair.new))
        assert (cell.value, cell.se) == (pytest.approx(pair.diff), pytest.approx(pair.se))


def test_interaction_of_a_two_by_two_design(tmp_path) -> None:
    """Known main effects and interaction under a large shared difficulty per episode."""
    g = torch.Generator().manual_seed(0)
    n = 400
    difficulty = 20 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    folders = []
    for name, effect in (("a", -5.0), ("b", 0.0), ("c", -1.0), ("d", 0.0)):  # interaction -4
        values = 100 + difficulty + effect + torch.randn(n, 2, generator=g, dtype=torch.float64)
        write_eval(tmp_path / name, values, shots=(1, 5), label=name.upper())
        folders.append(tmp_path / name)
    c = contrast(folders, [1, -1, -1, 1])
    assert [cell.key for cell in c.nll] == ["1-shot", "5-shot"]
    for cell in c.nll:
        assert cell.value == pytest.approx(cell.means[0] - cell.means[1] - cell.means[2]
                                           + cell.means[3])
        assert abs(cell.value - (-4.0)) < 4 * cell.se and cell.se < 0.2  # difficulty cancels
    text = c.markdown()
    assert "| +1 x A | " in text and "| -1 x C | " in text
    assert "| contrast, paired (se) | " + " | ".join(
        f"{x.value:+.2f} ({x.se:.2f})" for x in c.nll) + " |" in text
    assert c.to_dict()["nll"][0]["units"] == n


def test_classification_contrast_is_per_task(tmp_path) -> None:
    counts = {"a": [5, 5, 4, 5], "b": [3, 4, 4, 5], "c": [4, 4, 3, 5], "d": [3, 3, 3, 5]}
    for name, c in counts.items():
        write_cls(tmp_path / name, {("likelihood", 20, 1): c, ("cosine", 5, 5): [1, 1, 1, 1]})
    write_cls(tmp_path / "e", {("likelihood", 20, 1): [1, 1, 1, 1]})
    result = contrast([tmp_path / n for n in "abcd"], [1, -1, -1, 1])
    lik = next(x for x in result.classification if x.key == "likelihood 20-way 1-shot")
    per_task = [20 * (a - b - c + d) for a, b, c, d in zip(*counts.values())]
    assert (lik.value, lik.se) == (pytest.approx(mean_se(per_task)[0]),
                                   pytest.approx(mean_se(per_task)[1]))
    assert [x.key for x in contrast([tmp_path / "a", tmp_path / "e"], [1, -1]).classification] \
        == ["likelihood 20-way 1-shot"]  # a setting one folder lacks is left out


def test_contrast_refusals_and_uncentred_weights(tmp_path, caplog) -> None:
    write_eval(tmp_path / "a", torch.zeros(4, 3))
    write_eval(tmp_path / "b", torch.ones(4, 3))
    write_eval(tmp_path / "other", torch.zeros(4, 3), bank=BANK.replace("C1", "C2"))
    write_cls(tmp_path / "s0", {("likelihood", 5, 1): [5, 4]})
    write_cls(tmp_path / "s1", {("likelihood", 5, 1): [5, 4]}, seed=1)
    write_cls(tmp_path / "more", {("likelihood", 5, 1): [5, 4, 3]})
    for folders, weights, words in (
            (["a"], [1], "at least two"), (["a", "b"], [1, -1, 0], "3 weights for 2"),
            (["a", "b", "other"], [1, -1, 0], "different banks"),
            (["s0", "s1"], [1, -1], "seed 0 and 1"), (["s0", "more"], [1, -1], "2 and 3 tasks"),
            (["a", "s0"], [1, -1], "share no NLL column")):
        with pytest.raises(ValueError, match=words):
            contrast([tmp_path / f for f in folders], weights)
    with caplog.at_level("WARNING"):
        c = contrast([tmp_path / "a", tmp_path / "b"], [1, 1])
    assert "sum to 2" in caplog.text and c.nll[0].value == pytest.approx(1.0)
    assert math.isclose(c.nll[0].se, 0.0, abs_tol=1e-12)


def test_cli_compare_weights(capsys, tmp_path) -> None:
    for name, shift in (("a", 0.0), ("b", 1.0), ("c", 3.0)):
        write_eval(tmp_path / name, torch.tensor([[100.0, 90.0, 80.0], [110.0, 95.0, 70.0]])
                   + shift, label=name)
    args = ["compare", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c")]
    code, out, err = run([*args, "--weights=-2,1,1", "--out", str(tmp_path / "k.json")], capsys)
    assert code == 0, err
    assert "| -2 x a | 105.0 | 92.5 | 75.0 |" in out
    assert "| contrast, paired (se) | +4.00 (0.00) | +4.00 (0.00) | +4.00 (0.00) |" in out
    assert json.loads((tmp_path / "k.json").read_text())["weights"] == [-2.0, 1.0, 1.0]
    code, _, err = run([*args, "--weights=1,x,1"], capsys)
    assert code == 2 and "numbers separated by commas" in one_line_error(err)
