"""One-shot conditional VAE: every item generated from a single earlier exemplar.

Generative story of an episode ``X = (x_1, ..., x_T)`` (item t conditioned on one
earlier item, its exemplar ``e(t)``, so ``p(X) = prod_t p(x_t | x_e(t))``)::

    e(t) = first present item s < t    (condition_on="first", default)
         | last present item s < t     (condition_on="last")
         | none                        (t = 0, or every earlier item padded)
    for each set b and item t (all t at once):
        c_t = h(x_e(t))  or  c_null                 # conv features / trainable null exemplar
        z_t ~ Normal(mu_p(c_t), sigma_p(c_t))        # p(z | c), z_dim units
        x_t ~ Bernoulli(decoder([z_t, c_t]))         # p(x | z, c)

Guide: ``q(z_t | x_t, c_t) = Normal(mu_q([h(x_t), c_t]), sigma_q([h(x_t), c_t]))``, with
``h`` the same conv encoder that embeds the exemplar. The null exemplar makes the 0-shot
model ``p(x) = p(x | c_null)`` a proper unconditional VAE. Training objective (one
vectorized pass over an episode)::

    log p(X) = sum_t log p(x_t | x_e(t))
            >= sum_t E_q(z_t|x_t,c_t)[ log p(x_t | z_t, c_t) + log p(z_t | c_t)
                                       - log q(z_t | x_t, c_t) ]

The guide of item t sees only ``x_t`` and an earlier item, so per-item importance
weights estimate ``log p(x_t | x_<t) = log p(x_t | x_e(t))`` directly
(``autoregressive = True``). Unlike GMN [2] the model reads one exemplar, not a memory
of the whole context: it is the "one-shot" baseline of [1] without attention or
recurrent refinement, and later shots add nothing under ``"first"``.

References:
    [1] Rezende, Mohamed, Danihelka, Gregor & Wierstra, "One-shot generalization in deep
        generative models", ICML 2016.
    [2] Bartunov & Vetrov, "Few-shot generative modelling with generative matching
        networks", AISTATS 2018.
    [3] Sohn, Lee & Yan, "Learning structured output representation using deep
        conditional generative models", NeurIPS 2015.
    [4] Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
"""

from __future__ import annotations

import logging

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ppl_fewshot.models.base import FewShotModel, as_mask, loc_scale
from ppl_fewshot.nn import MLP, ConvDecoder, ConvEncoder

logger = logging.getLogger(__name__)

RULES = ("first", "last")


def exemplar_index(mask: Tensor, rule: str = "first") -> Tensor:
    """The exemplar of every item: ``[B, T]`` long, ``-1`` for the null exemplar.

    ``rule="first"``: the first present item before t; ``"last"``: the latest present
    item before t. Items without an earlier present item get ``-1``.
    """
    if rule not in RULES:
        raise ValueError(f"unknown exemplar rule {rule!r}; use one of {RULES}")
    B, T = mask.shape
    ar = torch.arange(T, device=mask.device).expand(B, T)
    if T == 0:
        return ar.clone()
    none = torch.full_like(ar, -1)
    if rule == "last":
        last = torch.where(mask, ar, none).cummax(1).values  # last present item <= t
        return torch.cat([none[:, :1], last[:, :-1]], 1)
    first = torch.where(mask, ar, torch.full_like(ar, T)).min(1, keepdim=True).values
    return torch.where(first < ar, first.expand(B, T), none)


