"""Seeded N-way K-shot classification tasks drawn from a class dataset.

A task draws ``ways`` distinct classes, then ``shots + queries_per_class`` distinct drawings of
each: the first ``shots`` are the class's support set, the rest are its queries. The same
arguments give the same tasks, so every method and model of a comparison scores the same ones
(:mod:`ppl_fewshot.inference.classify` scores them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppl_fewshot.data.base import ClassDataset


@dataclass
class FewShotTasks:
    """A fixed batch of N-way K-shot tasks.

    Attributes:
        support: ``[N_tasks, ways, shots, *event]`` floats in [0, 1].
        query: ``[N_tasks, ways * queries_per_class, *event]``.
        labels: ``[N_tasks, ways * queries_per_class]`` true class in ``0..ways-1``.
        classes: ``[N_tasks, ways]`` the dataset class index behind each way.
    """

    support: Tensor
    query: Tensor
    labels: Tensor
    classes: Tensor

    @property
    def num_tasks(self) -> int:
        return int(self.support.shape[0])

    @property
    def ways(self) -> int:
        return int(self.support.shape[1])

    @property
    def shots(self) -> int:
        return int(self.support.shape[2])


def make_tasks(
    dataset: ClassDataset,
    num_tasks: int,
    ways: int,
    shots: int,
    queries_per_class: int = 1,
    seed: int = 0,
) -> FewShotTasks:
    """Draw ``num_tasks`` seeded N-way K-shot tasks from ``dataset``.

    Classes within a task are distinct, and so are the drawings within a class (support
    and queries never share a drawing). The same arguments give the same tasks.

    Raises:
        ValueError: ``ways`` exceeds the classes of ``dataset``, or ``shots +
            queries_per_class`` exceeds its drawings per class, or a count is < 1.
    """
    for what, v in (("num_tasks", num_tasks), ("ways", ways), ("shots", shots),
                    ("queries_per_class", queries_per_class)):
        if int(v) < 1:
            raise ValueError(f"{what} must be >= 1, got {v}")
    n, m = dataset.num_classes, dataset.images_per_class
    if ways > n:
        name = dataset.name or "the dataset"
        raise ValueError(f"{ways}-way tasks need {ways} classes, but {name} has only {n}")
    per = shots + queries_per_class
    if per > m:
        raise ValueError(f"{shots}-shot tasks with {queries_per_class} query per class need {per} "
                         f"distinct drawings per class, but the dataset has {m}")
    g = torch.Generator().manual_seed(int(seed))
    classes = torch.rand(num_tasks, n, generator=g).argsort(-1)[:, :ways]  # [N, ways]
    drawings = torch.rand(num_tasks, ways, m, generator=g).argsort(-1)[..., :per]
    raw = dataset.images[classes.unsqueeze(-1), drawings]  # [N, ways, per, *event]
    x = dataset.to_float(raw, generator=g)
    support = x[:, :, :shots].contiguous()
    query = x[:, :, shots:].reshape(num_tasks, ways * queries_per_class, *x.shape[3:])
    labels = torch.arange(ways).repeat_interleave(queries_per_class).expand(num_tasks, -1)
    return FewShotTasks(support, query.contiguous(), labels.contiguous(), classes)


__all__ = ["FewShotTasks", "make_tasks"]
