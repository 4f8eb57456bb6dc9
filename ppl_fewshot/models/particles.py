"""Bookkeeping of the importance-sampling estimators (:mod:`ppl_fewshot.models.base`):
particles drawn in chunks of a size that suits the CPU's caches, the prefixes and positions a
conditional ``log p(x_t | x_<t)`` needs, and one set per query for a predictive."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def query_sets(query: Tensor, context: Tensor, context_mask: Tensor) -> tuple[Tensor, Tensor]:
    """One set per query, its context then the query: ``([B * Q, Tc + 1, *event], mask)``
    from ``query[B, Q, *event]``, ``context[B, Tc, *event]`` and ``context_mask[B, Tc]``."""
    B, Q, Tc = *query.shape[:2], context.shape[1]
    xs = torch.cat([context.unsqueeze(1).expand(B, Q, *context.shape[1:]), query.unsqueeze(2)], 2)
    ms = torch.cat([context_mask.unsqueeze(1).expand(B, Q, Tc), context_mask.new_ones(B, Q, 1)], 2)
    return xs.flatten(0, 1), ms.flatten(0, 1)


def prefix_pairs(mask: Tensor, pos: list[int]) -> tuple[Tensor, Tensor]:
    """Prefix lengths ``(before, upto)``, each ``[B, len(pos)]``, whose log-marginals give
    ``log p(x_t | x_<t) = log p(first upto items) - log p(first before items)``.

    For every position (``pos == range(T)``) each present item is differenced against the
    prefix that ends at the previous *present* item, so the sum over items telescopes to
    ``log p(X)`` exactly whatever the padding; otherwise ``before = t``, ``upto = t + 1``.
    """
    B, T = mask.shape
    upto = torch.tensor(pos, device=mask.device).expand(B, len(pos)) + 1
    if pos != list(range(T)):
        return upto - 1, upto
    ar = torch.arange(T, device=mask.device)
    present = torch.where(mask, ar + 1, torch.zeros_like(ar))
    before = torch.cat([present.new_zeros(B, 1), present.cummax(1).values[:, :-1]], 1)
    return before, upto


def prefix_lengths(before: Tensor, upto: Tensor) -> list[int]:
    """The distinct non-empty prefix lengths that :func:`prefix_pairs` asks for, sorted."""
    return sorted((set(before.unique().tolist()) | set(upto.unique().tolist())) - {0})


def check_positions(positions: list[int] | tuple[int, ...], num_items: int) -> list[int]:
    """``positions`` as a list of ints, or ``ValueError`` if one is outside ``0..num_items-1``."""
    pos = [int(t) for t in positions]
    bad = [t for t in pos if not 0 <= t < num_items]
    if bad:
        raise ValueError(f"positions {bad} are outside the {num_items} items of each set")
    return pos


def auto_chunk(x: Tensor, items: int | None = None, budget: int = 200_000) -> int:
    """Particles per call so that one call handles about ``budget`` input values.

    ``x`` is the batch ``[B, T, *event]`` and ``items`` the number of items scored per
    particle (default ``B * T``). On a CPU, importance sampling runs fastest with a few
    hundred 28x28 images per network call (larger activations fall out of cache: gmn-small
    scores ~6200 item-particles/s at 128-256 images per call, ~5100 at 512-1024, ~4400 at
    2048; one thread); ``budget`` = 200,000 values is ~256 such images. Small items (the
    conjugate models) get proportionally more particles per call.
    """
    n = x.shape[0] * max(x.shape[1], 1) if items is None else items
    size = math.prod(x.shape[2:]) if x.dim() > 2 else 1
    return max(1, budget // max(n * size, 1))


def particles_in_chunks(fn: Callable[[int], Tensor], num_particles: int, chunk: int) -> Tensor:
    """``torch.cat([fn(k) ...], 0)`` over chunks ``k <= chunk`` that add up to ``num_particles``."""
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    parts, done = [], 0
    while done < num_particles:
        k = min(chunk, num_particles - done)
        parts.append(fn(k))
        done += k
    return torch.cat(parts, 0)
