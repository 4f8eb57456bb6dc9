"""Contrasts of training recipes run more than once: the spread between runs in the error bar.

A paired contrast (:mod:`ppl_fewshot.inference.contrast`) says how well the bank's episodes or
tasks pin down a difference between *these trained models*. Its standard error does not
include how far another training run of the same recipe (another seed, another order of
episodes, another rounding) would land, and in this project that is often the larger error:
two seeds of one GMN recipe differ by 1-4 points of classification accuracy where the
per-task standard error is 0.4-0.9 (``docs/findings.md``, section 45).

With several runs of each recipe ``r`` (runs ``s = 1..n_r``, all scored on one bank), the
recipe contrast is ``C = sum_r w_r M_r`` with ``M_r`` the mean of the runs' means ``m_rs``.
Its error has two parts:

- ``se_units``: the standard error over the bank's units (episodes or tasks) of
  ``sum_r w_r mean_s v_rs[e]``, as in :func:`~ppl_fewshot.inference.contrast.contrast`;
- ``se_runs``: ``sqrt(sum_r w_r^2 s_r^2 / n_r)`` with ``s_r^2`` the sample variance of the
  runs' means ``m_rs`` of recipe ``r``. All runs scored the same units, so ``s_r^2`` holds
  the run-to-run spread and not the units' difficulty.

``se = sqrt(se_units^2 + se_runs^2)``. How two runs differ from unit to unit is counted in
both parts, so ``se`` errs on the large side, by a term of order ``1 / units``.
With few runs, ``se_runs`` is itself uncertain: the degrees of freedom of ``se``
(Welch-Satterthwaite, ``n_r - 1`` per recipe and ``units - 1`` for the bank) give the Student
t interval :attr:`ReplicateCell.half_width`. Two runs per recipe give 1 to 2 degrees of freedom
per recipe, hence wide intervals: that width is what two runs can say.

``ppl-fewshot compare --weights=W1,... --runs N F1 F2 ...``: the folders in order, ``N`` per
recipe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from statistics import NormalDist
from typing import TypeVar

from ppl_fewshot.inference.compare import Source
from ppl_fewshot.inference.contrast import ByKind, ContrastCell, contrast

T = TypeVar("T")


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` (at least 1, may be fractional or ``inf``)
    degrees of freedom, for ``0.5 <= p < 1``.

    The CDF is integrated by Simpson's rule over ``u = atan(t / sqrt(df))`` (a finite range,
    where the density is smooth) and inverted by bisection; accurate to about 1e-7.
    """
    if not 0.5 <= p < 1:
        raise ValueError(f"p must be in [0.5, 1), got {p}")
    if not df >= 1:  # Welch-Satterthwaite never gives fewer than its smallest part's
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if math.isinf(df) or df > 1e7:
        return NormalDist().inv_cdf(p)
    # With t = sqrt(df) tan(u), the t density times dt/du is c * cos(u)^(df - 1), c = 1 / B.
    log_c = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - math.lgamma(0.5))

    def mass(u_max: float, n: int = 500) -> float:  # P(0 < T < sqrt(df) tan(u_max))
        h = u_max / n
        f = [math.exp(log_c + (df - 1) * math.log(max(math.cos(i * h), 1e-300)))
             for i in range(n + 1)]
        return h / 3 * (f[0] + f[-1] + 4 * math.fsum(f[1:-1:2]) + 2 * math.fsum(f[2:-1:2]))

    # The quantile falls with df, so the Cauchy's (df = 1) bounds it; the bracket then scales
    # with the density's width, 1 / sqrt(df), whatever df is.
    lo, hi = 0.0, math.atan(math.tan(math.pi * (p - 0.5)) / math.sqrt(df))
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 + mass(mid) < p else (lo, mid)
    return math.sqrt(df) * math.tan((lo + hi) / 2)


@dataclass(frozen=True)
class ReplicateCell:
    """One NLL shot column or classification setting of a :class:`ReplicateContrast`.

    Attributes:
        key: ``"N-shot"`` (nats per item) or ``"METHOD W-way K-shot"`` (accuracy, %).
        units: episodes or tasks of the bank.
        runs: training runs per recipe.
        means: each recipe's mean over its runs of the runs' means.
        run_sd: the standard deviation of each recipe's runs' means (``nan`` for one run).
        value: the contrast ``sum_r w_r means[r]``.
        se_units / se_runs / se: the error over the bank's units, over the runs, and both.
        df: the degrees of freedom of ``se`` (Welch-Satterthwaite).
        half_width: half the width of the 95% Student t interval, ``t(0.975, df) * se``.
    """

    key: str
    units: int
    runs: tuple[int, ...]
    means: tuple[float, ...]
    run_sd: tuple[float, ...]
    value: float
    se_units: float
    se_runs: float
    se: float
    df: float
    half_width: float


