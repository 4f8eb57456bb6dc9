"""Reading Omniglot zips in place: layout, inversion, box downsampling, caching, runs."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from ppl_fewshot.data import (
    DataError,
    cache_dir,
    load_gmn_omniglot,
    load_omniglot,
    load_one_shot_runs,
    read_omniglot_zip,
)
from ppl_fewshot.data import omniglot as omniglot_mod


def _mask(rows: slice, cols: slice) -> np.ndarray:
    ink = np.zeros((105, 105), dtype=bool)
    ink[rows, cols] = True
    return ink


def test_synthetic_zip_layout_and_downsampling(tmp_path, make_omniglot_zip):
    # 105 / 28 = 3.75 input pixels per output pixel: a 15x15 block is exactly 4x4 outputs
    block = _mask(slice(0, 15), slice(0, 15))
    strip = _mask(slice(0, 105), slice(0, 2))  # covers 2 / 3.75 of the first output column
    blank = np.zeros((105, 105), dtype=bool)
    classes = {
        "Beta/character10": [blank, blank],
        "Beta/character2": [strip, block],
        "Alpha/character01": [block, strip],
    }
    path = make_omniglot_zip(tmp_path / "tiny.zip", classes)
    images, names, alphabets = read_omniglot_zip(path)
    assert names == ["images_background/Alpha/character01", "images_background/Beta/character2",
                     "images_background/Beta/character10"]  # numeric character order
    assert alphabets == ["Alpha", "Beta", "Beta"]
    assert images.shape == (3, 2, 1, 28, 28) and images.dtype == np.uint8
    expected_block = np.zeros((28, 28), dtype=np.uint8)
    expected_block[:4, :4] = 255
    np.testing.assert_array_equal(images[0, 0, 0], expected_block)  # drawer 01 first
    np.testing.assert_array_equal(images[1, 1, 0], expected_block)
    assert np.all(images[2] == 0)
    strip_col = images[0, 1, 0, :, 0].astype(float)
    np.testing.assert_allclose(strip_col, 255 * 2 / 3.75, atol=1.0)
    assert np.all(images[0, 1, 0, :, 1:] == 0)
    native, _, _ = read_omniglot_zip(path, image_size=None)
    assert native.shape == (3, 2, 1, 105, 105)
    assert native[0, 0, 0, :15, :15].min() == 255 and native[0, 0, 0].sum() == 255 * 225


def test_uneven_classes_and_empty_zip(tmp_path, make_omniglot_zip):
    blank = np.zeros((105, 105), dtype=bool)
    path = make_omniglot_zip(tmp_path / "uneven.zip",
                             {"A/character01": [blank, blank], "A/character02": [blank]})
    with pytest.raises(DataError, match="different numbers"):
        read_omniglot_zip(path)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(DataError, match="no Omniglot images"):
        read_omniglot_zip(empty)


def test_corrupt_zip_and_corrupt_member(tmp_path, make_omniglot_zip):
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(DataError, match="not a readable zip"):
        read_omniglot_zip(garbage)
    bad = tmp_path / "bad_png.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("images_background/A/character01/0001_01.png", b"not a png")
    with pytest.raises(DataError, match="corrupt"):
        read_omniglot_zip(bad)
    # a garbage file under the official name fails its checksum before any unzipping
    (tmp_path / "data" / "omniglot").mkdir(parents=True)
    (tmp_path / "data" / "omniglot" / "images_background.zip").write_bytes(b"PK garbage")
    with pytest.raises(DataError):
        load_omniglot("background", data_dir=tmp_path / "data")


def test_small1_cached_once_outside_data_dir(data_dir, monkeypatch):
    first = load_omniglot("small1")
    assert first.images.shape == (136, 20, 1, 28, 28)
    assert sorted(set(first.alphabets)) == ["Balinese", "Early_Aramaic", "Greek", "Korean",
                                            "Latin"]
    cached = list((cache_dir() / "omniglot").glob("*.pt"))
    assert len(cached) == 1
    assert not str(cached[0]).startswith(str(data_dir))

    def boom(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(omniglot_mod, "read_omniglot_zip", boom)
    second = load_omniglot("small1")
    assert torch.equal(first.images, second.images)
    assert first.class_names == second.class_names and first.alphabets == second.alphabets
    with pytest.raises(AssertionError, match="cache"):
        load_omniglot("small1", image_size=20)  # other settings, other cache key


def test_lake28_full_sets(lake28, data_dir):
    train, test = lake28["train"], lake28["test"]
    assert train.images.shape == (964, 20, 1, 28, 28)
    assert test.images.shape == (659, 20, 1, 28, 28)
    assert len(set(train.alphabets)) == 30 and len(set(test.alphabets)) == 20
    for ds in (train, test):
        ink = (ds.images >= 128).float().mean().item()
        assert 0.07 < ink < 0.10, ink
    # same classes, in the same order, as the GMN arrays
    gmn = load_gmn_omniglot("train")
    assert gmn.class_names == train.class_names
    # each GMN image is close to some drawing of the same class (README: 2.5-9% pixels differ)
    a = (gmn.images[:40] >= 128).flatten(2).float()
    b = (train.images[:40] >= 128).flatten(2).float()
    mismatch = (a[:, :, None] - b[:, None]).abs().mean(-1).min(-1).values.mean().item()
    other = (a[:, :, None] - b.roll(1, 0)[:, None]).abs().mean(-1).min(-1).values.mean().item()
    assert 0.02 < mismatch < 0.09 and other > 1.5 * mismatch


def test_one_shot_runs(data_dir):
    runs = load_one_shot_runs()
    assert [r.name for r in runs] == [f"run{i:02d}" for i in range(1, 21)]
    for run in runs:
        assert run.train.shape == (20, 1, 28, 28) and run.test.shape == (20, 1, 28, 28)
        assert sorted(run.test_labels.tolist()) == list(range(20))
        ink = (run.test >= 128).float().mean().item()
        assert 0.03 < ink < 0.2
    assert runs[0].test_labels[:4].tolist() == [7, 8, 1, 18]  # class08, 09, 02, 19
