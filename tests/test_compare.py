"""Paired comparison of NLL tables (``ppl_fewshot.inference.compare``, ``ppl-fewshot compare``)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ppl_fewshot.inference.compare import compare, mean_se, paired_accuracy, paired_nll
from tests.conftest import one_line_error, run

BANK = "/cache/banks/gmn28-test-C1-T20-E100-with-replacement-s0.pt"


def write_eval(folder, values: torch.Tensor, shots=(0, 1, 5), bank=BANK, label="m",
               task="nll") -> None:
    """An ``evaluate`` folder: ``values[episode, column]`` per episode, means in the JSON."""
    folder.mkdir(parents=True)
    table = {"bank": bank, "shots": list(shots), "nll": values.mean(0).tolist(),
             "episodes": values.shape[0]}
    meta = {"label": label, "task": task}
    meta.update(table if task == "nll" else {"nll": table})
    (folder / f"{task}.json").write_text(json.dumps(meta))
    (folder / "nll_episodes.csv").write_text(
        "episode," + ",".join(f"shots_{s}" for s in shots) + "\n" + "".join(
            f"{i}," + ",".join(str(float(v)) for v in row) + "\n"
            for i, row in enumerate(values)))


def write_cls(folder, correct: dict[tuple[str, int, int], list[int]], queries: int = 5,
              seed: int = 0) -> None:
    """A ``classify`` folder with per-task counts of right decisions per (method, ways, shots)."""
    folder.mkdir(parents=True)
    rows = [{"method": m, "ways": w, "shots": k, "tasks": len(c), "queries_per_task": queries,
             "accuracy": 100 * sum(c) / (queries * len(c)), "correct_per_task": c}
            for (m, w, k), c in correct.items()]
    (folder / "classify.json").write_text(json.dumps(
        {"label": "m", "task": "classify", "protocol": "gmn28", "split": "test", "seed": seed,
         "classification": rows}))


def test_mean_se_is_the_standard_error_of_the_mean() -> None:
    mean, se = mean_se([1.0, 2.0, 3.0, 6.0])
    assert mean == 3.0 and se == pytest.approx(math.sqrt(14 / 3 / 4))
    with pytest.raises(ValueError, match="at least two"):
        mean_se([1.0])


def test_paired_difference_cancels_the_episodes_difficulty(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    difficulty = 20 * torch.randn(200, 1, generator=g, dtype=torch.float64)  # shared by both
    base = 100 + difficulty + torch.randn(200, 3, generator=g, dtype=torch.float64)
    shift = torch.tensor([0.0, -2.0, 1.0], dtype=torch.float64)
    new = base + shift + 0.5 * torch.randn(200, 3, generator=g, dtype=torch.float64)
    write_eval(tmp_path / "a", base, label="A")
    write_eval(tmp_path / "b", new, label="B")
    p = paired_nll(tmp_path / "a", tmp_path / "b")
    assert (p.base, p.new, p.episodes) == ("A", "B", 200)
    assert p.bank == "gmn28-test-C1-T20-E100-with-replacement-s0.pt"
    d = new - base
    for j, c in enumerate(p.columns):
        assert c.shots == (0, 1, 5)[j]
        assert c.base == pytest.approx(float(base[:, j].mean()))
        assert c.new == pytest.approx(float(new[:, j].mean()))
        assert c.diff == pytest.approx(float(d[:, j].mean()))
        assert c.se == pytest.approx(float(d[:, j].std() / math.sqrt(200)))
        # within 4 se of the true shift; the unpaired se (~20/sqrt(200)) would be 40x larger
        assert abs(c.diff - float(shift[j])) < 4 * c.se and c.se < 0.05
    text = p.markdown()
    assert "| new - base, paired (se) | " + " | ".join(
        f"{c.diff:+.1f} ({c.se:.1f})" for c in p.columns) + " |" in text
    assert "| base: A | " + " | ".join(f"{c.base:.1f}" for c in p.columns) in text
    assert p.to_dict()["columns"][1]["shots"] == 1


def test_transfer_folders_and_shared_columns(tmp_path) -> None:
    a, b = torch.full((4, 3), 120.0), torch.full((4, 2), 118.0)
    b[:, 1] += torch.tensor([0.0, 1.0, 2.0, 3.0])
    write_eval(tmp_path / "a", a, task="transfer")
    write_eval(tmp_path / "b", b, shots=(0, 5))
    p = paired_nll(tmp_path / "a", tmp_path / "b")
    assert [c.shots for c in p.columns] == [0, 5]
    assert [c.diff for c in p.columns] == [pytest.approx(-2.0), pytest.approx(-0.5)]
    assert p.columns[0].se == 0.0 and p.columns[1].se > 0


def test_refuses_what_cannot_be_paired(tmp_path) -> None:
    write_eval(tmp_path / "a", torch.zeros(4, 3))
    write_eval(tmp_path / "other-bank", torch.zeros(4, 3), bank=BANK.replace("C1", "C2"))
    write_eval(tmp_path / "fewer", torch.zeros(3, 3))
    write_eval(tmp_path / "no-common", torch.zeros(4, 1), shots=(19,))
    for folder, words in (("other-bank", "different banks"), ("fewer", "4 and 3 episodes"),
                          ("no-common", "no shot column in common")):
        with pytest.raises(ValueError, match=words):
            paired_nll(tmp_path / "a", tmp_path / folder)
    with pytest.raises(FileNotFoundError, match="holds no per-episode NLL"):
        paired_nll(tmp_path / "a", tmp_path)


def test_paired_accuracy_per_setting(tmp_path) -> None:
    write_cls(tmp_path / "a", {("likelihood", 5, 1): [5, 4, 3, 5], ("cosine", 5, 1): [1, 2, 3, 4],
                               ("likelihood", 20, 1): [3, 3, 3, 3]})
    write_cls(tmp_path / "b", {("likelihood", 5, 1): [5, 5, 4, 5], ("cosine", 5, 1): [1, 2, 3, 4]})
    lik, cos = paired_accuracy(tmp_path / "a", tmp_path / "b")  # 20-way: only in a, left out
    assert (lik.method, lik.ways, lik.shots, lik.tasks) == ("likelihood", 5, 1, 4)
    assert (lik.base, lik.new) == (85.0, 95.0)
    diffs = [0.0, 20.0, 20.0, 0.0]  # per task, percentage points
    assert lik.diff == pytest.approx(10.0) and lik.se == pytest.approx(mean_se(diffs)[1])
    assert (cos.diff, cos.se) == (0.0, 0.0)
    c = compare(tmp_path / "a", tmp_path / "b")
    assert c.nll is None and c.classification == (lik, cos)
    assert "| likelihood | 5-way 1-shot | 4 | 85.0 | 95.0 | +10.00 (" in c.markdown()
    write_cls(tmp_path / "seed1", {("likelihood", 5, 1): [5, 5, 4, 5]}, seed=1)
    write_cls(tmp_path / "more", {("likelihood", 5, 1): [5, 5, 4, 5, 5]})
    write_cls(tmp_path / "none", {("min-kl", 5, 1): [5, 5, 4, 5]})
    for folder, words in (("seed1", "seed 0 and 1"), ("more", "4 and 5 tasks"),
                          ("none", "share no classification setting")):
        with pytest.raises(ValueError, match=words):
            paired_accuracy(tmp_path / "a", tmp_path / folder)
    with pytest.raises(ValueError, match="nothing to pair"):
        compare(tmp_path / "a", tmp_path)


def test_cli_compare_prints_tables_and_writes_json(capsys, tmp_path) -> None:
    write_eval(tmp_path / "a", torch.tensor([[100.0, 90.0, 80.0], [110.0, 95.0, 70.0]]))
    write_eval(tmp_path / "b", torch.tensor([[99.0, 91.0, 78.0], [108.0, 96.0, 68.0]]))
    code, out, err = run(["compare", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a"),
                          "--out", str(tmp_path / "c.json")], capsys)
    assert code == 0, err
    assert "| new - base, paired (se) | -1.5 (0.5) | +1.0 (0.0) | -2.0 (0.0) |" in out
    assert "| new - base, paired (se) | +0.0 (0.0) |" in out  # the second NEW: base itself
    saved = json.loads((tmp_path / "c.json").read_text())
    assert len(saved) == 2 and saved[0]["nll"]["columns"][0]["diff"] == -1.5
    assert saved[0]["classification"] == []
    write_eval(tmp_path / "c2", torch.zeros(2, 3), bank=BANK.replace("C1", "C2"))
    code, _, err = run(["compare", str(tmp_path / "a"), str(tmp_path / "c2")], capsys)
    assert code == 2 and "different banks" in one_line_error(err)
