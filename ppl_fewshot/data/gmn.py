"""The Generative Matching Networks authors' 28x28 binary arrays (protocols gmn28, mnist28).

Files (from https://github.com/sbos/gmn, folder ``data/``):

- ``gmn/train_small.npz`` / ``gmn/test_small.npz``: Omniglot background (964 keys) and
  evaluation (659 keys) sets, keys ``images_<set>/<Alphabet>/characterNN``, each a uint8
  ``(20, 784)`` array with 255 = background; ink is ``a < 128``. Rows are not
  guaranteed to follow the drawer order.
- ``gmn/binmnist_train.npz`` / ``gmn/binmnist_test.npz``: binarized MNIST, keys ``"0"`` ..
  ``"9"``, float32 ``(n_digit, 28, 28)`` with 1 = ink.

Digits have different counts, so MNIST comes as a flat bank ``(images, labels)``
(:func:`load_gmn_mnist`); :func:`class_dataset_from_labels` turns such a bank into a
:class:`ClassDataset` with the same number of images per class (all classes cut to
``per_class`` images, by default the smallest class count, chosen at random with a
fixed seed or, with ``seed=None``, the first ones in stored order).

Reference: [1] Bartunov & Vetrov (2018). Few-shot generative modelling with generative
matching networks. AISTATS.
"""

from __future__ import annotations

import logging
import os
import zipfile

import numpy as np
import torch
from torch import Tensor

from ppl_fewshot.data.base import ClassDataset
from ppl_fewshot.data.paths import DataError, fetch

logger = logging.getLogger(__name__)

GMN_OMNIGLOT = {"train": "gmn/train_small.npz", "test": "gmn/test_small.npz"}
GMN_MNIST = {"train": "gmn/binmnist_train.npz", "test": "gmn/binmnist_test.npz"}


def _open_npz(path: os.PathLike | str) -> np.lib.npyio.NpzFile:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable .npz archive ({err}); delete it and "
                        "fetch it again") from err


def load_gmn_omniglot(split: str = "train", data_dir: str | os.PathLike | None = None,
                      binarization: str = "fixed") -> ClassDataset:
    """GMN's Omniglot arrays as a :class:`ClassDataset` ``[N, 20, 1, 28, 28]`` (ink = 255).

    ``split="train"`` is the background set (964 classes), ``"test"`` the evaluation set
    (659). Keys are sorted, so class ``i`` here is class ``i`` of the ``lake28`` zips.
    """
    if split not in GMN_OMNIGLOT:
        raise ValueError(f"split must be one of {sorted(GMN_OMNIGLOT)}, got {split!r}")
    path = fetch(GMN_OMNIGLOT[split], data_dir)
    with _open_npz(path) as npz:
        keys = sorted(npz.files)
        try:
            arrays = [npz[k] for k in keys]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: cannot read arrays ({err})") from err
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[1] != 784:
        raise DataError(f"{path}: expected uint8 (M, 784) arrays per key, got shapes {shapes}")
    raw = np.stack(arrays)  # [N, M, 784], 255 = background
    ink = np.where(raw < 128, 255, 0).astype(np.uint8).reshape(len(keys), -1, 1, 28, 28)
    alphabets = [k.split("/")[1] if k.count("/") >= 2 else "" for k in keys]
    return ClassDataset(images=torch.from_numpy(ink), class_names=keys,
                        binarization=binarization, name=f"gmn28/{split}", alphabets=alphabets)


def load_gmn_mnist(split: str = "test", data_dir: str | os.PathLike | None = None
                   ) -> tuple[Tensor, Tensor]:
    """GMN's binarized MNIST as ``(images uint8 [N, 1, 28, 28] in {0, 255}, labels long [N])``.

    Digits come in order 0..9, each in its stored order (test: 10,000 images).
    """
    if split not in GMN_MNIST:
        raise ValueError(f"split must be one of {sorted(GMN_MNIST)}, got {split!r}")
    path = fetch(GMN_MNIST[split], data_dir)
    images, labels = [], []
    with _open_npz(path) as npz:
        missing = [str(d) for d in range(10) if str(d) not in npz.files]
        if missing:
            raise DataError(f"{path}: digit keys {missing} are missing")
        for d in range(10):
            a = npz[str(d)]
            if a.ndim != 3 or a.shape[1:] != (28, 28):
                raise DataError(f"{path}: key {d!r} has shape {a.shape}, expected (n, 28, 28)")
            images.append(np.where(a >= 0.5, 255, 0).astype(np.uint8))
            labels.append(np.full(len(a), d, dtype=np.int64))
    x = torch.from_numpy(np.concatenate(images)[:, None])
    return x, torch.from_numpy(np.concatenate(labels))


def class_dataset_from_labels(images: Tensor, labels: Tensor, per_class: int | None = None,
                              seed: int | None = 0, binarization: str = "fixed",
                              name: str = "", class_names: list[str] | None = None
                              ) -> ClassDataset:
    """Build a :class:`ClassDataset` with ``per_class`` images of each label.

    Args:
        images: uint8 ``[n, C, H, W]``.
        labels: long ``[n]`` with values ``0 .. K-1`` (every label present).
        per_class: images kept per class; default the smallest class count.
        seed: images are chosen uniformly without replacement with this seed; ``None``
            keeps the first ``per_class`` of each class in stored order.
        class_names: one name per label (default ``"0"``, ``"1"``, ...).
    """
    if images.dim() != 4 or labels.dim() != 1 or len(images) != len(labels):
        raise ValueError("images must be [n, C, H, W] and labels [n] of the same length")
    num = int(labels.max()) + 1 if len(labels) else 0
    counts = torch.bincount(labels, minlength=num)
    if num == 0 or bool((counts == 0).any()):
        raise ValueError(f"every label 0..{num - 1} must be present, counts {counts.tolist()}")
    per = int(counts.min()) if per_class is None else int(per_class)
    if not 1 <= per <= int(counts.min()):
        raise ValueError(f"per_class must be in 1..{int(counts.min())} (smallest class), got {per}")
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    rows = []
    for k in range(num):
        idx = torch.nonzero(labels == k).flatten()
        if gen is not None:
            idx = idx[torch.randperm(len(idx), generator=gen)[:per]].sort().values
        rows.append(images[idx[:per]])
    names = class_names or [str(k) for k in range(num)]
    return ClassDataset(images=torch.stack(rows), class_names=list(names),
                        binarization=binarization, name=name)
