"""The Neural Statistician: a VAE over sets with a per-set context latent ``c``.

Generative story (``L = num_z_layers``)::

    for each set b:
        c_b ~ Normal(0, I)                                   # c_dim units
        for each item t of set b:
            z_L ~ Normal(mu_L(c_b), sigma_L(c_b))            # z_dim units per layer
            z_l ~ Normal(mu_l(z_{l+1}, c_b), sigma_l(...))   # l = L-1, ..., 1
            x_bt ~ Bernoulli(decoder(z_1, ..., z_L, c_b))    # 28x28 pixels

Guide (amortized, shared conv features ``h(x)``)::

    q(c_b | X_b)            = Normal(statistic_network(h(x_b1), ..., h(x_bT)))
    q(z_L | x, c)           = Normal(inference_L(h(x), c))
    q(z_l | z_{l+1}, x, c)  = Normal(inference_l(h(x), c, z_{l+1}))

The statistic network is an item encoder, a masked pooling (the sample mean, as in
[1], or attention pooling [3]) and a post-pooling network; the empty set gives a
learned constant, so ``q(c | {})`` is a prior-like answer. With ``pooling="product"``
it is instead a product of per-item Gaussian factors with the prior ([4]),
``q(c | X) = N(0, I) prod_t N(c; r(x_t), 1 / lambda(x_t))`` normalized, whose precision
adds up with the set's size (and ``q(c | {}) = p(c)``). "Sample dropout" removes
random items from the pooling during training (never emptying a set).

With an urn (``set_urn``, or the settings ``urn_concentration`` and ``urn_atoms`` of
``models.build``) the items of a set are a draw from a random discrete measure with atoms from
``p(x | c)`` (:mod:`ppl_fewshot.models.urn`: a Dirichlet process, or N atoms), so an exact
repeat of an earlier item costs ``-log w_copy`` nats instead of a new drawing's; ``q(c | X)``
pools the distinct items only, and ``sample`` draws new atoms.

ELBO per set (the objective of [1], eq. 3)::

    L(X) = sum_t E_q[log p(x_t | z_t, c)]
           - KL(q(c | X) || p(c))
           - sum_t sum_l E_q[KL(q(z_tl | z_t,l+1, x_t, c) || p(z_tl | z_t,l+1, c))]

Predictive densities ``log p(x | X) = log p(X u {x}) - log p(X)`` come from the
generic importance samplers of :class:`~ppl_fewshot.models.base.FewShotModel`; the
plug-in estimate ``log E_{q(c|X)} p(x | c)`` is :meth:`log_predictive_plugin`.
Few-shot classification by the smallest ``KL(q(c | {x}) || q(c | X_k))`` is
:meth:`classify_min_kl` ([1], section 5.2).

References:
    [1] Edwards & Storkey, "Towards a Neural Statistician", ICLR 2017.
    [2] Bartunov & Vetrov, "Few-shot generative modelling with generative matching
        networks", AISTATS 2018 (the Neural Statistician rows of table 1).
    [3] Lee et al., "Set Transformer", ICML 2019 (attention pooling).
    [4] Volpp et al., "Bayesian Context Aggregation for Neural Processes", ICLR 2021.
"""

from __future__ import annotations

import logging
import math

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ppl_fewshot.models.base import FewShotModel, as_mask, check_temperature, loc_scale
from ppl_fewshot.models.particles import query_sets
from ppl_fewshot.nn import MLP, ConvDecoder, ConvEncoder, GaussianProductEncoder, SetEncoder
from ppl_fewshot.nn.sets import sample_dropout

logger = logging.getLogger(__name__)


def _cat(*tensors: Tensor) -> Tensor:
    """Concatenate along the last dim after broadcasting all leading dims."""
    lead = torch.broadcast_shapes(*(t.shape[:-1] for t in tensors))
    return torch.cat([t.expand(*lead, t.shape[-1]) for t in tensors], -1)


