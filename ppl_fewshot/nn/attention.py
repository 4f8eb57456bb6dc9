"""Matching attention for Generative Matching Networks: memories, similarity reads, controllers.

A *memory* holds the conditioning items of a set as key/value pairs ``g(x_t)`` and
``psi(x_t)`` (optionally preceded by trainable *pseudo-inputs* ``g*, psi*``, so that the
memory is never empty). A *read* compares a query ``f`` with every key::

    a_t = softmax_t( beta * sim(f, g(x_t)) )      over the allowed memory slots
    r   = sum_t a_t psi(x_t)

with ``sim`` the cosine similarity (or a scaled dot product) and a learned inverse
temperature ``beta``. Which slots a query may read is a boolean ``allowed[B, Q, M]``:
:func:`causal_allowed` builds the autoregressive mask of a training episode (item ``t``
reads the pseudo-inputs and the real items ``s < t``), :func:`full_allowed` the mask of
queries that read a whole context. A *controller* (a GRU cell) performs ``K`` reads, each
driven by its current state ("full context matching" [1]).

Every module broadcasts over leading dims of the query (importance-sampling particles):
queries ``[..., B, Q, D]`` read memories ``[B, M, D]``.

References:
    [1] Bartunov & Vetrov, "Few-shot generative modelling with generative matching
        networks", AISTATS 2018.
    [2] Vinyals et al., "Matching networks for one shot learning", NeurIPS 2016.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def causal_allowed(mask: Tensor, num_pseudo: int) -> Tensor:
    """The autoregressive read mask ``[B, T, P + T]`` of an episode with ``mask[B, T]``.

    Query ``t`` may read the ``P`` pseudo-inputs and every item ``s < t`` with ``mask[b, s]``.
    """
    B, T = mask.shape
    idx = torch.arange(T, device=mask.device)
    before = idx[None, :] < idx[:, None]  # [T(query), T(memory)]: s < t
    items = before[None] & mask[:, None, :].bool()  # [B, T, T]
    pseudo = mask.new_ones(B, T, num_pseudo, dtype=torch.bool)
    return torch.cat([pseudo, items], -1)


def full_allowed(memory_mask: Tensor, num_queries: int) -> Tensor:
    """``[B, Q, M]``: every one of ``Q`` queries reads every valid slot of ``memory_mask[B, M]``."""
    return memory_mask.bool()[:, None, :].expand(-1, num_queries, -1)


class MatchingMemory(nn.Module):
    """Keys ``g(h_t)`` and values ``psi(h_t)`` of item features, after ``P`` pseudo-inputs.

    Args:
        in_dim: item feature size (conv features).
        dim: key/value size.
        num_pseudo: trainable pseudo-inputs ``(g*, psi*)`` prepended to every memory.
    """

    def __init__(self, in_dim: int, dim: int, num_pseudo: int = 1) -> None:
        super().__init__()
        self.num_pseudo = num_pseudo
        self.key = nn.Linear(in_dim, dim)
        self.value = nn.Linear(in_dim, dim)
        self.pseudo_key = nn.Parameter(torch.randn(num_pseudo, dim) / math.sqrt(dim))
        self.pseudo_value = nn.Parameter(torch.randn(num_pseudo, dim) / math.sqrt(dim))

    def forward(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``h[..., T, in_dim]``, ``mask[..., T]`` -> keys, values ``[..., P+T, dim]``, mask."""
        lead = h.shape[:-2]
        P = self.num_pseudo
        pk = self.pseudo_key.expand(*lead, P, -1)
        pv = self.pseudo_value.expand(*lead, P, -1)
        keys = torch.cat([pk, self.key(h)], -2)
        values = torch.cat([pv, self.value(h)], -2)
        mm = torch.cat([mask.new_ones(*mask.shape[:-1], P, dtype=torch.bool), mask.bool()], -1)
        return keys, values, mm


