"""The settings of a training run, saved with every checkpoint (see ``trainer.train``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ppl_fewshot.data.protocols import AUGMENTATIONS
from ppl_fewshot.inference.objectives import OBJECTIVES

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved with every checkpoint).

    Attributes:
        model: registry name (``ppl_fewshot.models.available()``) or import path
            ``package.module:Class`` of a model of your own.
        model_overrides: settings passed to ``models.build``.
        protocol: data protocol (``ppl_fewshot.data.available_protocols()``).
        steps: optimizer steps.
        batch_size: sets per step (B).
        set_size: items per set (T), or an inclusive range ``(lo, hi)``.
        num_classes: classes per set (C_train), or a range.
        sampler: ``"with-replacement"`` (GMN's) or ``"distinct"``.
        binarization: override the protocol's training binarization (``None``: keep it).
            ``"none"`` feeds grey levels (ink probabilities) p: the Bernoulli
            reconstruction term sum p log theta + (1 - p) log(1 - theta) is then the
            expectation over dynamic binarizations x ~ Bernoulli(p) of log p(x | z), and the
            guide reads p instead of one draw x; since any guide gives a bound, the
            objective is a lower bound on E_x[log p(x)] with less noise than a single draw.
        augmentation: override the protocol's training augmentations (``None``: keep them),
            e.g. ``("rot90", "flip", "dilate")`` for ns28 with dilation
            (:func:`ppl_fewshot.data.augment_classes`); ``()`` for none.
        lr: learning rates of equal-length phases, e.g. ``(1e-3, 3e-4, 1e-4)``.
        grad_clip: max gradient norm (0 = off).
        weight_decay: decoupled weight decay [Loshchilov & Hutter 2019] (``torch.optim.AdamW``;
            each step multiplies every weight by ``1 - lr * weight_decay``); 0 = plain Adam.
        objective: ``"elbo"``, ``"iwae"`` or ``"iwae-dreg"``
            (:mod:`ppl_fewshot.inference.objectives`); ``num_particles`` samples per step.
        kl_anneal_steps: KL weight rises linearly from 0 to 1 over this many steps.
        position_weights: weights of an autoregressive model's terms log p(x_t | x_<t) by
            position t (the last one repeats), e.g. ``(20.0, 1.0)``: the 0-shot term weighs
            as much as the 19 others together; ``()``: all 1 (the paper's objective). See
            :mod:`ppl_fewshot.inference.objectives`. Validation losses stay unweighted.
        singleton_weight: adds this weight times the bound of every item scored as a set of
            one (an autoregressive model's 0-shot term on every item, not one per set); 0:
            none. Validation losses leave it out.
        val_classes: training classes held out for validation; ``val_every`` steps apart,
            ``val_batches`` fixed batches each time.
        checkpoint_every: steps between checkpoints (one is always written at the end).
        train_classes: use only the first N training classes (0 = all), for smoke runs.
        init_from: a checkpoint (a run's or an exported one) whose weights start this
            run with a fresh optimizer and this run's schedule: continuing a finished run
            with more steps or a new learning rate. The model name and settings must match.
        validate_steps: Pyro's and torch's argument checks run in the first N steps of each
            start or resume and are off after: on a GPU they cost host-device syncs
            (``benchmarks/README.md``: an NS step 13.5 -> 11.5 ms on an H200). A non-finite
            loss still stops the run.
        seed, device, num_workers, data_dir: as named.
    """

    model: str = "vae"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    protocol: str = "gmn28"
    steps: int = 1000
    batch_size: int = 20
    set_size: int | tuple[int, int] = 10
    num_classes: int | tuple[int, int] = 1
    sampler: str = "with-replacement"
    binarization: str | None = None
    augmentation: tuple[str, ...] | None = None
    lr: tuple[float, ...] = (1e-3,)
    grad_clip: float = 10.0
    weight_decay: float = 0.0
    objective: str = "elbo"
    num_particles: int = 1
    kl_anneal_steps: int = 0
    position_weights: tuple[float, ...] = ()
    singleton_weight: float = 0.0
    val_classes: int = 50
    val_every: int = 250
    val_batches: int = 4
    checkpoint_every: int = 500
    log_every: int = 10
    train_classes: int = 0
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    data_dir: str | None = None
    init_from: str | None = None
    validate_steps: int = 10

    def __post_init__(self) -> None:
        def pos(name: str, value: Any, zero_ok: bool = False) -> None:
            vals = value if isinstance(value, (tuple, list)) else (value,)
            for v in vals:
                if (not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
                        or (v == 0 and not zero_ok)):
                    raise ValueError(
                        f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value!r}"
                    )

        for name in (
            "steps",
            "batch_size",
            "set_size",
            "num_classes",
            "num_particles",
            "lr",
            "val_every",
            "val_batches",
            "checkpoint_every",
            "log_every",
        ):
            pos(name, getattr(self, name))
        for name in ("grad_clip", "weight_decay", "kl_anneal_steps", "val_classes",
                     "train_classes", "num_workers", "validate_steps", "singleton_weight"):
            pos(name, getattr(self, name), zero_ok=True)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; use one of {OBJECTIVES}")
        if self.sampler not in ("with-replacement", "distinct"):
            raise ValueError(f"unknown sampler {self.sampler!r}; use with-replacement or distinct")
        if self.binarization not in (None, "fixed", "dynamic", "none"):
            raise ValueError(f"unknown binarization {self.binarization!r}; use fixed, dynamic "
                             "or none")
        if self.augmentation is not None:
            unknown = sorted(set(self.augmentation) - set(AUGMENTATIONS))
            if unknown:
                raise ValueError(f"unknown augmentation {unknown}; use some of {AUGMENTATIONS}")
        if not self.lr:
            raise ValueError("lr needs at least one value")
        pos("position_weights", self.position_weights)
        if self.position_weights and self.objective != "elbo":
            raise ValueError("position_weights apply to the elbo objective only")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        for key in ("set_size", "num_classes", "lr", "augmentation", "position_weights"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)

    def lr_at(self, step: int) -> float:
        """Piecewise-constant schedule: ``lr`` split into equal phases over ``steps``."""
        phase = min(len(self.lr) - 1, step * len(self.lr) // max(self.steps, 1))
        return float(self.lr[phase])