def _normal(params: Tensor, min_scale: float) -> dist.Independent:
    """A diagonal Normal from ``[..., 2 D]`` (loc, raw scale) with event dim ``D``.

    The scale is ``softplus(raw) + min_scale``: the floor bounds ``1 / scale`` and so every
    KL term; 1e-4 lets a prior ``p(z | c)`` collapse enough to produce loss spikes of 1e9
    nats (docs/findings.md section 2), ``exp(-5)`` is the floor of a log-variance clamped
    to ``[-10, 10]`` as in a public re-implementation.
    """
    return dist.Normal(*loc_scale(params, min_scale)).to_event(1)


class NeuralStatistician(FewShotModel):
    """Neural Statistician [1] with a Bernoulli conv decoder and ``L`` layers of ``z``.

    Defaults follow the paper's Omniglot model: ``c`` of 512 units, one ``z`` layer
    of 16 units, 1000-unit fully connected layers, conv channels 64-128-256.

    Args:
        c_dim: units of the per-set context ``c``.
        z_dim: units of each per-item latent layer.
        hidden: width of the conv feature vector and of every fully connected layer.
        channels: channels of the first convolution (doubled at each stride).
        num_z_layers: ``L``, the depth of the per-item latent hierarchy.
        pooling: ``"mean"`` (the paper), ``"attention"``, or ``"product"`` (Gaussian
            factors multiplied with the prior, :class:`~ppl_fewshot.nn.GaussianProductEncoder`).
        sample_dropout: probability of removing an item from the statistic network's
            pooling during training (guide only; a set never becomes empty).
        num_heads: heads of attention pooling.
        encoder_depth: convolutions per resolution of the shared encoder (the paper: 3).
        min_scale: floor added to every Normal scale of the model and guide (> 0).
        norm: normalization in every hidden layer of every network: ``"none"``;
            ``"layer"`` (per item: ``LayerNorm``, ``GroupNorm(1, C)`` on feature maps; never
            couples the sets of a batch); ``"batch"`` (batch normalization, as the paper uses
            in all layers: training statistics pool every item of the batch, so the sets of
            a training batch are coupled and padded items count; evaluation uses running
            averages, so test sets are scored independently). Without any, the paper-size
            model (1000-unit layers, encoder depth 3) diverges at Adam's 1e-3 and trains at
            3e-4; with ``"layer"`` at 1e-3 it does not diverge but leaves ``c`` unused;
            with ``"batch"`` it trains at 1e-3 without spikes, but min-KL classification
            is worse than without (docs/findings.md sections 15 and 17).
        layer_norm: ``True`` is ``norm="layer"`` (the setting's name before ``norm``; kept
            so that older checkpoints and commands rebuild).
        event_shape: shape of one item.
    """

    has_set_latent = True

    def __init__(
        self,
        c_dim: int = 512,
        z_dim: int = 16,
        hidden: int = 1000,
        channels: int = 64,
        num_z_layers: int = 1,
        pooling: str = "mean",
        sample_dropout: float = 0.0,
        num_heads: int = 4,
        encoder_depth: int = 1,
        min_scale: float = 1e-4,
        norm: str = "none",
        layer_norm: bool = False,
        event_shape: tuple[int, ...] = (1, 28, 28),
    ) -> None:
        super().__init__(tuple(event_shape))
        if not min_scale > 0:
            raise ValueError(f"min_scale must be > 0, got {min_scale}")
        if num_z_layers < 1:
            raise ValueError(f"num_z_layers must be >= 1, got {num_z_layers}")
        if not 0.0 <= sample_dropout < 1.0:
            raise ValueError(f"sample_dropout must be in [0, 1), got {sample_dropout}")
        self.c_dim, self.z_dim, self.num_z_layers = c_dim, z_dim, num_z_layers
        self.sample_dropout, self.min_scale = float(sample_dropout), float(min_scale)
        L = num_z_layers
        if layer_norm:
            if norm not in ("none", "layer"):
                raise ValueError(f"layer_norm=True contradicts norm={norm!r}")
            norm = "layer"
        self.encoder = ConvEncoder(
            hidden, channels, in_channels=self.event_shape[0], depth=encoder_depth, norm=norm
        )
        if pooling not in ("mean", "attention", "product"):
            raise ValueError(f"unknown pooling {pooling!r}; use 'mean', 'attention' or 'product'")
        self.pooling = pooling
        if pooling == "product":
            self.statistic: nn.Module = GaussianProductEncoder(hidden, c_dim, hidden, norm)
        else:
            self.statistic = SetEncoder(hidden, 2 * c_dim, hidden, pooling, num_heads, norm)
        # index l-1 holds the networks of layer z_l; the top layer has no z above it
        self.prior_nets = nn.ModuleList(
            MLP(c_dim + (z_dim if l < L else 0), [hidden, hidden], 2 * z_dim, norm)
            for l in range(1, L + 1)
        )
        self.posterior_nets = nn.ModuleList(
            MLP(hidden + c_dim + (z_dim if l < L else 0), [hidden, hidden], 2 * z_dim, norm)
            for l in range(1, L + 1)
        )
        self.decoder = ConvDecoder(
            L * z_dim + c_dim, channels, out_channels=self.event_shape[0], norm=norm
        )
        self.register_buffer("_zero", torch.zeros(()))

    # ------------------------------------------------------------------ names
    @property
    def z_names(self) -> list[str]:
        """Site names of the per-item latents, bottom (``z1``) to top (``zL``)."""
        if self.num_z_layers == 1:
            return ["z"]
        return [f"z{l}" for l in range(1, self.num_z_layers + 1)]

    # ------------------------------------------------------------------ sites
    def prior_c(self, num_sets: int) -> dist.Independent:
        """``p(c) = Normal(0, I)`` with batch shape ``[B, 1]``."""
        c0 = self._zero.expand(num_sets, 1, self.c_dim)
        return dist.Normal(c0, torch.ones_like(c0)).to_event(1)

    def posterior_c(self, h: Tensor, mask: Tensor) -> dist.Independent:
        """``q(c | X)`` from item features ``h[B, T, hidden]``; batch shape ``[B, 1]``."""
        if self.pooling == "product":
            loc, scale = self.statistic(h, mask)
            return dist.Normal(loc.unsqueeze(-2), scale.unsqueeze(-2) + self.min_scale).to_event(1)
        return _normal(self.statistic(h, mask).unsqueeze(-2), self.min_scale)

    def prior_z(self, layer: int, c: Tensor, z_above: Tensor | None) -> dist.Independent:
        """``p(z_l | z_{l+1}, c)`` for ``layer = l`` in ``1..L`` (no ``z_above`` at the top)."""
        inp = c if z_above is None else _cat(c, z_above)
        return _normal(self.prior_nets[layer - 1](inp), self.min_scale)

    def posterior_z(
        self, layer: int, h: Tensor, c: Tensor, z_above: Tensor | None
    ) -> dist.Independent:
        """``q(z_l | z_{l+1}, x, c)`` from item features ``h[..., B, T, hidden]``."""
        inp = _cat(h, c) if z_above is None else _cat(h, c, z_above)
        return _normal(self.posterior_nets[layer - 1](inp), self.min_scale)

    def likelihood(self, zs: list[Tensor], c: Tensor) -> dist.Independent:
        """``p(x | z_1..z_L, c)``: Bernoulli pixels, ``zs`` ordered bottom to top."""
        logits = self.decoder(_cat(*zs, c))
        return dist.Bernoulli(logits=logits, validate_args=False).to_event(len(self.event_shape))

    # --------------------------------------------------------------- contract
    def prepare(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Conv features of every item, ``{"h": [B, T, hidden]}``, shared by both guide networks."""
        return {"h": self.encoder(x)}

    def model(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        with pyro.plate("sets", B, dim=-2):
            c = pyro.sample("c", self.prior_c(B))
            if T == 0:  # the empty set: only c (Pyro plates cannot be empty)
                return
            with pyro.plate("items", T, dim=-1):
                zs: list[Tensor] = []
                z_above = None
                for layer in range(self.num_z_layers, 0, -1):
                    z_above = pyro.sample(
                        self.z_names[layer - 1], self.prior_z(layer, c, z_above).mask(mask)
                    )
                    zs.insert(0, z_above)
                pyro.sample("x", self.likelihood(zs, c).mask(mask), obs=x)

    def guide(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        ctx = ctx if ctx is not None else self.prepare(x, mask)
        h, pool_mask = ctx["h"], mask
        if self.training and self.sample_dropout > 0 and T > 0:
            pool_mask = self.dropout_mask(pool_mask)
        with pyro.plate("sets", B, dim=-2):
            c = pyro.sample("c", self.posterior_c(h, pool_mask))
            if T == 0:
                return
            with pyro.plate("items", T, dim=-1):
                z_above = None
                for layer in range(self.num_z_layers, 0, -1):
                    q = self.posterior_z(layer, h, c, z_above)
                    z_above = pyro.sample(self.z_names[layer - 1], q.mask(mask))

    def dropout_mask(self, mask: Tensor) -> Tensor:
        """Sample dropout: drop each present item with prob. ``sample_dropout``, keep >= 1."""
        return sample_dropout(mask, self.sample_dropout)

    # ----------------------------------------------------------- user facing
    def context_posterior(self, context: Tensor, mask: Tensor | None = None) -> dist.Independent:
        """``q(c | context)``: ``Independent(Normal)``, batch ``[B]``, event ``[c_dim]`` (with an
        urn, of the distinct items)."""
        mask = self.urn_split(context, mask)[0]
        q = self.posterior_c(self.encoder(context), mask)
        return dist.Normal(q.base_dist.loc[..., 0, :], q.base_dist.scale[..., 0, :]).to_event(1)

    def sample(
        self,
        context: Tensor,
        num_samples: int,
        context_mask: Tensor | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """``[B, N, *event]`` Bernoulli means: one ``c`` per set, then ``z ~ p(z | c)``.

        ``c ~ q(c | context)``; sets whose context is empty (``Tc = 0`` or all masked)
        draw ``c ~ p(c)`` instead. ``temperature < 1`` narrows the scales of ``p(z | c)``
        (not of ``c``): drawings nearer the typical one of the set's character.
        """
        check_temperature(temperature)
        B, Tc = context.shape[:2]
        cmask = as_mask(context, context_mask)
        with torch.no_grad():
            c = self.prior_c(B).sample()  # [B, 1, C]
            if Tc > 0:
                cq = self.context_posterior(context, cmask).sample().unsqueeze(-2)
                c = torch.where(cmask.any(-1)[:, None, None], cq, c)
            zs: list[Tensor] = []
            z_above = None
            for layer in range(self.num_z_layers, 0, -1):
                p = self.prior_z(layer, c, z_above)
                p = dist.Normal(p.base_dist.loc, p.base_dist.scale * temperature).to_event(1)
                if z_above is None:
                    p = p.expand(torch.Size([B, num_samples]))
                z_above = p.sample()
                zs.insert(0, z_above)
            return self.likelihood(zs, c).base_dist.probs

    def item_log_weights(self, x: Tensor, h: Tensor, c: Tensor) -> Tensor:
        """``log p(x, z | c) - log q(z | x, c)`` with ``z ~ q``: one IS weight per item.

        ``x[B, Q, *event]``, ``h[B, Q, hidden]``, ``c[..., B, 1, c_dim]`` -> ``[..., B, Q]``.
        """
        lw = x.new_zeros(())
        zs: list[Tensor] = []
        z_above = None
        for layer in range(self.num_z_layers, 0, -1):
            q = self.posterior_z(layer, h, c, z_above)
            z = q.rsample()
            lw = lw + self.prior_z(layer, c, z_above).log_prob(z) - q.log_prob(z)
            zs.insert(0, z)
            z_above = z
        return lw + self.likelihood(zs, c).log_prob(x)

    def log_predictive_plugin(
        self,
        query: Tensor,
        context: Tensor,
        num_particles: int = 1000,
        context_mask: Tensor | None = None,
        chunk: int = 100,
    ) -> Tensor:
        """Plug-in ``log E_{q(c|X)}[p(x | c)]`` per query item, ``[B, Q]``, in nats.

        Pairs ``(c_k, z_k)`` with ``c_k ~ q(c | X)`` and ``z_k ~ q(z | x, c_k)`` give
        ``log (1/K) sum_k p(x, z_k | c_k) / q(z_k | x, c_k)``. This treats ``q(c | X)``
        as the posterior, so it is *not* the importance-sampled ``log p(x | X)`` of
        :meth:`log_predictive`; report it under its own name. With an urn the query is the
        context's next item, as in :meth:`conditional_log_likelihoods`: ``log w_copy`` when it
        repeats a context item, else ``log w_new`` plus the plug-in estimate.
        """
        with torch.no_grad():
            qc = self.context_posterior(context, context_mask)
            h = self.encoder(query)
            chunks, done = [], 0
            while done < num_particles:
                k = min(chunk, num_particles - done)
                c = qc.sample(torch.Size([k])).unsqueeze(-2)  # [k, B, 1, C]
                chunks.append(self.item_log_weights(query, h, c))
                done += k
            out = torch.logsumexp(torch.cat(chunks, 0), 0) - math.log(num_particles)
            if self.urn is None:
                return out
            xs, ms = query_sets(query, context, as_mask(context, context_mask))
            scored, terms = self.urn.split(xs, ms)
            new = scored[:, -1].reshape(out.shape)  # False: the query repeats a context item
            term = terms[:, -1].reshape(out.shape)
            return torch.where(new, term + out, term)

    def features(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Mean of ``q(c | {x})`` for each item: ``[..., *event] -> [..., c_dim]``.

        ``context`` is accepted for a signature shared with other models and unused:
        each item is encoded as a set of one (the features for cosine classification).
        """
        lead = x.shape[: x.dim() - len(self.event_shape)]
        flat = x.reshape(-1, 1, *self.event_shape)
        return self.context_posterior(flat).base_dist.loc.reshape(*lead, self.c_dim)

    def classify_min_kl(
        self, query: Tensor, support: Tensor, support_mask: Tensor | None = None
    ) -> Tensor:
        """N-way classification by the smallest ``KL(q(c | {x}) || q(c | X_k))`` ([1], 5.2).

        Args:
            query: ``[B, Q, *event]`` (or ``[Q, *event]`` for one episode).
            support: ``[B, N, K, *event]`` (or ``[N, K, *event]``): K shots of N classes.
            support_mask: optional ``[B, N, K]`` (or ``[N, K]``) mask of the shots.

        Returns:
            predicted class indices in ``0..N-1``, ``[B, Q]`` (or ``[Q]``).
        """
        n_ev = len(self.event_shape)
        single = query.dim() == n_ev + 1
        if single:
            query, support = query.unsqueeze(0), support.unsqueeze(0)
            support_mask = None if support_mask is None else support_mask.unsqueeze(0)
        B, Q = query.shape[:2]
        N, K = support.shape[1:3]
        with torch.no_grad():
            qx = self.context_posterior(query.reshape(B * Q, 1, *self.event_shape))
            flat_mask = None if support_mask is None else support_mask.reshape(B * N, K)
            qs = self.context_posterior(support.reshape(B * N, K, *self.event_shape), flat_mask)
            m1 = qx.base_dist.loc.reshape(B, Q, 1, -1)
            s1 = qx.base_dist.scale.reshape(B, Q, 1, -1)
            m2 = qs.base_dist.loc.reshape(B, 1, N, -1)
            s2 = qs.base_dist.scale.reshape(B, 1, N, -1)
            kl = torch.distributions.kl_divergence(
                torch.distributions.Normal(m1, s1), torch.distributions.Normal(m2, s2)
            ).sum(-1)  # [B, Q, N]
            pred = kl.argmin(-1)
        return pred[0] if single else pred
