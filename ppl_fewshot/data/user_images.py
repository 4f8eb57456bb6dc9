"""Read a user's own drawings (a folder of image files) as a context set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ppl_fewshot.data.omniglot import area_weights

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def load_image_folder(folder: str | Path, size: int = 28, max_images: int = 64) -> Tensor:
    """Load every image in ``folder`` (sorted by name) as ``[N, 1, size, size]`` floats, ink = 1.

    Images are converted to grey, inverted when their background is light (ink = 1),
    padded to a square, area-downsampled to ``size`` x ``size`` with the exact area weights
    of the ``lake28`` protocol and thresholded at 0.5, as that protocol does. Raises
    ``FileNotFoundError``/``ValueError`` with one clear line for a missing folder, an empty
    folder or an unreadable file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"context folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if len(files) > max_images:
        raise ValueError(f"{len(files)} images in {folder}; at most {max_images} are allowed")
    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                a = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image {f}: {err}") from err
        if a.mean() > 0.5:  # light background: ink is dark
            a = 1.0 - a
        side = max(a.shape)
        sq = np.zeros((side, side))
        top, left = (side - a.shape[0]) // 2, (side - a.shape[1]) // 2
        sq[top : top + a.shape[0], left : left + a.shape[1]] = a
        w = area_weights(side, size)
        out.append(torch.from_numpy((w @ sq @ w.T >= 0.5).astype(np.float32)))
    return torch.stack(out).unsqueeze(1)
