"""Episode samplers: batches of sets of exchangeable items drawn from a ClassDataset.

Two samplers (DESIGN.md section 4), both starting by picking ``C`` distinct classes:

- ``"with-replacement"`` (the GMN authors' sampler [1]): each of the ``T`` items gets a
  class uniformly among the ``C`` and a drawing uniformly among the class's ``M``, with
  replacement, so a drawing can appear twice in one episode.
- ``"distinct"``: the ``T`` items are ``T`` distinct (class, drawing) pairs drawn
  uniformly without replacement from the ``C * M`` pairs of the chosen classes.

``set_size`` and ``num_classes`` may be ``(lo, hi)`` inclusive ranges: each set draws
its own value and the batch is padded to the largest ``T`` with ``mask = False``
(padded items are zeros, padded labels are ``-1``). Everything is drawn from one
seeded ``torch.Generator``, so a sampler is deterministic under its seed.

Reference: [1] Bartunov & Vetrov (2018). Few-shot generative modelling with generative
matching networks. AISTATS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ppl_fewshot.data.base import ClassDataset, Episode
from ppl_fewshot.utils import atomic_write_bytes

SAMPLERS = ("with-replacement", "distinct")
IntOrRange = int | tuple[int, int]


def _as_range(value: IntOrRange, what: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what} must be an int or a (lo, hi) pair, got {value!r}")
        lo, hi = (int(v) for v in value)
    else:
        lo = hi = int(value)
    if lo < minimum or hi < lo:
        raise ValueError(f"{what} must satisfy {minimum} <= lo <= hi, got {value!r}")
    return lo, hi


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 63-bit seed from ``seed`` and extra integers (e.g. a worker id)."""
    state = np.random.SeedSequence([int(seed) % 2**63, *(int(k) for k in keys)])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class EpisodeSampler:
    """Draw :class:`Episode` batches ``x[B, T, 1, H, W]`` from a :class:`ClassDataset`.

    Args:
        dataset: the classes to draw from.
        batch_size: ``B``, the number of sets per batch.
        set_size: ``T`` items per set, or an inclusive ``(lo, hi)`` range (``T = 0``, the
            empty set, is allowed).
        num_classes: ``C`` classes per set, or an inclusive ``(lo, hi)`` range.
        sampler: ``"with-replacement"`` or ``"distinct"`` (see the module docstring).
        seed: seed of the sampler's generator (class choice, items, dynamic binarization).
    """

    def __init__(self, dataset: ClassDataset, batch_size: int, set_size: IntOrRange,
                 num_classes: IntOrRange = 1, sampler: str = "with-replacement",
                 seed: int = 0) -> None:
        if not isinstance(dataset, ClassDataset):
            raise TypeError(f"dataset must be a ClassDataset, got {type(dataset).__name__}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.set_range = _as_range(set_size, "set_size", 0)
        self.class_range = _as_range(num_classes, "num_classes", 1)
        n, m = dataset.num_classes, dataset.images_per_class
        if self.class_range[1] > n:
            raise ValueError(f"num_classes {num_classes!r} exceeds the {n} classes of "
                             f"dataset {dataset.name!r}")
        if m < 1:
            raise ValueError(f"dataset {dataset.name!r} has no images per class")
        if sampler == "distinct" and self.set_range[1] > self.class_range[0] * m:
            raise ValueError(f"sampler 'distinct' cannot draw {self.set_range[1]} distinct items "
                             f"from {self.class_range[0]} class(es) of {m} drawings; lower "
                             "set_size, raise num_classes or use 'with-replacement'")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.sampler = sampler
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def reseed(self, seed: int) -> None:
        """Restart the generator from ``seed``."""
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def _randint(self, lo: int, hi: int) -> int:
        if lo == hi:
            return lo
        return int(torch.randint(lo, hi + 1, (), generator=self.generator))

    def sample_indices(self) -> tuple[Tensor, Tensor, Tensor]:
        """Draw one batch of indices: ``(classes [B, T], drawings [B, T], mask [B, T])``.

        Padded entries have class ``-1`` and drawing ``-1``.
        """
        g, m = self.generator, self.dataset.images_per_class
        sizes = [self._randint(*self.set_range) for _ in range(self.batch_size)]
        t_max = max(sizes)
        classes = torch.full((self.batch_size, t_max), -1, dtype=torch.long)
        drawings = torch.full_like(classes, -1)
        for b, t in enumerate(sizes):
            c = self._randint(*self.class_range)
            chosen = torch.randperm(self.dataset.num_classes, generator=g)[:c]
            if self.sampler == "with-replacement":
                which = torch.randint(0, c, (t,), generator=g)
                drawings[b, :t] = torch.randint(0, m, (t,), generator=g)
            else:
                pairs = torch.randperm(c * m, generator=g)[:t]
                which, drawings[b, :t] = pairs // m, pairs % m
            classes[b, :t] = chosen[which]
        mask = torch.arange(t_max).unsqueeze(0) < torch.tensor(sizes).unsqueeze(1)
        return classes, drawings, mask

    def sample(self) -> Episode:
        """Draw one :class:`Episode` batch."""
        classes, drawings, mask = self.sample_indices()
        raw = self.dataset.images[classes.clamp(min=0), drawings.clamp(min=0)]
        x = self.dataset.to_float(raw, generator=self.generator)
        x = x * mask.view(*mask.shape, *([1] * (x.dim() - 2))).to(x.dtype)
        return Episode(x=x, labels=classes, mask=mask)

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()

    def config(self) -> dict:
        """The arguments that rebuild this sampler (without the dataset)."""
        return {"batch_size": self.batch_size, "set_size": self.set_range,
                "num_classes": self.class_range, "sampler": self.sampler, "seed": self.seed}


class EpisodeStream(IterableDataset):
    """An infinite :class:`~torch.utils.data.IterableDataset` of episodes.

    In a DataLoader worker ``i`` of ``n`` the sampler is rebuilt with seed
    ``derive_seed(seed, i, n)``, so workers draw different episodes and a loader with a
    given ``num_workers`` is reproducible. Without workers the stream equals the
    sampler's own sequence from its seed.
    """

    def __init__(self, sampler: EpisodeSampler) -> None:
        super().__init__()
        self.sampler = sampler

    def __iter__(self) -> Iterator[Episode]:
        info = get_worker_info()
        cfg = self.sampler.config()
        if info is not None:
            cfg["seed"] = derive_seed(cfg["seed"], info.id, info.num_workers)
        return iter(EpisodeSampler(self.sampler.dataset, **cfg))


def _identity(episode: Episode) -> Episode:
    return episode


def make_loader(sampler: EpisodeSampler, num_workers: int = 0, pin_memory: bool = False,
                prefetch_factor: int | None = None) -> DataLoader:
    """A DataLoader yielding :class:`Episode` batches from ``sampler`` (infinite).

    ``batch_size=None``: the sampler already batches. Each worker has its own derived
    seed (see :class:`EpisodeStream`); batches come round-robin from the workers, so
    the stream is deterministic for a given ``num_workers``.
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    kwargs = {}
    if num_workers > 0:
        kwargs["prefetch_factor"] = prefetch_factor or 2
        kwargs["persistent_workers"] = False
    return DataLoader(EpisodeStream(sampler), batch_size=None, num_workers=num_workers,
                      pin_memory=pin_memory, collate_fn=_identity, **kwargs)


def episode_bank(dataset: ClassDataset, num_episodes: int, set_size: IntOrRange,
                 num_classes: IntOrRange = 1, sampler: str = "with-replacement",
                 seed: int = 0) -> Episode:
    """A fixed, seeded bank of ``num_episodes`` test episodes (one set each) as one Episode.

    Binarization draws (``dynamic`` datasets) are part of the bank, so a bank saved with
    :func:`save_bank` fixes the exact test pixels.
    """
    return EpisodeSampler(dataset, num_episodes, set_size, num_classes, sampler, seed).sample()


def save_bank(episode: Episode, path: str | os.PathLike) -> None:
    """Write an episode bank with ``torch.save`` of plain tensors (atomic rename).

    ``x`` is stored as uint8 levels when it holds multiples of 1/255 (every binary or
    grey bank made by a sampler), which :func:`load_bank` restores exactly.
    """
    path = Path(path)
    x = episode.x.detach().cpu()
    levels = torch.round(x * 255.0)
    exact = bool(((levels >= 0) & (levels <= 255)).all()) and torch.equal(levels / 255.0, x)
    blob = {"labels": episode.labels.cpu(), "mask": episode.mask.cpu(), "format": 1}
    if exact and x.dtype == torch.float32:
        blob["x_u8"] = levels.to(torch.uint8)
    else:
        blob["x"] = x
    atomic_write_bytes(path, lambda fh: torch.save(blob, fh))


def load_bank(path: str | os.PathLike) -> Episode:
    """Read a bank written by :func:`save_bank` (``torch.load(weights_only=True)``)."""
    blob = torch.load(path, weights_only=True)
    x = blob["x_u8"].float() / 255.0 if "x_u8" in blob else blob["x"]
    return Episode(x=x, labels=blob["labels"], mask=blob["mask"])
