"""Tests for the synthetic ``glyphs`` dataset and its Pyro program."""

from __future__ import annotations

import math
import re

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from ppl_fewshot.data.base import ClassDataset
from ppl_fewshot.data.glyphs import (
    MAX_STROKES,
    alphabet_prior,
    assemble_strokes,
    catmull_rom_basis,
    character_model,
    glyph_program,
    make_glyphs,
    render_strokes,
    token_model,
)


@pytest.fixture(scope="module")
def small() -> ClassDataset:
    return make_glyphs(num_characters=20, tokens_per_character=10, num_alphabets=4, seed=0)


def test_shapes_dtypes_names(small: ClassDataset) -> None:
    assert isinstance(small, ClassDataset)
    assert small.images.shape == (20, 10, 1, 28, 28)
    assert small.images.dtype == torch.uint8
    assert small.name == "glyphs" and small.binarization == "fixed"
    assert int(small.images.max()) == 255 and int(small.images.min()) == 0
    assert len(set(small.class_names)) == 20
    pattern = re.compile(r"^glyphs/alphabet(\d{2})/character(\d{3})$")
    for c, name in enumerate(small.class_names):
        m = pattern.match(name)
        assert m, name
        assert int(m.group(1)) == c % 4 and int(m.group(2)) == c // 4  # round-robin
        assert small.alphabets[c] == f"glyphs/alphabet{c % 4:02d}"
        assert name.startswith(small.alphabets[c] + "/")
    # anti-aliased: some grey levels strictly between background and ink
    grey = ((small.images > 0) & (small.images < 255)).float().mean()
    assert grey > 0.005


def test_other_image_size_and_single_class() -> None:
    ds = make_glyphs(num_characters=3, tokens_per_character=2, num_alphabets=5, image_size=20)
    assert ds.images.shape == (3, 2, 1, 20, 20)
    assert ds.alphabets == [f"glyphs/alphabet{a:02d}" for a in range(3)]
    one = make_glyphs(num_characters=1, tokens_per_character=1, num_alphabets=1)
    assert one.images.shape == (1, 1, 1, 28, 28) and one.class_names == [
        "glyphs/alphabet00/character000"
    ]


def test_determinism(small: ClassDataset) -> None:
    again = make_glyphs(num_characters=20, tokens_per_character=10, num_alphabets=4, seed=0)
    assert torch.equal(small.images, again.images)
    other = make_glyphs(num_characters=20, tokens_per_character=10, num_alphabets=4, seed=1)
    assert not torch.equal(small.images, other.images)
    # a different seed changes most images, not a handful of pixels
    assert (small.images != other.images).flatten(1).any(1).all()


