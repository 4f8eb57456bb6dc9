"""Diagnostics and figures: calibration, PSIS, ArviZ adapter and plots.

Matplotlib and ArviZ are imported lazily, inside the functions that need them.
"""

from ppl_fewshot.diagnostics.plots import (
    image_grid,
    plot_attention,
    plot_loss_curve,
    plot_nll_curves,
    plot_sample_grid,
    read_metrics,
    save_figure,
)

__all__ = [
    "image_grid",
    "plot_attention",
    "plot_loss_curve",
    "plot_nll_curves",
    "plot_sample_grid",
    "read_metrics",
    "save_figure",
]
