"""Figures: loss curves, seed-talk style sample grids and NLL-by-shots curves.

Matplotlib is imported lazily inside each function (never at package import) and the
``Agg`` backend is used when no display is configured. Every function takes ``ax=None``
and returns ``(fig, ax)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ppl_fewshot.utils import atomic_write_bytes


def _plt():
    import matplotlib

    if (
        matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo")
        and not _has_display()
    ):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("MPLBACKEND"))


def _set_title(ax, title: str, fontsize: int = 9) -> None:
    """A title wrapped to the figure's width (long titles were cut at the edges)."""
    import textwrap

    width = max(20, int(ax.figure.get_figwidth() * 110 / fontsize))
    ax.set_title("\n".join(textwrap.wrap(title, width)), fontsize=fontsize)


def _axes(ax, figsize):
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def plot_loss_curve(metrics: str | Path | list[dict[str, Any]], ax=None):
    """Training (and validation, where logged) loss per item against the step."""
    recs = read_metrics(metrics) if isinstance(metrics, (str, Path)) else metrics
    fig, ax = _axes(ax, (5, 3.5))
    ax.plot([r["step"] for r in recs], [r["loss"] for r in recs], label="train -ELBO")
    val = [r for r in recs if "val_loss" in r]
    if val:
        ax.plot(
            [r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation -ELBO"
        )
    ax.set_xlabel("step")
    ax.set_ylabel("nats per item")
    ax.legend()
    fig.tight_layout()
    return fig, ax


def image_grid(rows: Tensor, pad: int = 1) -> np.ndarray:
    """Tile images ``[R, C, 1, H, W]`` (ink = 1) into one array, black ink on white."""
    R, C, _, H, W = rows.shape
    canvas = np.ones((R * (H + pad) + pad, C * (W + pad) + pad), dtype=np.float32) * 0.75
    imgs = 1.0 - rows[:, :, 0].detach().cpu().float().numpy()
    for r in range(R):
        for c in range(C):
            y, x = pad + r * (H + pad), pad + c * (W + pad)
            canvas[y : y + H, x : x + W] = imgs[r, c]
    return canvas


def plot_sample_grid(context: Tensor, samples: Tensor, ax=None, title: str | None = None):
    """The seed talk's figure: each row shows a conditioning set (left) and samples (right).

    ``context`` is ``[R, Tc, 1, H, W]`` (Tc may be 0) and ``samples`` ``[R, N, 1, H, W]``.
    """
    R = samples.shape[0]
    gap = torch.zeros(R, 1 if context.shape[1] else 0, *samples.shape[2:])
    rows = torch.cat([context.cpu().float(), gap, samples.cpu().float()], 1)
    fig, ax = _axes(ax, (0.45 * rows.shape[1] + 1, 0.45 * R + 0.6))
    ax.imshow(image_grid(rows), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        _set_title(ax, title)
    fig.tight_layout()
    return fig, ax


def plot_attention(
    query: Tensor,
    context: Tensor,
    weights: Tensor,
    same_class: Tensor | None = None,
    ax=None,
    title: str | None = None,
):
    """Which conditioning items each query attends to.

    Each row shows a query (left) and the context items (right), each context item
    labelled with its attention weight. ``query`` is ``[R, 1, H, W]``, ``context``
    ``[R, S, 1, H, W]`` and ``weights`` ``[R, S]`` (the pseudo-input's share left out).
    ``same_class[R, S]`` (optional) frames the items of the query's class in green.
    """
    R, S = weights.shape
    H, W = context.shape[-2:]
    gap = torch.zeros(R, 1, *context.shape[2:])
    rows = torch.cat([query.cpu().float().unsqueeze(1), gap, context.cpu().float()], 1)
    fig, ax = _axes(ax, (0.6 * rows.shape[1] + 1, 0.75 * R + 0.6))
    ax.imshow(image_grid(rows), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for r in range(R):
        for s in range(S):
            x = 1 + (s + 2) * (W + 1) + W / 2
            y = 1 + r * (H + 1) + H - 1
            w = float(weights[r, s])
            ax.text(x, y, f"{w:.2f}", ha="center", va="bottom", fontsize=6,
                    color=(0.8, 0, 0) if w >= 1.5 / S else (0.2, 0.2, 0.8))
            if same_class is not None and bool(same_class[r, s]):
                left, top = 1 + (s + 2) * (W + 1) - 0.5, 1 + r * (H + 1) - 0.5
                ax.add_patch(_plt().Rectangle((left, top), W, H, fill=False,
                                              edgecolor="g", lw=1.5))
    ax.set_axis_off()
    if title:
        _set_title(ax, title)
    fig.tight_layout()
    return fig, ax


def plot_nll_curves(tables: dict[str, dict[str, Any]], ax=None):
    """NLL against the number of shots, one line (with standard errors) per model."""
    fig, ax = _axes(ax, (5, 3.5))
    for label, t in tables.items():
        ax.errorbar(t["shots"], t["nll"], yerr=t.get("se"), marker="o", capsize=2, label=label)
    ax.set_xlabel("number of conditioning examples")
    ax.set_ylabel("NLL (nats per image)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, ax


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` atomically (temp file, then rename) and close it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    try:
        atomic_write_bytes(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
    finally:
        _plt().close(fig)
    return path
