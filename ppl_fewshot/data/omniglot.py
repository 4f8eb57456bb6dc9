"""Omniglot from the official zips, read in place (no extraction).

Each image is a 105x105 1-bit PNG with ``True`` = white background. We invert it so
that ink = 1, downsample by exact area averaging (every output pixel averages its
footprint of 3.75 x 3.75 input pixels, fractional overlaps weighted exactly) and store
the ink fraction of each output pixel as a grey level 0..255 (255 = all ink). A
``fixed`` binarization then thresholds at one half, a ``dynamic`` one draws Bernoulli
pixels with these levels.

Decoding the full background set takes a few seconds, so the result is cached once in
``cache_dir()/omniglot`` as a compact tensor file, keyed by the zip's name, size and
modification time and the preprocessing settings; later loads read that file.

Reference: [1] Lake, Salakhutdinov & Tenenbaum (2015). Human-level concept learning
through probabilistic program induction. Science 350(6266).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ppl_fewshot.data.base import ClassDataset
from ppl_fewshot.data.paths import DataError, cache_dir, fetch, open_zip
from ppl_fewshot.utils import atomic_write_bytes

logger = logging.getLogger(__name__)

_CACHE_FORMAT = 2
_MEMBER = re.compile(r"^([^/]+)/([^/]+)/(character\d+)/(\d+)_(\d+)\.png$")
OMNIGLOT_SETS = {
    "background": "omniglot/images_background.zip",
    "evaluation": "omniglot/images_evaluation.zip",
    "small1": "omniglot/images_background_small1.zip",
    "small2": "omniglot/images_background_small2.zip",
}


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` exact area-averaging matrix: row ``i`` holds the overlap of input
    pixel ``j`` (the interval ``[j, j+1]``) with output pixel ``i`` (the interval
    ``[i, i+1] * n_in / n_out``), divided by the output pixel's width. Rows sum to one.
    """
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo = np.maximum(edges[:-1, None], np.arange(n_in)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(1, n_in + 1)[None, :])
    return np.clip(hi - lo, 0.0, None) * (n_out / n_in)


def decode_png(data: bytes, image_size: int | None = 28,
               weights: np.ndarray | None = None) -> np.ndarray:
    """One Omniglot PNG -> uint8 ``[s, s]`` ink levels (255 = ink), area-downsampled.

    Each output pixel is ``round(255 * ink fraction of its footprint)`` with exact
    fractional overlaps (105 -> 28 maps 3.75 input pixels to one output pixel).
    ``image_size=None`` keeps the native 105x105 resolution; ``weights`` may pass a
    precomputed :func:`area_weights` matrix.
    """
    with Image.open(io.BytesIO(data)) as im:
        ink = np.asarray(im.convert("L"), dtype=np.uint8) < 128
    side = ink.shape[0]
    if ink.ndim != 2 or ink.shape[1] != side:
        raise ValueError(f"expected a square image, got shape {ink.shape}")
    if image_size is None or image_size == side:
        return ink.astype(np.uint8) * np.uint8(255)
    ok = weights is not None and weights.shape == (image_size, side)
    w = weights if ok else area_weights(side, image_size)
    frac = w @ ink.astype(np.float64) @ w.T
    return np.rint(frac * 255.0).astype(np.uint8)


def read_omniglot_zip(path: str | os.PathLike, image_size: int | None = 28
                      ) -> tuple[np.ndarray, list[str], list[str]]:
    """Read an official Omniglot image zip straight from the archive.

    Returns ``(images uint8 [N, M, 1, s, s], class_names, alphabets)`` with classes sorted by
    name (``"<root>/<Alphabet>/characterNN"``, the same keys as the GMN arrays) and the
    ``M`` drawings of a class ordered by drawer number. ``__MACOSX`` and other non-image
    entries are skipped. Raises :class:`DataError` for a corrupt archive or a class with
    a different number of drawings than the others.
    """
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with open_zip(path) as zf:
        for name in zf.namelist():
            m = _MEMBER.match(name)
            if m is None or name.startswith("__MACOSX"):
                continue
            groups["/".join(m.group(1, 2, 3))].append((int(m.group(5)), name))
        if not groups:
            raise DataError(f"{path} holds no Omniglot images (<set>/<Alphabet>/characterNN/"
                            "XXXX_YY.png)")
        counts = {len(v) for v in groups.values()}
        if len(counts) != 1:
            raise DataError(f"{path}: classes have different numbers of drawings {sorted(counts)}")
        class_names = sorted(groups, key=_class_sort_key)
        m_per = counts.pop()
        side = 105 if image_size is None else image_size
        out = np.empty((len(class_names), m_per, 1, side, side), dtype=np.uint8)
        weights = None if image_size is None else area_weights(105, image_size)
        try:
            for i, cname in enumerate(class_names):
                for j, (_, member) in enumerate(sorted(groups[cname])):
                    out[i, j, 0] = decode_png(zf.read(member), image_size, weights)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise DataError(f"{path}: cannot decode member ({err}); the archive is corrupt") \
                from err
    alphabets = [c.split("/")[1] for c in class_names]
    return out, class_names, alphabets


