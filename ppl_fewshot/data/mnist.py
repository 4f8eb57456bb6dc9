"""MNIST from the official gzip-compressed IDX files.

IDX layout: a big-endian header (magic, then one uint32 per dimension) followed by the
data in row-major order. Images have magic 2051 (``0x00000803``: uint8, 3 dims), labels
magic 2049 (``0x00000801``: uint8, 1 dim). Pixels are 0 = background, 255 = ink.

Reference: [1] LeCun, Bottou, Bengio & Haffner (1998). Gradient-based learning applied
to document recognition. Proc. IEEE 86(11).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ppl_fewshot.data.paths import DataError, fetch

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
MNIST_FILES = {
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"),
}


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Read a uint8 IDX file (gzip-compressed if its name ends in ``.gz``).

    Raises :class:`DataError` on a wrong magic number, an unsupported type or a size
    that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} cannot be read as {'gzip' if path.suffix == '.gz' else 'IDX'}"
                        f" ({err}); delete it and fetch it again") from err
    if len(data) < 4:
        raise DataError(f"{path} is too short for an IDX header ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{path}: IDX magic number {magic}, expected {expect_magic}")
    dtype_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or dtype_code != 0x08 or ndim == 0:
        raise DataError(f"{path}: magic {magic:#010x} is not an unsigned-byte IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape)) + header
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes, but header {shape} needs {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist_idx(split: str = "test", data_dir: str | os.PathLike | None = None
                   ) -> tuple[Tensor, Tensor]:
    """MNIST as ``(images uint8 [N, 1, 28, 28] grey levels, labels long [N])``.

    ``split="test"`` is t10k (10,000 images); ``"train"`` needs the training images,
    which are not in the offline copy and are downloaded if the network allows.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {sorted(MNIST_FILES)}, got {split!r}")
    img_rel, lab_rel = MNIST_FILES[split]
    images = read_idx(fetch(img_rel, data_dir), IMAGES_MAGIC)
    labels = read_idx(fetch(lab_rel, data_dir), LABELS_MAGIC)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"MNIST {split}: {images.shape} images do not match {labels.shape} labels")
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"MNIST {split}: label {int(labels.max())} out of range 0..9")
    x = torch.from_numpy(images.copy())[:, None]
    return x, torch.from_numpy(labels.astype(np.int64))