class MatchingAttention(nn.Module):
    """One read of a memory: ``r = sum_m softmax_m(beta * sim(q, k_m)) v_m`` over allowed slots.

    Args:
        dim: query/key/value size.
        mode: ``"full"`` (similarity attention) or ``"average"`` (no attention: uniform
            weights over the allowed slots).
        similarity: ``"cosine"`` or ``"dot"`` (dot product divided by ``sqrt(dim)``).
        init_scale: initial inverse temperature ``beta`` for cosine similarity (learned,
            kept positive as ``exp(log_scale)``; the dot product starts at 1).

    A query with no allowed slot (possible only without pseudo-inputs) reads a learned
    default vector ``empty`` instead of a NaN.
    """

    def __init__(
        self, dim: int, mode: str = "full", similarity: str = "cosine", init_scale: float = 5.0
    ) -> None:
        super().__init__()
        if mode not in ("full", "average"):
            raise ValueError(f"unknown attention {mode!r}; use 'full' or 'average'")
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"unknown similarity {similarity!r}; use 'cosine' or 'dot'")
        self.mode = mode
        self.similarity = similarity
        self.dim = dim
        if similarity == "dot":
            init_scale = 1.0
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.empty = nn.Parameter(torch.zeros(dim))

    def logits(self, query: Tensor, keys: Tensor) -> Tensor:
        """Scaled similarities ``[..., B, Q, M]`` of queries ``[..., B, Q, D]`` with keys."""
        if self.similarity == "cosine":
            query = F.normalize(query, dim=-1, eps=1e-6)
            keys = F.normalize(keys, dim=-1, eps=1e-6)
            sim = torch.matmul(query, keys.transpose(-1, -2))
        else:
            sim = torch.matmul(query, keys.transpose(-1, -2)) / math.sqrt(self.dim)
        return sim * self.log_scale.exp()

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, allowed: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Read ``[..., B, Q, D]`` and weights ``[..., B, Q, M]`` (zero off ``allowed``)."""
        if self.mode == "full":
            logits = self.logits(query, keys)
        else:
            shape = torch.broadcast_shapes(query.shape[:-1], allowed.shape[:-1]) + (keys.shape[-2],)
            logits = query.new_zeros(shape)
        logits = logits.masked_fill(~allowed, float("-inf"))
        if logits.shape[-1] == 0:  # an empty memory (no pseudo-input, no items)
            read = self.empty.expand(*logits.shape[:-1], self.dim)
            return read + 0 * query, logits
        top = logits.amax(-1, keepdim=True).clamp(min=-1e30).detach()  # finite for empty rows
        ex = torch.exp(logits - top)
        total = ex.sum(-1, keepdim=True)
        weights = ex / total.clamp(min=1e-30)
        read = torch.matmul(weights, values)
        empty = (total == 0).to(read.dtype)  # no allowed slot: read the learned default
        return read * (1 - empty) + self.empty * empty, weights


class MatchingController(nn.Module):
    """``K`` attention reads driven by a GRU state ("full context matching").

    ``s_0 = tanh(W q)``; for ``k = 1..K``: ``r_k, a_k = read(s_{k-1})`` and
    ``s_k = GRU([q, r_k], s_{k-1})``. Returns ``s_K``, ``r_K`` and the weights of all reads.

    Args:
        dim: query, state and memory size.
        steps: number of reads ``K >= 1``.
        mode, similarity: see :class:`MatchingAttention`.
        learned_query: keep a trainable query vector (for the prior, which has no query
            of its own); then :meth:`forward` may be called with ``query=None``.
    """

    def __init__(
        self,
        dim: int,
        steps: int = 1,
        mode: str = "full",
        similarity: str = "cosine",
        learned_query: bool = False,
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"a controller needs at least one attention step, got {steps}")
        self.dim = dim
        self.steps = steps
        self.attention = MatchingAttention(dim, mode, similarity)
        self.init = nn.Linear(dim, dim)
        self.cell = nn.GRUCell(2 * dim, dim)
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim)) if learned_query else None

    def forward(
        self, query: Tensor | None, keys: Tensor, values: Tensor, allowed: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Queries ``[..., B, Q, D]`` (or None: the learned query), memory ``[B, M, D]``.

        Returns state ``[..., B, Q, D]``, last read ``[..., B, Q, D]`` and attention
        weights ``[..., B, Q, K, M]``.
        """
        if query is None:
            if self.query is None:
                raise ValueError("this controller has no learned query; pass one")
            query = self.query.expand(*allowed.shape[:-1], self.dim)
        state = torch.tanh(self.init(query))
        maps = []
        read = state
        for _ in range(self.steps):
            read, w = self.attention(state, keys, values, allowed)
            state, read = torch.broadcast_tensors(state, read)
            q = query.expand_as(state)
            inp = torch.cat([q, read], -1)
            state = self.cell(inp.reshape(-1, 2 * self.dim), state.reshape(-1, self.dim))
            state = state.reshape(read.shape)
            maps.append(w)
        return state, read, torch.stack(maps, -2)
