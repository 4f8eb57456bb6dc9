"""Containers shared by every dataset: a labelled bank of classes and an episode batch.

Everything in :mod:`ppl_fewshot.data` produces a :class:`ClassDataset`: ``N`` classes
with ``M`` images each, stored once as a compact tensor. Episode samplers turn it
into :class:`Episode` batches ``x[B, T, 1, H, W]`` with a ``mask[B, T]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class ClassDataset:
    """``N`` classes of ``M`` images each.

    Attributes:
        images: ``uint8`` tensor ``[N, M, 1, H, W]``; 0 is background and 255 is full ink
            (grey levels in between are ink probabilities for dynamic binarization).
        class_names: ``N`` names, e.g. ``"images_background/Greek/character01"``.
        binarization: ``"fixed"`` (threshold at 0.5), ``"dynamic"`` (a Bernoulli draw
            of the grey level each time an item is drawn) or ``"none"`` (grey levels).
        name: a short label for logs, e.g. ``"gmn28/train"``.
        alphabets: optional alphabet name per class (for samplers that respect alphabets).
    """

    images: Tensor
    class_names: list[str]
    binarization: str = "fixed"
    name: str = ""
    alphabets: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.images.dim() != 5:
            raise ValueError(f"images must be [N, M, C, H, W], got {tuple(self.images.shape)}")
        if self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (0..255), got {self.images.dtype}")
        if len(self.class_names) != self.images.shape[0]:
            raise ValueError("one class name per class is required")
        if self.binarization not in ("fixed", "dynamic", "none"):
            raise ValueError(f"unknown binarization {self.binarization!r}")

    @property
    def num_classes(self) -> int:
        return int(self.images.shape[0])

    @property
    def images_per_class(self) -> int:
        return int(self.images.shape[1])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[2:])

    def to_float(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Turn a uint8 slice of :attr:`images` into floats in [0, 1] (ink = 1).

        ``fixed`` thresholds at 0.5, ``dynamic`` draws Bernoulli pixels with ``generator``,
        ``none`` returns grey levels.
        """
        p = images.float() / 255.0
        if self.binarization == "fixed":
            return (p >= 0.5).float()
        if self.binarization == "dynamic":
            u = torch.rand(p.shape, generator=generator, device=p.device)
            return (u < p).float()
        return p

    def subset(self, indices: list[int] | Tensor, name: str | None = None) -> ClassDataset:
        """A new dataset holding only the given classes (no copy of unused classes)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ClassDataset(
            images=self.images[idx],
            class_names=[self.class_names[i] for i in idx.tolist()],
            binarization=self.binarization,
            name=name or self.name,
            alphabets=None if self.alphabets is None else [self.alphabets[i] for i in idx.tolist()],
        )


@dataclass
class Episode:
    """A batch of ``B`` sets of ``T`` exchangeable items.

    Attributes:
        x: float ``[B, T, 1, H, W]`` in [0, 1], ink = 1 (padded items are zeros).
        labels: long ``[B, T]``, the class index of each item in its ``ClassDataset``.
        mask: bool ``[B, T]``, ``True`` for real items (``False`` for padding).
    """

    x: Tensor
    labels: Tensor
    mask: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Episode:
        return Episode(
            self.x.to(device, non_blocking=non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
            self.mask.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> Episode:
        return Episode(self.x.pin_memory(), self.labels.pin_memory(), self.mask.pin_memory())