@dataclass(frozen=True)
class ReplicateContrast(ByKind):
    """A weighted sum of training recipes, each run several times (:func:`replicate_contrast`).

    Attributes:
        labels: one label per recipe (its first run's label or folder).
        weights: one weight per recipe.
        bank: the NLL bank's identity, or ``None`` when there is no NLL column.
        nll / classification: one :class:`ReplicateCell` per column or setting every run holds.
    """

    labels: tuple[str, ...]
    weights: tuple[float, ...]
    bank: str | None
    nll: tuple[ReplicateCell, ...]
    classification: tuple[ReplicateCell, ...]

    def markdown(self) -> str:
        """One table per kind: each recipe's mean (runs, sd between runs), then the contrast
        with both errors and its 95% interval."""

        def table(title: str, cells: tuple[ReplicateCell, ...]) -> str:
            rows = [f"| {w:+g} x {label} ({cells[0].runs[i]} runs) | " + " | ".join(
                f"{c.means[i]:.1f} (sd {c.run_sd[i]:.1f})" for c in cells) + " |"
                for i, (w, label) in enumerate(zip(self.weights, self.labels))]
            return "\n".join([
                title, "", "| weight x recipe | " + " | ".join(c.key for c in cells) + " |",
                "|---|" + "---|" * len(cells), *rows,
                "| contrast | " + " | ".join(f"{c.value:+.2f}" for c in cells) + " |",
                "| se over units / over runs | " + " | ".join(
                    f"{c.se_units:.2f} / {c.se_runs:.2f}" for c in cells) + " |",
                "| 95% interval, +- (df) | " + " | ".join(
                    f"{c.half_width:.2f} ({c.df:.1f})" for c in cells) + " |"])

        return self.tables(table)


def split_runs(items: Sequence[T], sizes: Sequence[int]) -> list[list[T]]:
    """``items`` in order, cut into consecutive groups of ``sizes[r]`` (which must sum to
    ``len(items)``): the runs of each recipe."""
    ends = list(accumulate(sizes))
    if not ends or ends[-1] != len(items):
        raise ValueError(f"group sizes {list(sizes)} do not add up to {len(items)} items")
    return [list(items[end - n:end]) for n, end in zip(sizes, ends)]


def _replicate_cell(cell: ContrastCell, sizes: Sequence[int],
                    weights: Sequence[float]) -> ReplicateCell:
    """Split a contrast cell over all runs (weights ``w_r / n_r``) back into its recipes."""
    means, sds, parts = [], [], []
    for m, w in zip(split_runs(cell.means, sizes), weights):
        n = len(m)
        mean = math.fsum(m) / n
        var = math.fsum((x - mean) ** 2 for x in m) / (n - 1) if n > 1 else math.nan
        means.append(mean)
        sds.append(math.sqrt(var))
        if w != 0:
            parts.append((w * w * var / n, n - 1))
    se_runs = math.sqrt(math.fsum(v for v, _ in parts))
    se = math.sqrt(cell.se ** 2 + se_runs ** 2)
    parts.append((cell.se ** 2, cell.units - 1))
    denominator = math.fsum(v * v / d for v, d in parts)
    df = se ** 4 / denominator if denominator > 0 else math.inf
    return ReplicateCell(key=cell.key, units=cell.units, runs=tuple(sizes), means=tuple(means),
                         run_sd=tuple(sds), value=cell.value, se_units=cell.se, se_runs=se_runs,
                         se=se, df=df, half_width=student_t_quantile(0.975, df) * se)


def replicate_contrast(groups: Sequence[Sequence[Source]],
                       weights: Sequence[float]) -> ReplicateContrast:
    """The contrast ``sum_r weights[r] * recipe_r`` where each recipe was trained several times.

    Args:
        groups: one sequence per recipe of ``ppl-fewshot evaluate`` result folders (or
            ``nll_table`` results in memory), one per training run, all of one bank or task set.
        weights: one weight per recipe.

    Returns:
        :class:`ReplicateContrast`, whose cells carry both errors and a 95% interval.

    Raises:
        ValueError: a weight count that does not match, a recipe with a nonzero weight and
            fewer than two runs (no spread between runs to measure), or any refusal of
            :func:`~ppl_fewshot.inference.contrast.contrast` (different banks, nothing shared).
    """
    if len(weights) != len(groups):
        raise ValueError(f"{len(weights)} weights for {len(groups)} recipes")
    sizes = [len(g) for g in groups]
    for i, (n, w) in enumerate(zip(sizes, weights)):
        if n < 1 or (w != 0 and n < 2):
            raise ValueError(f"recipe {i + 1} has {n} run(s): the spread between runs needs "
                             "at least two")
    weights = tuple(float(w) for w in weights)
    flat = [f for g in groups for f in g]
    per_run = [w / n for w, n in zip(weights, sizes) for _ in range(n)]
    pooled = contrast(flat, per_run)
    return ReplicateContrast(
        labels=tuple(runs[0] for runs in split_runs(pooled.labels, sizes)), weights=weights,
        bank=pooled.bank,
        nll=tuple(_replicate_cell(c, sizes, weights) for c in pooled.nll),
        classification=tuple(_replicate_cell(c, sizes, weights) for c in pooled.classification))