class OneShotCVAE(FewShotModel):
    """One-shot conditional VAE [1, 3] as a Pyro model/guide pair.

    Args:
        z_dim: latent units per item.
        hidden: conv feature size (also the exemplar embedding) and MLP width.
        channels: channels of the first convolution of encoder and decoder.
        condition_on: exemplar rule, ``"first"`` or ``"last"`` present earlier item.
        event_shape: shape of one item.
    """

    has_set_latent = False
    autoregressive = True

    def __init__(
        self,
        z_dim: int = 32,
        hidden: int = 256,
        channels: int = 32,
        condition_on: str = "first",
        event_shape: tuple[int, ...] = (1, 28, 28),
    ) -> None:
        super().__init__(tuple(event_shape))
        if condition_on not in RULES:
            raise ValueError(f"unknown condition_on {condition_on!r}; use one of {RULES}")
        self.z_dim = z_dim
        self.hidden = hidden
        self.condition_on = condition_on
        c_in = self.event_shape[0]
        self.encoder = ConvEncoder(hidden, channels, in_channels=c_in)
        self.null_exemplar = nn.Parameter(torch.zeros(hidden))
        self.prior_head = MLP(hidden, [hidden], 2 * z_dim)
        self.post_head = MLP(2 * hidden, [hidden], 2 * z_dim)
        self.decoder = ConvDecoder(z_dim + hidden, channels, out_channels=c_in)

    # ------------------------------------------------------------ shared parts
    def encode(self, x: Tensor) -> Tensor:
        """Conv features ``[..., *event] -> [..., hidden]`` (empty inputs allowed)."""
        if x.numel() == 0:
            return x.new_zeros(*x.shape[: x.dim() - len(self.event_shape)], self.hidden)
        return self.encoder(x)

    def conditioning(self, h: Tensor, exemplar: Tensor) -> Tensor:
        """Exemplar embeddings ``[B, Q, hidden]`` from features ``h[B, T, hidden]`` and
        indices ``exemplar[B, Q]`` into the T items (``-1``: the null exemplar)."""
        B = h.shape[0]
        table = torch.cat([self.null_exemplar.expand(B, 1, self.hidden), h], 1)
        idx = (exemplar + 1).unsqueeze(-1).expand(*exemplar.shape, self.hidden)
        return table.gather(1, idx)

    def prepare(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Features of ``x[B, T]`` computed once for model and guide.

        Returns ``h`` (conv features ``[B, T, hidden]``), ``mask`` ``[B, T]``,
        ``exemplar`` (indices ``[B, T]``, -1 = null) and ``c`` (the exemplar embedding of
        every item, ``[B, T, hidden]``).
        """
        mask = as_mask(x, mask)
        h = self.encode(x)
        ex = exemplar_index(mask, self.condition_on)
        return {"h": h, "mask": mask, "exemplar": ex, "c": self.conditioning(h, ex)}

    def prepare_queries(
        self, x: Tensor, mask: Tensor, positions: list[int]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Score only items ``positions``, each with its exemplar from the whole episode."""
        mask = as_mask(x, mask)
        pos = torch.as_tensor(positions, device=x.device, dtype=torch.long)
        xq, mq = x[:, pos], mask[:, pos]
        ex = exemplar_index(mask, self.condition_on)[:, pos]
        # encode only the queries and their exemplars, not the whole episode
        need = torch.unique(torch.cat([pos, ex[ex >= 0]]))
        h_need = self.encode(x[:, need])
        h = h_need.new_zeros(x.shape[0], x.shape[1], self.hidden)
        h[:, need] = h_need
        ctx = {"h": h[:, pos], "mask": mq, "exemplar": ex, "c": self.conditioning(h, ex)}
        return xq, mq, ctx

    def prepare_singletons(
        self, x: Tensor, mask: Tensor, ctx: dict | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Every item alone (its 0-shot term), from the episode's features: every exemplar
        the null one (see :meth:`FewShotModel.prepare_singletons`)."""
        ctx = self.prepare(x, mask) if ctx is None else ctx
        none = torch.full_like(ctx["exemplar"], -1)
        return x, ctx["mask"], {**ctx, "exemplar": none, "c": self.conditioning(ctx["h"], none)}

    def prior_params(self, c: Tensor) -> tuple[Tensor, Tensor]:
        """``p(z | c)``: loc and scale ``[..., z_dim]`` for embeddings ``c[..., hidden]``."""
        return loc_scale(self.prior_head(c))

    def posterior_params(self, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """``q(z | x, c)`` from item features ``h[..., hidden]`` and embeddings ``c``."""
        return loc_scale(self.post_head(torch.cat([h, c], -1)))

    def likelihood_logits(self, z: Tensor, c: Tensor) -> Tensor:
        """Logits ``[..., *event]`` of ``p(x | z, c)``; ``z[..., z_dim]`` may carry extra
        leading (particle) dims over ``c``."""
        c = c.expand(*z.shape[:-1], c.shape[-1])
        return self.decoder(torch.cat([z, c], -1))

    # ------------------------------------------------------------------- sites
    def model(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        if T == 0:  # the empty set: nothing to generate (Pyro plates cannot be empty)
            return
        if ctx is None:
            ctx = self.prepare(x, mask)
        c = ctx["c"]
        with pyro.plate("sets", B, dim=-2), pyro.plate("items", T, dim=-1):
            loc, scale = self.prior_params(c)
            z = pyro.sample("z", dist.Normal(loc, scale).to_event(1).mask(mask))
            px = dist.Bernoulli(logits=self.likelihood_logits(z, c), validate_args=False)
            pyro.sample("x", px.to_event(len(self.event_shape)).mask(mask), obs=x)

    def guide(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        if T == 0:
            return
        if ctx is None:
            ctx = self.prepare(x, mask)
        with pyro.plate("sets", B, dim=-2), pyro.plate("items", T, dim=-1):
            loc, scale = self.posterior_params(ctx["h"], ctx["c"])
            pyro.sample("z", dist.Normal(loc, scale).to_event(1).mask(mask))

    # -------------------------------------------------------------- utilities
    def context_embedding(
        self, context: Tensor, context_mask: Tensor | None, num_queries: int
    ) -> Tensor:
        """The embedding ``[B, num_queries, hidden]`` of the exemplar that the rule picks
        from ``context[B, Tc]`` for a new item after it (null for an empty context; with an
        urn, among the distinct items)."""
        cmask = self.urn_split(context, context_mask)[0]
        B, Tc = cmask.shape
        ex = exemplar_index(torch.cat([cmask, cmask.new_ones(B, 1)], 1), self.condition_on)
        ex = ex[:, Tc:]  # [B, 1]: the exemplar of item Tc
        rows = torch.arange(B, device=context.device)
        h = context.new_zeros(B, 1, self.hidden)
        has = ex[:, 0] >= 0
        if bool(has.any()):
            h[has, 0] = self.encode(context[rows[has], ex[has, 0]])
        c = self.conditioning(h, has.long().unsqueeze(1) - 1)
        return c.expand(B, num_queries, self.hidden)

    def sample(
        self, context: Tensor, num_samples: int, context_mask: Tensor | None = None
    ) -> Tensor:
        """Bernoulli means ``[B, N, *event]`` of ``x' ~ p(x' | x_e)``, ``x_e`` the exemplar
        the rule picks from ``context[B, Tc, *event]`` (``Tc = 0``: the null exemplar)."""
        with torch.no_grad():
            c = self.context_embedding(context, context_mask, num_samples)
            loc, scale = self.prior_params(c)
            z = torch.distributions.Normal(loc, scale).sample()
            return torch.sigmoid(self.likelihood_logits(z, c))

    def features(
        self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None
    ) -> Tensor:
        """Guide features: the mean of ``q(z | x, c)``.

        Without a context, ``x[..., *event] -> [..., z_dim]``, each item encoded against
        the null exemplar. With ``context[B, Tc, *event]``, ``x`` is ``[B, Q, *event]`` and
        ``c`` the exemplar the rule picks from the context: ``[B, Q, z_dim]``.
        """
        h = self.encode(x)
        if context is None:
            c = self.null_exemplar.expand_as(h)
        else:
            c = self.context_embedding(context, context_mask, x.shape[1])
        loc, _ = self.posterior_params(h, c)
        return loc
