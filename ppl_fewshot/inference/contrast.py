"""Contrasts of several evaluations of the same seeded episodes or tasks.

A paired difference (:mod:`ppl_fewshot.inference.compare`) is the contrast with weights
``(-1, +1)``. Other questions need more than two evaluations of one bank. In a two-by-two
design, for example:

========  ===================  ===================
 rows      attention            no attention
========  ===================  ===================
 C_1       ``a``                ``b``
 C_2       ``c``                ``d``
========  ===================  ===================

Does the benefit of attention depend on the episodes the model was trained on? The
interaction ``(a - b) - (c - d)`` answers that, with weights ``(+1, -1, -1, +1)``. For each
episode (or task) ``e`` the contrast ``sum_i w_i v_i[e]`` is one number. Its mean over the
bank estimates the contrast of the means. Its standard error over the bank is the right error
bar because all the evaluations scored the same episodes, so the shared difficulty of an
episode cancels whenever the weights sum to zero. When they do not, the result includes the
difficulty itself.

``ppl-fewshot compare --weights=W1,W2,... F1 F2 ...`` prints :func:`contrast` for the NLL
columns and classification settings that every folder holds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ppl_fewshot.inference.compare import (
    Source,
    check_same_bank,
    common_settings,
    has_episode_nll,
    load_classification,
    load_episode_nll,
    mean_se,
    per_task_accuracy,
    source_name,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContrastCell:
    """One NLL shot column or classification setting of a :class:`Contrast`.

    Attributes:
        key: ``"N-shot"`` (NLL, nats per item) or ``"METHOD W-way K-shot"`` (accuracy, %).
        units: episodes or tasks that the contrast averages over.
        means: each evaluation's mean, in the order of the folders.
        value: the mean over units of ``sum_i w_i v_i``. It equals ``sum_i w_i means[i]``.
        se: its standard error over units.
    """

    key: str
    units: int
    means: tuple[float, ...]
    value: float
    se: float


class ByKind:
    """The common form of :class:`Contrast` and of
    :class:`~ppl_fewshot.inference.replicates.ReplicateContrast`: ``labels``, ``weights``,
    ``bank``, and cells per NLL column (``nll``) and per classification setting
    (``classification``), one table for each kind."""

    labels: tuple[str, ...]
    weights: tuple[float, ...]
    bank: str | None
    nll: tuple[Any, ...]
    classification: tuple[Any, ...]

    def tables(self, table: Callable[[str, Any], str]) -> str:
        """``table(title, cells)`` of the NLL cells and of the classification cells, joined."""
        parts = []
        if self.nll:
            parts.append(table(f"NLL (nats), {self.nll[0].units} episodes of `{self.bank}`:",
                               self.nll))
        if self.classification:
            parts.append(table("Accuracy (%), per seeded task:", self.classification))
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"labels": list(self.labels), "weights": list(self.weights), "bank": self.bank,
                "nll": [asdict(c) for c in self.nll],
                "classification": [asdict(c) for c in self.classification]}


@dataclass(frozen=True)
class Contrast(ByKind):
    """A weighted sum of evaluations of the same bank, per column or setting (:func:`contrast`).

    Attributes:
        labels: each evaluation's label (or folder), in order.
        weights: the contrast's weights, in the same order.
        bank: the NLL bank's identity, or ``None`` when the contrast has no NLL column.
        nll: one cell per shot column that every evaluation scored, in nats per item.
        classification: one cell per classification setting that every evaluation scored
            with per-task counts, in percentage points.
    """

    labels: tuple[str, ...]
    weights: tuple[float, ...]
    bank: str | None
    nll: tuple[ContrastCell, ...]
    classification: tuple[ContrastCell, ...]

    def markdown(self) -> str:
        """One table per kind. The rows give each evaluation's means with its weight, then
        the contrast (se)."""

        def table(title: str, cells: tuple[ContrastCell, ...]) -> str:
            rows = [f"| {w:+g} x {label} | " + " | ".join(f"{c.means[i]:.1f}" for c in cells)
                    + " |" for i, (w, label) in enumerate(zip(self.weights, self.labels))]
            return "\n".join([
                title, "", "| weight x evaluation | " + " | ".join(c.key for c in cells) + " |",
                "|---|" + "---|" * len(cells), *rows,
                "| contrast, paired (se) | " + " | ".join(
                    f"{c.value:+.2f} ({c.se:.2f})" for c in cells) + " |"])

        return self.tables(table)


def _cell(key: str, weights: Sequence[float], per_unit: Sequence[Sequence[float]]) -> ContrastCell:
    """The contrast of per-unit values ``per_unit[evaluation][unit]``."""
    combined = [math.fsum(w * v for w, v in zip(weights, unit)) for unit in zip(*per_unit)]
    value, se = mean_se(combined)
    return ContrastCell(key=key, units=len(combined),
                        means=tuple(math.fsum(v) / len(v) for v in per_unit), value=value, se=se)


def contrast(folders: Sequence[Source], weights: Sequence[float]) -> Contrast:
    """The contrast ``sum_i weights[i] * folders[i]`` per unit of the bank they share.

    The unit is an episode for NLL columns and a seeded task for classification settings.
    NLL columns are used when every folder holds per-episode values
    (``nll_episodes.csv``). Classification settings are used when every folder scored them
    with per-task counts. A column or setting that some folder lacks is left out.

    Args:
        folders: ``ppl-fewshot evaluate`` result folders, two or more (or ``nll_table``
            results of one bank in memory).
        weights: one weight per folder (a contrast's weights usually sum to zero).

    Returns:
        :class:`Contrast`.

    Raises:
        ValueError: fewer than two folders, a weight count that does not match, nothing in
            common, or folders that scored different banks or tasks.
    """
    if len(folders) < 2:
        raise ValueError(f"a contrast needs at least two evaluations, got {len(folders)}")
    if len(weights) != len(folders):
        raise ValueError(f"{len(weights)} weights for {len(folders)} evaluations")
    weights = tuple(float(w) for w in weights)
    if abs(math.fsum(weights)) > 1e-9:
        logger.warning("contrast weights sum to %g, not 0: the episodes' shared difficulty "
                       "does not cancel", math.fsum(weights))
    labels = [source_name(f) for f in folders]
    nll: list[ContrastCell] = []
    bank = None
    if all(has_episode_nll(f) for f in folders):
        loaded = [load_episode_nll(f) for f in folders]
        metas, values = [m for m, _ in loaded], [v for _, v in loaded]
        bank, _ = check_same_bank(metas, values)
        labels = [str(m.get("label") or source_name(f)) for m, f in zip(metas, folders)]
        shots = sorted(set.intersection(*(set(v) for v in values)))
        nll = [_cell(f"{s}-shot", weights, [v[s] for v in values]) for s in shots]
    classification: list[ContrastCell] = []
    cls = [load_classification(f) for f in folders]
    if all(rows for _, rows in cls):
        if not nll:
            labels = [str(m.get("label") or source_name(f)) for (m, _), f in zip(cls, folders)]
        for rows in common_settings(cls):
            r = rows[0]
            classification.append(_cell(f"{r['method']} {r['ways']}-way {r['shots']}-shot",
                                        weights, [per_task_accuracy(r) for r in rows]))
    if not (nll or classification):
        raise ValueError("the evaluations share no NLL column with per-episode values and no "
                         "classification setting with per-task counts")
    return Contrast(labels=tuple(labels), weights=weights, bank=bank, nll=tuple(nll),
                    classification=tuple(classification))