def test_caller_rng_state_untouched() -> None:
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    expected = torch.rand(5)
    torch.set_rng_state(state)
    make_glyphs(num_characters=4, tokens_per_character=3, num_alphabets=2, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(torch.rand(5), expected)


def test_outer_pyro_handlers_see_nothing() -> None:
    with poutine.trace() as tr:
        make_glyphs(num_characters=4, tokens_per_character=3, num_alphabets=2)
    assert len(tr.trace.nodes) == 0


def _pixel_distances(ds: ClassDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean L1 pixel distance within the class and to other classes."""
    x = ds.images.float().div(255).flatten(2)  # [N, M, D]
    n, m = x.shape[:2]
    d = (x[:, :, None, None, :] - x[None, None, :, :, :]).abs().mean(-1)  # [N, M, N, M]
    off = ~torch.eye(m, dtype=torch.bool)
    within = torch.stack([d[i, :, i, :][off].mean() for i in range(n)])
    between = torch.stack([d[i][:, torch.arange(n) != i].mean() for i in range(n)])
    return within, between


def test_tokens_of_a_character_resemble_each_other(small: ClassDataset) -> None:
    within, between = _pixel_distances(small)
    assert within.mean() < 0.8 * between.mean()
    assert (within < between).all()
    # nearest-class-mean classification of each held-out token is far above chance (5%)
    x = small.images.float().div(255).flatten(2)
    correct = 0
    for t in range(x.shape[1]):
        keep = torch.arange(x.shape[1]) != t
        means = x[:, keep].mean(1)  # [N, D]
        pred = torch.cdist(x[:, t], means).argmin(-1)
        correct += int((pred == torch.arange(x.shape[0])).sum())
    assert correct / (x.shape[0] * x.shape[1]) > 0.6


def test_ink_fraction(small: ClassDataset) -> None:
    ink = (small.images >= 128).float()
    assert 0.05 < ink.mean() < 0.25
    per_image = ink.mean((2, 3, 4))
    assert (per_image > 0.01).all() and (per_image < 0.4).all()
    # centred: the ink's centre of mass is near the image centre on average
    coords = torch.arange(28).float() + 0.5
    rows = (ink.sum(-1) * coords).sum(-1) / ink.sum((-2, -1))
    cols = (ink.sum(-2) * coords).sum(-1) / ink.sum((-2, -1))
    assert abs(rows.mean() - 14) < 2 and abs(cols.mean() - 14) < 2
    # nothing drawn on the outermost border rows/columns for most images
    border = ink[..., 0, :].sum(-1) + ink[..., -1, :].sum(-1)
    assert (border == 0).float().mean() > 0.9


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"num_characters": 0}, "num_characters"),
        ({"num_characters": -3}, "num_characters"),
        ({"tokens_per_character": 0}, "tokens_per_character"),
        ({"num_alphabets": -1}, "num_alphabets"),
        ({"image_size": 0}, "image_size"),
        ({"num_characters": 2.5}, "num_characters"),
        ({"seed": "a"}, "seed"),
    ],
)
def test_bad_arguments(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        make_glyphs(**kwargs)


def test_speed_smoke() -> None:
    ds = make_glyphs(num_characters=20, tokens_per_character=20, num_alphabets=5, seed=3)
    assert ds.images.shape == (20, 20, 1, 28, 28)


def test_program_sites_can_be_traced_and_conditioned() -> None:
    alphabet_of = torch.arange(6) % 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tr = poutine.trace(glyph_program).get_trace(alphabet_of, 2, 3)
    assert tr.nodes["character_primitive"]["value"].shape == (MAX_STROKES, 6)
    assert tr.nodes["token_displacements"]["value"].shape == (3, 6, MAX_STROKES, 4, 2)
    assert tr.nodes["image"]["value"].shape == (3, 6, 28, 28)
    assert math.isfinite(float(tr.log_prob_sum()))
    # condition every character on one stroke; the program must respect it
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        style = alphabet_prior(2)
        conditioned = poutine.condition(
            character_model, data={"character_num_strokes": torch.zeros(6, dtype=torch.long)}
        )
        char = conditioned(style, alphabet_of)
        assert (char.num_strokes == 1).all() and char.active.sum() == 6
        ink = token_model(char, 2)
    assert ink.shape == (2, 6, 28, 28) and (ink.flatten(2).amax(-1) > 0.5).all()


def test_character_is_centred_and_scaled() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        char = character_model(alphabet_prior(3), torch.arange(30) % 3)
    curves = assemble_strokes(
        char.displacements,
        char.free_start,
        char.joined,
        char.parent,
        char.parent_u,
        catmull_rom_basis(),
    )
    act = char.active[..., None, None]
    lo = torch.where(act, curves, torch.inf).amin((-3, -2))
    hi = torch.where(act, curves, -torch.inf).amax((-3, -2))
    torch.testing.assert_close(lo + hi, torch.zeros_like(lo), atol=1e-5, rtol=0)
    torch.testing.assert_close((hi - lo).amax(-1), torch.full((30,), 1.3), atol=1e-5, rtol=0)


def test_catmull_rom_basis_interpolates() -> None:
    basis = catmull_rom_basis(5, 6)
    assert basis.shape == (4 * 6 + 1, 5)
    torch.testing.assert_close(basis.sum(-1), torch.ones(25))  # affine invariance
    torch.testing.assert_close(basis[::6], torch.eye(5))  # passes through control points
    # a straight line of equally spaced control points stays straight and uniform
    line = torch.linspace(0, 1, 5)[:, None]
    torch.testing.assert_close(basis @ line, torch.linspace(0, 1, 25)[:, None])


def test_assemble_joins_strokes() -> None:
    basis = catmull_rom_basis()
    d = torch.randn(2, 3, 4, 2, generator=torch.Generator().manual_seed(0)) * 0.2
    free = torch.zeros(2, 3, 2)
    joined = torch.tensor([[False, True, True], [False, False, True]])
    parent = torch.tensor([[0, 0, 1], [0, 0, 0]])
    u = torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    curves = assemble_strokes(d, free, joined, parent, u, basis)
    mid = (basis.shape[0] - 1) // 2
    torch.testing.assert_close(curves[0, 1, 0], curves[0, 0, -1])  # joined at the end
    torch.testing.assert_close(curves[0, 2, 0], curves[0, 1, mid])  # joined halfway
    torch.testing.assert_close(curves[1, 1, 0], torch.zeros(2))  # free start
    torch.testing.assert_close(curves[1, 2, 0], curves[1, 0, -1])


def test_render_strokes_matches_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    strokes = torch.rand(3, 2, 7, 2, generator=gen) * 1.6 - 0.8  # [B, S, L, 2]
    width = torch.tensor([0.5, 1.0, 2.0])
    mask = torch.tensor([[True, True], [True, False], [False, True]])
    size = 9
    out = render_strokes(strokes, size, width, mask=mask, chunk=2)
    assert out.shape == (3, size, size)
    ref = torch.zeros(3, size, size)
    scale = size / 28
    for b in range(3):
        pts = ((strokes[b][mask[b]] + 1) * size / 2).reshape(-1, 2)
        for r in range(size):
            for c in range(size):
                dmin = ((pts - torch.tensor([c + 0.5, r + 0.5])) ** 2).sum(-1).sqrt().min()
                ref[b, r, c] = (width[b] * scale + 0.5 - dmin).clamp(0, 1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    # a fully masked image is blank
    blank = render_strokes(strokes[:1], size, 1.0, mask=torch.zeros(1, 2, dtype=torch.bool))
    assert blank.abs().sum() == 0


def test_render_strokes_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="strokes"):
        render_strokes(torch.zeros(4, 3), 28, 1.0)
    with pytest.raises(ValueError, match="image_size"):
        render_strokes(torch.zeros(1, 1, 3, 2), 0, 1.0)


def test_image_site_is_a_bernoulli_likelihood() -> None:
    alphabet_of = torch.zeros(2, dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        char = character_model(alphabet_prior(1), alphabet_of)
        obs = torch.zeros(4, 2, 28, 28)
        tr = poutine.trace(token_model).get_trace(char, 4, 28, obs)
    node = tr.nodes["image"]
    assert node["is_observed"] and torch.equal(node["value"], obs)
    assert isinstance(node["fn"].base_dist, dist.Bernoulli)
    assert node["fn"].log_prob(obs).shape == (4, 2)
