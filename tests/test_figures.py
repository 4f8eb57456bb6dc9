"""``ppl-fewshot figures`` on the pretrained GMN of models/ and the real gmn28 test characters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import one_line_error, run

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "gmn-small-omniglot.pt"


def test_figures_of_the_pretrained_gmn(shared_data, tmp_path, capsys) -> None:
    out = tmp_path / "fig"
    code, _, err = run(["--threads", "1", "figures", "--checkpoint", str(PRETRAINED),
                        "--protocols", "gmn28", "--shots", "0,3", "--rows", "2", "--num", "3",
                        "--attention-episodes", "100", "--temperature", "0.5",
                        "--out", str(out)], capsys)
    assert code == 0, err
    made = json.loads((out / "figures.json").read_text())
    names = {Path(f).name for f in made["files"]}
    assert names == {"samples_gmn28_0shot.png", "samples_gmn28_3shot.png", "unconditional.png",
                     "samples_gmn28_3shot_t0.5.png", "attention_gmn28.png"}
    assert all((out / n).stat().st_size > 1000 for n in names)
    att = made["attention_gmn28"]
    assert att["episodes"] == 100
    assert 0 < att["same_class_attention_mass"] <= att["same_class_fraction_of_item_attention"] <= 1
    # the trained matching attention prefers the query's own class (uniform would give the
    # same-class share, ~0.5 at C_test = 2; measured 0.87 on 200 episodes)
    assert att["same_class_fraction_of_item_attention"] > att["same_class_share_uniform"] + 0.15
    mass = att["pseudo_input_mass_by_read"]
    assert set(mass) == {"recognition", "likelihood", "prior"}
    assert mass["recognition"] == att["pseudo_input_mass"] and all(0 < m < 1 for m in mass.values())


@pytest.mark.parametrize("extra, needle", [
    (["--protocols", "nosuch"], "nosuch"),
    (["--protocols", ","], "at least one protocol"),
])
def test_figures_bad_arguments(extra, needle, tmp_path, capsys) -> None:
    out = tmp_path / "fig"
    code, _, err = run(["figures", "--checkpoint", str(PRETRAINED), "--out", str(out), *extra],
                       capsys)
    assert code == 2 and needle in one_line_error(err)
    assert not out.exists()


def test_long_titles_wrap_to_the_figure() -> None:
    import torch

    from ppl_fewshot.diagnostics import plot_sample_grid

    title = "a model label with many settings " * 6
    fig, ax = plot_sample_grid(torch.zeros(2, 3, 1, 28, 28), torch.zeros(2, 4, 1, 28, 28),
                               title=title)
    lines = ax.get_title().split("\n")
    assert len(lines) > 1 and " ".join(lines) == title.strip()
    fig.canvas.draw()  # the wrapped title fits inside the figure
    box = ax.title.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
