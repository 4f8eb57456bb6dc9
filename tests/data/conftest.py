"""Shared fixtures for the data tests: the real offline data and a private cache."""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ppl_fewshot.data import ClassDataset

SHARED_DATA = Path(os.environ.get("PPL_FEWSHOT_TEST_DATA", "/work/shared/data"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache and may not download anything."""
    monkeypatch.setenv("PPL_FEWSHOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PPL_FEWSHOT_OFFLINE", "1")

    def no_network(url, dest, timeout=0):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr("ppl_fewshot.data.paths.download_url", no_network)


@pytest.fixture
def data_dir(monkeypatch) -> Path:
    if not (SHARED_DATA / "gmn").is_dir():
        pytest.skip(f"offline data not found at {SHARED_DATA}")
    monkeypatch.setenv("PPL_FEWSHOT_DATA", str(SHARED_DATA))
    return SHARED_DATA


@contextlib.contextmanager
def session_env(cache: Path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PPL_FEWSHOT_CACHE", str(cache))
        mp.setenv("PPL_FEWSHOT_DATA", str(SHARED_DATA))
        mp.setenv("PPL_FEWSHOT_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def omniglot_cache(tmp_path_factory) -> Path:
    """One cache for the whole session, so the full zips are decoded once."""
    if not (SHARED_DATA / "omniglot").is_dir():
        pytest.skip(f"offline data not found at {SHARED_DATA}")
    return tmp_path_factory.mktemp("omniglot_cache")


@pytest.fixture
def omniglot_env(omniglot_cache):
    """A context manager: inside it, loaders use the session's Omniglot cache."""
    return lambda: session_env(omniglot_cache)


@pytest.fixture(scope="session")
def lake28(omniglot_cache) -> dict[str, ClassDataset]:
    from ppl_fewshot.data import load_split

    with session_env(omniglot_cache):
        return {s: load_split("lake28", s) for s in ("train", "test")}


def png_bytes(ink: np.ndarray) -> bytes:
    """A 105x105 Omniglot-style PNG (mode '1', True = background) from a boolean ink mask."""
    buf = io.BytesIO()
    Image.fromarray(~ink).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _make_omniglot_zip(path: Path, classes: dict[str, list[np.ndarray]],
                      root: str = "images_background", junk: bool = True) -> Path:
    """Write a tiny zip in the official layout; ``classes`` maps 'Alpha/characterNN' to masks."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{root}/", b"")
        cid = 1
        for cname, masks in classes.items():
            for drawer, ink in enumerate(masks, start=1):
                zf.writestr(f"{root}/{cname}/{cid:04d}_{drawer:02d}.png", png_bytes(ink))
            cid += 1
        if junk:
            zf.writestr(f"__MACOSX/{root}/._x.png", b"junk")
            zf.writestr(f"{root}/.DS_Store", b"junk")
    return path


def _id_dataset(num_classes: int, per_class: int, binarization: str = "fixed") -> ClassDataset:
    """Each image encodes its own id ``n * M + m`` in 16 binary pixels ([1, 4, 4])."""
    ids = torch.arange(num_classes * per_class)
    bits = (ids[:, None] >> torch.arange(16)) & 1
    images = (bits * 255).to(torch.uint8).view(num_classes, per_class, 1, 4, 4)
    return ClassDataset(images=images, class_names=[f"c{i}" for i in range(num_classes)],
                        binarization=binarization, name="ids")


def _decode_ids(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`id_dataset` for float images ``[..., 1, 4, 4]``."""
    bits = x.flatten(-3).round().long()
    return (bits << torch.arange(16)).sum(-1)


@pytest.fixture
def make_omniglot_zip():
    """Factory ``(path, classes, root=..., junk=True) -> path`` for tiny official-layout zips."""
    return _make_omniglot_zip


@pytest.fixture
def id_dataset():
    """Factory ``(num_classes, per_class, binarization='fixed') -> ClassDataset`` of id images."""
    return _id_dataset


@pytest.fixture
def decode_ids():
    """Decoder of the ids written by :func:`id_dataset`."""
    return _decode_ids