def _class_sort_key(name: str) -> tuple[str, str, int]:
    root, alphabet, char = name.split("/")
    return root, alphabet, int(char[len("character"):])


def _cache_file(zip_path: Path, image_size: int | None) -> Path:
    st = zip_path.stat()
    key = f"{zip_path.name}:{st.st_size}:{st.st_mtime_ns}:{image_size}:area:{_CACHE_FORMAT}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_dir() / "omniglot" / f"{zip_path.stem}-{image_size}-{digest}.pt"


def _load_arrays(zip_path: Path, image_size: int | None, cache: bool
                 ) -> tuple[Tensor, list[str], list[str]]:
    target = _cache_file(zip_path, image_size) if cache else None
    if target is not None and target.is_file():
        try:
            blob = torch.load(target, weights_only=True)
            return blob["images"], list(blob["class_names"]), list(blob["alphabets"])
        except Exception as err:  # a broken cache is rebuilt, never fatal
            logger.warning("ignoring unreadable cache %s: %s", target, err)
    images, names, alphabets = read_omniglot_zip(zip_path, image_size)
    tensor = torch.from_numpy(images)
    if target is not None:
        try:
            blob = {"images": tensor, "class_names": names, "alphabets": alphabets}
            atomic_write_bytes(target, lambda fh: torch.save(blob, fh))
        except (OSError, ValueError) as err:
            logger.warning("could not write cache %s: %s", target, err)
    return tensor, names, alphabets


def load_omniglot(which: str = "background", data_dir: str | os.PathLike | None = None,
                  image_size: int | None = 28, binarization: str = "fixed",
                  cache: bool = True) -> ClassDataset:
    """An Omniglot image set as a :class:`ClassDataset` ``[N, 20, 1, s, s]`` of ink levels.

    Args:
        which: ``"background"`` (964 classes), ``"evaluation"`` (659), ``"small1"`` (136)
            or ``"small2"`` (156).
        data_dir: raw-data folder (see :func:`~ppl_fewshot.data.paths.resolve_data_dir`).
        image_size: output side (exact area downsample), ``None`` for the native 105.
        binarization: stored on the dataset; see :meth:`ClassDataset.to_float`.
        cache: read/write the preprocessed tensor in ``cache_dir()``.
    """
    if which not in OMNIGLOT_SETS:
        raise KeyError(f"unknown Omniglot set {which!r}; choose from {sorted(OMNIGLOT_SETS)}")
    path = fetch(OMNIGLOT_SETS[which], data_dir)
    images, names, alphabets = _load_arrays(path, image_size, cache)
    return ClassDataset(images=images, class_names=names, binarization=binarization,
                        name=f"omniglot/{which}", alphabets=alphabets)


@dataclass
class OneShotRun:
    """One of the 20 official 20-way one-shot classification runs.

    Attributes:
        name: ``"run01"`` .. ``"run20"``.
        train: uint8 ``[20, 1, s, s]`` ink levels, one example of each class (class01..20).
        test: uint8 ``[20, 1, s, s]``, the query items (item01..20).
        test_labels: long ``[20]``, index into ``train`` of each query's true class.
    """

    name: str
    train: Tensor
    test: Tensor
    test_labels: Tensor


def load_one_shot_runs(data_dir: str | os.PathLike | None = None,
                       image_size: int | None = 28) -> list[OneShotRun]:
    """Read ``omniglot/all_runs.zip`` into 20 :class:`OneShotRun` objects."""
    path = fetch("omniglot/all_runs.zip", data_dir)
    runs = []
    with open_zip(path) as zf:
        names = set(zf.namelist())
        run_ids = sorted({n.split("/")[0] for n in names if re.match(r"^run\d+/", n)})
        for run in run_ids:
            label_file = f"{run}/class_labels.txt"
            if label_file not in names:
                raise DataError(f"{path}: {label_file} is missing")
            pairs = [line.split() for line in zf.read(label_file).decode().splitlines()
                     if line.strip()]
            train_files = sorted(n for n in names if n.startswith(f"{run}/training/")
                                 and n.endswith(".png"))
            index = {f: i for i, f in enumerate(train_files)}
            test_files, labels = [], []
            for pair in sorted(pairs):
                if len(pair) != 2 or pair[1] not in index or pair[0] not in names:
                    raise DataError(f"{path}: bad line {' '.join(pair)!r} in {label_file}")
                test_files.append(pair[0])
                labels.append(index[pair[1]])

            def stack(files: list[str]) -> Tensor:
                arr = np.stack([decode_png(zf.read(f), image_size) for f in files])
                return torch.from_numpy(arr[:, None])

            runs.append(OneShotRun(run, stack(train_files), stack(test_files),
                                   torch.tensor(labels, dtype=torch.long)))
    return runs
