"""Read a user's own drawings (a folder of image files) as a context set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def load_image_folder(folder: str | Path, size: int = 28, max_images: int = 64) -> Tensor:
    """Load every image in ``folder`` (sorted by name) as ``[N, 1, size, size]`` floats, ink = 1.

    Images are converted to grey, area-downsampled to ``size`` x ``size`` and inverted when
    their background is light (most pixels bright), then thresholded at 0.5, matching the
    binary Omniglot protocols. Raises ``FileNotFoundError``/``ValueError`` with one clear line
    for a missing folder, an empty folder or an unreadable file.
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
                g = im.convert("L").resize((size, size), Image.Resampling.BOX)
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image {f}: {err}") from err
        a = np.asarray(g, dtype=np.float32) / 255.0
        if a.mean() > 0.5:  # light background: ink is dark
            a = 1.0 - a
        out.append(torch.from_numpy((a >= 0.5).astype(np.float32)))
    return torch.stack(out).unsqueeze(1)
