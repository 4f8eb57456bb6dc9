"""Episode samplers: exact sampling statistics, padding, determinism, loaders, banks."""

from __future__ import annotations

import math

import pytest
import torch

from ppl_fewshot.data import (
    ClassDataset,
    Episode,
    EpisodeSampler,
    episode_bank,
    load_bank,
    load_split,
    make_loader,
    save_bank,
)


def _check_consistent(ep: Episode, decode_ids, per_class: int):
    """Labels agree with the drawn images; padding is zeros with label -1."""
    ids = decode_ids(ep.x)
    assert torch.equal((ids // per_class)[ep.mask], ep.labels[ep.mask])
    assert bool((ep.x[~ep.mask] == 0).all()) and bool((ep.labels[~ep.mask] == -1).all())
    return ids


def test_shapes_and_values(id_dataset, decode_ids):
    ds = id_dataset(7, 5)
    ep = EpisodeSampler(ds, batch_size=4, set_size=6, num_classes=2).sample()
    assert ep.x.shape == (4, 6, 1, 4, 4) and ep.x.dtype == torch.float32
    assert ep.labels.shape == (4, 6) and ep.labels.dtype == torch.long
    assert ep.mask.dtype == torch.bool and bool(ep.mask.all())
    assert set(torch.unique(ep.x).tolist()) <= {0.0, 1.0}
    _check_consistent(ep, decode_ids, 5)


def test_with_replacement_duplicate_rate(id_dataset, decode_ids):
    """T = 20 draws from 1 class of 20: E[#distinct] = 20 (1 - (19/20)^20) exactly."""
    ds = id_dataset(3, 20)
    ep = EpisodeSampler(ds, batch_size=2000, set_size=20, num_classes=1, seed=1).sample()
    ids = _check_consistent(ep, decode_ids, 20)
    distinct = torch.tensor([len(set(row.tolist())) for row in ids], dtype=torch.float64)
    expected = 20 * (1 - (19 / 20) ** 20)  # 12.830
    se = distinct.std().item() / math.sqrt(len(distinct))
    assert abs(distinct.mean().item() - expected) < 4 * se, (distinct.mean(), expected)
    assert bool((ep.labels == ep.labels[:, :1]).all())  # one class per set
    assert (distinct < 20).float().mean() > 0.99  # duplicates are the rule, not the exception


def test_with_replacement_class_coverage(id_dataset, decode_ids):
    """C = 3 classes, T = 4 items: E[#classes seen] = 3 (1 - (2/3)^4), never more than 3."""
    ds = id_dataset(10, 4)
    ep = EpisodeSampler(ds, batch_size=3000, set_size=4, num_classes=3, seed=2).sample()
    seen = torch.tensor([len(set(r.tolist())) for r in ep.labels], dtype=torch.float64)
    assert int(seen.max()) == 3
    expected = 3 * (1 - (2 / 3) ** 4)
    se = seen.std().item() / math.sqrt(len(seen))
    assert abs(seen.mean().item() - expected) < 4 * se
    # every class of the dataset is used, roughly uniformly
    counts = torch.bincount(ep.labels.flatten(), minlength=10).double()
    assert counts.min() > 0.8 * counts.mean()


def test_distinct_never_repeats(id_dataset, decode_ids):
    ds = id_dataset(6, 20)
    full = EpisodeSampler(ds, 50, set_size=20, num_classes=1, sampler="distinct").sample()
    ids = _check_consistent(full, decode_ids, 20)
    for row in ids:  # T = M: each set is a permutation of the class's 20 drawings
        assert sorted((row % 20).tolist()) == list(range(20))
    ep = EpisodeSampler(ds, 300, set_size=(5, 30), num_classes=(2, 3), sampler="distinct",
                        seed=5).sample()
    ids = _check_consistent(ep, decode_ids, 20)
    for row, mask, labels in zip(ids, ep.mask, ep.labels):
        real = row[mask].tolist()
        assert len(set(real)) == len(real)
        assert len(set(labels[mask].tolist())) <= 3
    # T = C * M: exactly C classes, each with all M drawings
    exact = EpisodeSampler(ds, 20, set_size=60, num_classes=3, sampler="distinct").sample()
    for labels in exact.labels:
        assert sorted(torch.bincount(labels, minlength=6).tolist()) == [0, 0, 0, 20, 20, 20]


def test_ranged_set_size_mask_and_padding(id_dataset, decode_ids):
    ds = id_dataset(5, 6)
    sampler = EpisodeSampler(ds, batch_size=200, set_size=(3, 7), num_classes=(1, 2), seed=3)
    ep = sampler.sample()
    sizes = ep.mask.sum(1)
    assert ep.x.shape[1] == int(sizes.max()) == 7
    assert set(sizes.tolist()) == {3, 4, 5, 6, 7}
    assert torch.equal(ep.mask, torch.arange(7)[None] < sizes[:, None])  # real items first
    _check_consistent(ep, decode_ids, 6)
    assert {len(set(r[m].tolist())) for r, m in zip(ep.labels, ep.mask)} == {1, 2}
    empty = EpisodeSampler(ds, batch_size=3, set_size=0).sample()  # the empty set is legal
    assert empty.x.shape == (3, 0, 1, 4, 4) and empty.mask.shape == (3, 0)


def test_determinism_under_seed(id_dataset):
    ds = id_dataset(9, 5, binarization="dynamic")
    ds.images[:] = 128
    a = EpisodeSampler(ds, 8, (2, 6), (1, 3), seed=11)
    b = EpisodeSampler(ds, 8, (2, 6), (1, 3), seed=11)
    c = EpisodeSampler(ds, 8, (2, 6), (1, 3), seed=12)
    for _ in range(3):
        ea, eb, ec = a.sample(), b.sample(), c.sample()
        assert torch.equal(ea.x, eb.x) and torch.equal(ea.labels, eb.labels)
        assert not torch.equal(ea.x, ec.x)
    assert abs(ea.x[ea.mask].mean().item() - 128 / 255) < 0.1  # dynamic draws, p ~ 0.5
    a.reseed(11)
    first = next(iter(a))
    b.reseed(11)
    assert torch.equal(first.x, b.sample().x)


def test_argument_validation(id_dataset):
    ds = id_dataset(4, 5)
    cases = [
        (dict(batch_size=0, set_size=3), "batch_size"),
        (dict(batch_size=2, set_size=-1), "set_size"),
        (dict(batch_size=2, set_size=(5, 3)), "set_size"),
        (dict(batch_size=2, set_size=(1, 2, 3)), "set_size"),
        (dict(batch_size=2, set_size=3, num_classes=0), "num_classes"),
        (dict(batch_size=2, set_size=3, num_classes=5), "exceeds the 4 classes"),
        (dict(batch_size=2, set_size=3, num_classes=(1, 9)), "exceeds"),
        (dict(batch_size=2, set_size=6, sampler="distinct"), "distinct"),
        (dict(batch_size=2, set_size=(1, 11), num_classes=(2, 4), sampler="distinct"), "distinct"),
        (dict(batch_size=2, set_size=3, sampler="bogus"), "sampler"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            EpisodeSampler(ds, **kwargs)
    EpisodeSampler(ds, 2, set_size=10, num_classes=2, sampler="distinct")  # exactly possible
    with pytest.raises(TypeError):
        EpisodeSampler(torch.zeros(3), 2, 3)
    with pytest.raises(ValueError, match="num_workers"):
        make_loader(EpisodeSampler(ds, 2, 3), num_workers=-1)


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def test_loader_workers_distinct_and_reproducible(id_dataset):
    ds = id_dataset(50, 20)
    sampler = EpisodeSampler(ds, batch_size=4, set_size=10, num_classes=2, seed=7)
    plain = _take(make_loader(sampler, num_workers=0), 2)
    fresh = EpisodeSampler(ds, batch_size=4, set_size=10, num_classes=2, seed=7)
    assert all(torch.equal(p.x, fresh.sample().x) for p in plain)
    run1 = _take(make_loader(sampler, num_workers=2), 4)
    run2 = _take(make_loader(sampler, num_workers=2), 4)
    assert all(isinstance(e, Episode) for e in run1)
    assert all(torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels)
               for a, b in zip(run1, run2))
    # batches alternate between workers 0 and 1: their streams differ from each other
    assert not torch.equal(run1[0].labels, run1[1].labels)
    assert not torch.equal(run1[0].labels, run1[2].labels)  # worker 0 moves on
    assert not torch.equal(run1[0].labels, plain[0].labels)  # workers use derived seeds


def test_bank_save_load(tmp_path, id_dataset):
    binary = episode_bank(id_dataset(8, 5), num_episodes=30, set_size=(2, 6), num_classes=2,
                          sampler="distinct", seed=4)
    assert binary.x.shape[0] == 30
    again = episode_bank(id_dataset(8, 5), 30, (2, 6), 2, "distinct", seed=4)
    assert torch.equal(binary.x, again.x)
    grey_ds = ClassDataset(images=torch.randint(0, 256, (4, 3, 1, 6, 6), dtype=torch.uint8),
                           class_names=list("abcd"), binarization="none")
    grey = episode_bank(grey_ds, 10, 5, 1, seed=0)
    odd = Episode(x=torch.rand(2, 3, 1, 2, 2), labels=torch.zeros(2, 3, dtype=torch.long),
                  mask=torch.ones(2, 3, dtype=torch.bool))
    for i, ep in enumerate((binary, grey, odd)):
        path = tmp_path / "banks" / f"bank{i}.pt"
        save_bank(ep, path)
        back = load_bank(path)
        assert torch.equal(back.x, ep.x) and back.x.dtype == torch.float32
        assert torch.equal(back.labels, ep.labels) and torch.equal(back.mask, ep.mask)
    assert not list((tmp_path / "banks").glob("*.tmp"))
    blob = torch.load(tmp_path / "banks" / "bank0.pt", weights_only=True)
    assert blob["x_u8"].dtype == torch.uint8  # compact storage for binary banks


def test_real_gmn28_episodes(data_dir):
    ds = load_split("gmn28", "test")
    sampler = EpisodeSampler(ds, batch_size=16, set_size=20, num_classes=2, seed=0)
    ep = sampler.sample()
    assert ep.x.shape == (16, 20, 1, 28, 28)
    assert bool(((ep.x == 0) | (ep.x == 1)).all())
    assert 0.03 < ep.x.mean().item() < 0.15
    assert int(ep.labels.max()) < 659
