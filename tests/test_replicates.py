"""Contrasts of recipes trained several times (``ppl_fewshot.inference.replicates``)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ppl_fewshot.inference.contrast import contrast
from ppl_fewshot.inference.replicates import (
    replicate_contrast,
    split_runs,
    student_t_quantile,
)
from tests.conftest import one_line_error, run
from tests.test_compare import write_eval


def table(values: torch.Tensor, label: str = "m") -> dict:
    """An in-memory ``nll_table`` result: ``values[episode, column]`` at shots 0 and 5."""
    return {"label": label, "shots": [0, 5], "per_episode": values.tolist()}


def test_student_t_quantiles_match_the_tables() -> None:
    for p, df, expected in ((0.975, 1, 12.7062047), (0.975, 2, 4.3026527), (0.975, 4, 2.7764451),
                            (0.975, 30, 2.0422725), (0.99, 1, 31.8205159), (0.95, 3, 2.3533634),
                            (0.975, 1e6, 1.9599663), (0.975, math.inf, 1.9599640)):
        assert student_t_quantile(p, df) == pytest.approx(expected, abs=2e-6)
    assert student_t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-9)
    assert 3.18 < student_t_quantile(0.975, 2.5) < 4.30  # fractional df: between 3 and 2
    for p, df in ((0.4, 3), (1.0, 3), (0.975, 0.5)):
        with pytest.raises(ValueError):
            student_t_quantile(p, df)


def test_replicate_contrast_by_hand() -> None:
    """Two recipes, three runs each: the run offsets give se_runs, the shared episodes cancel."""
    g = torch.Generator().manual_seed(0)
    difficulty = 20 * torch.randn(60, 1, generator=g, dtype=torch.float64)
    offsets = {"a": (0.0, 1.0, 5.0), "b": (-2.0, -2.5, -1.0)}
    groups = [[table(100 + difficulty + o + 0.1 * torch.randn(60, 2, generator=g,
                                                             dtype=torch.float64), f"{r}{i}")
               for i, o in enumerate(offs)] for r, offs in offsets.items()]
    result = replicate_contrast(groups, [-1, 1])
    assert result.labels == ("a0", "b0") and result.weights == (-1.0, 1.0)
    pooled = contrast([t for grp in groups for t in grp], [-1 / 3] * 3 + [1 / 3] * 3)
    for cell, pc in zip(result.nll, pooled.nll, strict=True):
        runs = [[sum(v) / len(v) for v in zip(*t["per_episode"])][result.nll.index(cell)]
                for grp in groups for t in grp]
        a, b = runs[:3], runs[3:]
        var_a = sum((x - sum(a) / 3) ** 2 for x in a) / 2
        var_b = sum((x - sum(b) / 3) ** 2 for x in b) / 2
        assert cell.runs == (3, 3) and cell.units == 60
        assert cell.means == pytest.approx((sum(a) / 3, sum(b) / 3))
        assert cell.run_sd == pytest.approx((math.sqrt(var_a), math.sqrt(var_b)))
        assert cell.value == pytest.approx(sum(b) / 3 - sum(a) / 3) == pc.value
        assert cell.se_units == pc.se < 0.05  # the difficulty cancels: only the 0.1 noise
        assert cell.se_runs == pytest.approx(math.sqrt(var_a / 3 + var_b / 3))
        assert cell.se == pytest.approx(math.hypot(cell.se_units, cell.se_runs))
        parts = [(var_a / 3, 2), (var_b / 3, 2), (cell.se_units ** 2, 59)]
        df = cell.se ** 4 / sum(v * v / d for v, d in parts)
        assert cell.df == pytest.approx(df) and 2 <= cell.df < 4.5
        assert cell.half_width == pytest.approx(student_t_quantile(0.975, df) * cell.se)
    text = result.markdown()
    assert "| -1 x a0 (3 runs) | " in text and "| 95% interval, +- (df) | " in text
    assert json.loads(json.dumps(result.to_dict()))["nll"][0]["runs"] == [3, 3]


def test_the_interval_covers_at_its_level_where_the_paired_one_does_not() -> None:
    """A two-by-two of recipes, two runs each, with a run-to-run spread of 2 in two of them:
    the 95% interval covers the true interaction about 95% of the time; the per-episode one,
    blind to the runs, far less often."""
    g = torch.Generator().manual_seed(3)
    effects, sds, truth = (-5.0, 0.0, -1.0, 0.0), (0.3, 0.3, 2.0, 2.0), -4.0
    covered = paired_covered = 0
    trials = 200
    for _ in range(trials):
        difficulty = 10 * torch.randn(40, 1, generator=g, dtype=torch.float64)
        groups = [[table(100 + difficulty + e + s * torch.randn((), generator=g,
                                                                dtype=torch.float64)
                         + torch.randn(40, 2, generator=g, dtype=torch.float64))
                   for _ in range(2)] for e, s in zip(effects, sds)]
        cell = replicate_contrast(groups, [1, -1, -1, 1]).nll[0]
        covered += abs(cell.value - truth) <= cell.half_width
        paired_covered += abs(cell.value - truth) <= 1.96 * cell.se_units
    assert 0.9 <= covered / trials <= 0.995
    assert paired_covered / trials < 0.6


def test_replicate_refusals(tmp_path) -> None:
    x = torch.zeros(5, 2, dtype=torch.float64)
    one, two = [table(x)], [table(x), table(x + 1)]
    for groups, weights, words in (([two, two], [1], "1 weights for 2 recipes"),
                                   ([two, one], [1, -1], "recipe 2 has 1 run"),
                                   ([two, []], [1, 0], "recipe 2 has 0 run")):
        with pytest.raises(ValueError, match=words):
            replicate_contrast(groups, weights)
    assert math.isnan(replicate_contrast([two, one], [1, 0]).nll[0].run_sd[1])  # no spread
    assert split_runs("abcde", [2, 3]) == [["a", "b"], ["c", "d", "e"]]
    with pytest.raises(ValueError, match="do not add up to 5"):
        split_runs("abcde", [2, 2])


def test_cli_compare_runs(capsys, tmp_path) -> None:
    folders = []
    for name, shift in (("a0", 0.0), ("a1", 2.0), ("b0", 5.0), ("b1", 5.0)):
        write_eval(tmp_path / name, torch.tensor([[100.0, 90.0, 80.0], [110.0, 95.0, 70.0]])
                   + shift, label=name)
        folders.append(str(tmp_path / name))
    code, out, err = run(["compare", *folders, "--weights=-1,1", "--runs", "2",
                          "--out", str(tmp_path / "r.json")], capsys)
    assert code == 0, err
    assert "| -1 x a0 (2 runs) | 106.0 (sd 1.4) | 93.5 (sd 1.4) | 76.0 (sd 1.4) |" in out
    assert "| contrast | +4.00 | +4.00 | +4.00 |" in out
    assert "| se over units / over runs | 0.00 / 1.00 | 0.00 / 1.00 | 0.00 / 1.00 |" in out
    assert "| 95% interval, +- (df) | 12.71 (1.0) |" in out  # two runs of one recipe: 1 df
    assert json.loads((tmp_path / "r.json").read_text())["nll"][0]["runs"] == [2, 2]
    for extra, words in ((["--weights=-1,1", "--runs", "3"], "does not split 4 folders"),
                         (["--weights=-1,1", "--runs", "1,3"], "recipe 1 has 1 run"),
                         (["--weights=-1,1", "--runs", "x"], "a count or counts"),
                         (["--runs", "2"], "--runs needs --weights")):
        code, _, err = run(["compare", *folders, *extra], capsys)
        assert code == 2 and words in one_line_error(err), err
