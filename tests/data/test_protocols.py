"""Named protocols, their splits on the real data, MNIST readers, binarization, augmentation."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import sys
import types

import numpy as np
import pytest
import torch

from ppl_fewshot.data import (
    ClassDataset,
    DataError,
    Protocol,
    augment_classes,
    available_protocols,
    class_dataset_from_labels,
    get_protocol,
    load_gmn_mnist,
    load_mnist_idx,
    load_split,
    original_classes,
    read_idx,
    split_validation,
)
from ppl_fewshot.data.protocols import dilate

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_registry():
    assert available_protocols() == ["glyphs", "gmn28", "lake28", "mnist28", "mnist28-t10k",
                                     "ns28"]
    p = get_protocol("gmn28")
    assert isinstance(p, Protocol) and get_protocol(p) is p
    assert p.sampler == "with-replacement" and p.binarization == "fixed"
    assert get_protocol("ns28").augmentation == ("rot90", "flip")
    assert get_protocol("ns28").binarization == "dynamic"
    assert [n for n in available_protocols() if get_protocol(n).transfer_only] == [
        "mnist28", "mnist28-t10k"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "x"
    with pytest.raises(KeyError, match="gmn28.*lake28"):
        get_protocol("omniglot")
    assert p.to_dict()["num_train_classes"] == 964
    with pytest.raises(ValueError, match="split"):
        load_split("gmn28", "validation")


def test_gmn28_splits(data_dir):
    loaded = {}
    for split, n in (("train", 964), ("test", 659)):
        ds = loaded[split] = load_split("gmn28", split)
        assert ds.images.shape == (n, 20, 1, 28, 28) and ds.name == f"gmn28/{split}"
        assert bool(((ds.images == 0) | (ds.images == 255)).all())
        ink = ds.to_float(ds.images).mean().item()
        assert 0.07 < ink < 0.09, ink
        assert ds.class_names == sorted(ds.class_names)
        assert all(name.startswith("images_") for name in ds.class_names)
    assert abs((loaded["train"].images == 255).float().mean().item()
               - 0.07795) < 1e-4  # README: about 7.8% ink


def test_mnist28_and_idx(data_dir):
    ds = load_split("mnist28", "test")
    assert ds.images.shape == (10, 892, 1, 28, 28) and ds.class_names == [str(d) for d in
                                                                         range(10)]
    with pytest.raises(ValueError, match="no train split"):
        load_split("mnist28", "train")
    x, y = load_gmn_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist() == MNIST_TEST_COUNTS
    ink = (x == 255).float().mean().item()
    assert 0.1 < ink < 0.16, ink
    # every digit of the protocol is a real GMN test digit of that class
    flat = x.flatten(1)
    for d in (0, 5, 9):
        pool = flat[y == d]
        picked = ds.images[d, :20].flatten(1)
        assert bool((picked[:, None] == pool[None]).all(-1).any(-1).all())
    images, labels = load_mnist_idx("test")
    assert images.shape == (10000, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == MNIST_TEST_COUNTS
    assert int(images.max()) == 255 and int(images.min()) == 0
    t10k = load_split("mnist28-t10k", "test")  # the official digits, grey levels kept
    assert t10k.images.shape == (10, 892, 1, 28, 28) and t10k.binarization == "dynamic"
    assert len(t10k.images.unique()) > 200
    for d in (0, 5, 9):  # every digit is an official test digit of that class
        pool = images.flatten(1)[labels == d]
        assert bool((t10k.images[d, :20].flatten(1)[:, None] == pool[None]).all(-1).any(-1).all())
    g = torch.Generator().manual_seed(0)
    drawn = t10k.to_float(t10k.images[:, :50], generator=g)
    assert set(drawn.unique().tolist()) == {0.0, 1.0}
    assert abs(drawn.mean().item() - t10k.images[:, :50].float().mean().item() / 255) < 2e-3


def _write_idx(path, magic, dims, payload):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(f">I{len(dims)}I", magic, *dims) + payload)


def test_idx_reader_checks(tmp_path):
    good = tmp_path / "ok-idx1-ubyte.gz"
    _write_idx(good, 2049, (3,), bytes([1, 2, 3]))
    assert read_idx(good, 2049).tolist() == [1, 2, 3]
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        read_idx(good, 2051)
    short = tmp_path / "short.gz"
    _write_idx(short, 2051, (2, 28, 28), bytes(100))
    with pytest.raises(DataError, match="header"):
        read_idx(short)
    notgz = tmp_path / "bad.gz"
    notgz.write_bytes(b"plain bytes, not gzip")
    with pytest.raises(DataError, match="gzip"):
        read_idx(notgz)
    weird = tmp_path / "float.gz"
    _write_idx(weird, 0x0D01, (1,), bytes(4))
    with pytest.raises(DataError, match="unsigned-byte"):
        read_idx(weird)


def test_class_dataset_from_labels():
    images = torch.arange(7, dtype=torch.uint8).view(7, 1, 1, 1)
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0])
    first = class_dataset_from_labels(images, labels, seed=None)
    assert first.images.flatten().tolist() == [0, 2, 5, 1, 3, 4]
    a = class_dataset_from_labels(images, labels, seed=3)
    b = class_dataset_from_labels(images, labels, seed=3)
    assert torch.equal(a.images, b.images) and a.images.shape == (2, 3, 1, 1, 1)
    assert set(a.images[0].flatten().tolist()) <= {0, 2, 5, 6}
    with pytest.raises(ValueError, match="per_class"):
        class_dataset_from_labels(images, labels, per_class=4)


def test_dynamic_binarization_is_seeded():
    images = torch.full((20, 20, 1, 28, 28), 64, dtype=torch.uint8)
    ds = ClassDataset(images=images, class_names=list("abcdefghijklmnopqrst"),
                      binarization="dynamic")
    draw = lambda s: ds.to_float(ds.images, torch.Generator().manual_seed(s))  # noqa: E731
    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))
    assert set(torch.unique(draw(1)).tolist()) == {0.0, 1.0}
    assert abs(draw(1).mean().item() - 64 / 255) < 0.004  # 5 standard errors


def test_augment_classes_dihedral():
    img = torch.zeros(1, 2, 1, 5, 5, dtype=torch.uint8)
    img[0, :, 0, 0, 1] = 255  # asymmetric: one pixel off the diagonal
    img[0, 1, 0, 4, 4] = 128
    ds = ClassDataset(images=img, class_names=["x"], alphabets=["A"])
    aug = augment_classes(ds, ("rot90", "flip"))
    assert aug.num_classes == 8 and aug.alphabets == ["A"] * 8
    assert aug.class_names[0] == "x/rot0" and aug.class_names[-1] == "x/rot270/flip"
    flat = {tuple(aug.images[k, 0].flatten().tolist()) for k in range(8)}
    assert len(flat) == 8  # all eight symmetries differ
    assert torch.equal(aug.images[1], torch.rot90(img[0], 1, dims=(-2, -1)))
    assert torch.equal(aug.images[4], torch.flip(img[0], dims=(-1,)))
    assert augment_classes(ds, ("rot90",)).num_classes == 4
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_classes(ds, ("blur",))


def test_dilate_by_hand():
    """A 2 x 2 maximum filter: each pixel takes the most ink of itself and its right,
    lower and lower-right neighbours, grey levels included; the image keeps its size."""
    img = torch.zeros(1, 4, 4, dtype=torch.uint8)
    img[0, 1, 2] = 255
    img[0, 3, 0] = 100
    want = torch.zeros(1, 4, 4, dtype=torch.uint8)
    want[0, 0:2, 1:3] = 255
    want[0, 2:4, 0] = 100
    assert torch.equal(dilate(img), want)
    line = torch.zeros(5, 5, dtype=torch.uint8)
    line[:, 2] = 255  # a vertical stroke one pixel wide becomes two pixels wide
    assert torch.equal((dilate(line) == 255).sum(1), torch.full((5,), 2))


def test_augment_classes_dilate():
    img = torch.zeros(2, 3, 1, 5, 5, dtype=torch.uint8)
    img[:, :, 0, 0, 1] = 255
    img[1, :, 0, 2, 2] = 200
    ds = ClassDataset(images=img, class_names=["x", "y"])
    aug = augment_classes(ds, ("rot90", "flip", "dilate"))
    assert aug.num_classes == 32
    assert aug.class_names[:3] == ["x/rot0", "x/rot0/dilate", "x/rot90"]
    assert aug.class_names[31] == "y/rot270/flip/dilate"
    plain = augment_classes(ds, ("rot90", "flip"))
    # every dilated class is its own plain class, every drawing dilated: no mixed widths
    assert torch.equal(aug.images[0::2], plain.images)
    assert torch.equal(aug.images[1::2], dilate(plain.images))
    only = augment_classes(ds, ("dilate",))
    assert only.class_names == ["x/rot0", "x/rot0/dilate", "y/rot0", "y/rot0/dilate"]


def test_original_classes_undo_class_augmentation():
    img = torch.randint(0, 256, (3, 2, 1, 5, 5), dtype=torch.uint8)
    ds = ClassDataset(images=img, class_names=["a", "b/rot0", "c"], alphabets=["A", "B", "C"])
    assert original_classes(ds) is ds  # not augmented (a name may still end in /rot0)
    for aug in (("rot90", "flip", "dilate"), ("flip",), ("dilate",)):
        back = original_classes(augment_classes(ds, aug))
        assert back.class_names == ["a/rot0", "b/rot0/rot0", "c/rot0"]
        assert torch.equal(back.images, img) and back.alphabets == ["A", "B", "C"]
    sub = augment_classes(ds, ("rot90",)).subset([1, 4, 6])  # a split of augmented classes
    assert original_classes(sub).class_names == ["b/rot0/rot0"]


def test_split_validation():
    ds = ClassDataset(images=torch.zeros(10, 2, 1, 3, 3, dtype=torch.uint8),
                      class_names=[str(i) for i in range(10)])
    tr, va = split_validation(ds, 3, seed=1)
    assert tr.num_classes == 7 and va.num_classes == 3
    assert sorted(tr.class_names + va.class_names, key=int) == ds.class_names
    tr2, va2 = split_validation(ds, 3, seed=1)
    assert va.class_names == va2.class_names
    assert va.class_names != split_validation(ds, 3, seed=2)[1].class_names or \
        va.class_names != split_validation(ds, 3, seed=3)[1].class_names
    for bad in (0, 10):
        with pytest.raises(ValueError, match="num_classes"):
            split_validation(ds, bad)


def test_lake28_threshold_and_ns28(lake28, omniglot_env):
    assert lake28["train"].binarization == "fixed"
    assert lake28["train"].name == "lake28/train"
    with omniglot_env():
        low = load_split(dataclasses.replace(get_protocol("lake28"), threshold=0.25), "test")
        ns_train = load_split("ns28", "train")
        ns_test = load_split("ns28", "test")
    assert set(torch.unique(low.images).tolist()) == {0, 255}
    assert torch.equal(low.images == 255, lake28["test"].images >= 64)
    assert ns_train.num_classes == 1200 * 8 and ns_test.num_classes == 423
    assert ns_train.binarization == "dynamic" and ns_test.binarization == "dynamic"
    base = {n.split("/rot")[0] for n in ns_train.class_names}
    assert len(base) == 1200 and base.isdisjoint(ns_test.class_names)
    everything = set(lake28["train"].class_names) | set(lake28["test"].class_names)
    assert base | set(ns_test.class_names) == everything
    k = ns_train.class_names.index(next(n for n in ns_train.class_names if n.endswith("rot0")))
    source = lake28["train"].class_names + lake28["test"].class_names
    orig = torch.cat([lake28["train"].images, lake28["test"].images])[
        source.index(ns_train.class_names[k][: -len("/rot0")])]
    assert torch.equal(ns_train.images[k], orig)
    assert torch.equal(ns_train.images[k + 3], torch.rot90(orig, 3, dims=(-2, -1)))
    grey = np.unique(ns_test.images.numpy())
    assert len(grey) > 10  # grey levels kept for dynamic binarization


def test_glyphs_split_logic(monkeypatch):
    calls = []

    def fake_make_glyphs(num_characters=200, tokens_per_character=20, num_alphabets=10,
                         seed=0, image_size=28):
        calls.append((num_characters, tokens_per_character, seed, image_size))
        images = torch.zeros(num_characters, tokens_per_character, 1, image_size, image_size,
                             dtype=torch.uint8)
        return ClassDataset(images=images, class_names=[f"g{i}" for i in range(num_characters)],
                            alphabets=[f"a{i % num_alphabets}" for i in range(num_characters)])

    fake = types.ModuleType("ppl_fewshot.data.glyphs")
    fake.make_glyphs = fake_make_glyphs
    monkeypatch.setitem(sys.modules, "ppl_fewshot.data.glyphs", fake)
    train, test = load_split("glyphs", "train"), load_split("glyphs", "test")
    assert calls[0] == (200, 20, 0, 28)
    assert train.num_classes == 160 and test.num_classes == 40
    assert len(set(train.alphabets)) == 8 and len(set(test.alphabets)) == 2
    assert set(train.alphabets).isdisjoint(test.alphabets)
    assert train.name == "glyphs/train"


def test_glyphs_protocol_real():
    pytest.importorskip("pyro")
    pytest.importorskip("ppl_fewshot.data.glyphs")
    test = load_split("glyphs", "test")
    assert test.images_per_class == 20 and test.event_shape == (1, 28, 28)
    assert 0 < test.num_classes < 200
    if test.alphabets is not None:
        assert len(set(test.alphabets)) == 2
