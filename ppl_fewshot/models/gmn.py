"""Generative Matching Networks: an explicitly conditional VAE with matching attention.

Generative story of an episode ``X = (x_1, ..., x_T)`` (every item conditioned on the
items before it, so the joint is ``p(X) = prod_t p(x_t | X_<t)``)::

    memory M_t = {pseudo-input (g*, psi*)} + {(g(x_s), psi(x_s)) : s < t, mask[s]}
    for each set b and item t (all t at once, a causal mask over the memory):
        s_t   = PriorController(learned query, M_t)      # prior_steps reads
        z_t   ~ Normal(mu(s_t), sigma(s_t))              # p(z | X_<t), z_dim units
        u_t   = Controller(f_L(z_t), M_t)                # attention_steps reads
        x_t   ~ Bernoulli(decoder([z_t, u_t]))           # p(x | z, X_<t)
        (image_read: decoder([z_t, u_t], sum_s a_s x_s), a = the last read's weights)

A read attends with ``a_s = softmax_s(beta * sim(query, g(x_s)))`` (cosine similarity or
dot product, learned inverse temperature ``beta``) and returns ``r = sum_s a_s psi(x_s)``;
the GRU controller performs several reads, each driven by its state ("full context
matching" [1]). The guide ``q(z_t | x_t, X_<t)`` runs the *same* controller (shared with
the likelihood, as in [1]) with the query ``f_R(x_t)``. The trainable pseudo-input makes
the memory never empty, so ``p(x | X = {})`` is a proper unconditional model.

Training objective: the ELBO of each conditional, summed over an episode (one vectorized
pass, no loop over t)::

    log p(X) = sum_t log p(x_t | X_<t)
            >= sum_t E_q(z_t|x_t,X_<t)[ log p(x_t | z_t, X_<t) + log p(z_t | X_<t)
                                        - log q(z_t | x_t, X_<t) ]

Because the guide of item t sees only ``x_t`` and ``X_<t``, per-item importance weights
estimate ``log p(x_t | X_<t)`` directly (``autoregressive = True``).

Image read (``image_read=True``, an extension of [1], off by default): the likelihood's
last read also averages the memory's *images* with its attention weights (``psi(x) = x``
for this one read, a trainable pseudo-image for the pseudo-input), and the decoder sees that
prototype image beside its upsampled features, so it can copy an attended drawing pixel for
pixel, as the paper's with-replacement episodes reward (a 20th item repeats one of the first
19 with probability ``1 - (19/20)^19 = 0.62`` when a class has 20 drawings).

Mixture prior (``prior="mixture"``, an extension of [1], off by default): the paper's
``p(z | X_<t)`` is one Normal, broad because it must cover every drawing that may come next
(docs/findings.md section 10). The mixture puts one component on each memory item (and one
on the pseudo-input), weighted by the prior controller's last attention::

    p(z_t | X_<t) = sum_m a_m Normal(z; mu(s_t, v_m), sigma(s_t, v_m))

(``s_t`` the prior controller's state, ``v_m`` item m's prior value): "near one of these
drawings, or something new". The ELBO takes its log-density by Monte Carlo (no closed-form KL).

Ablations: ``pseudo_input=False`` (no pseudo-input), ``attention="average"`` (uniform
weights over the memory: "no attention"/"avg" rows of [1]), ``attention_steps``,
``prior_steps``, ``similarity``. Without a pseudo-input the first item of an episode has
an empty memory; we then read a learned default vector (a fallback that keeps
``log p(X)`` defined), but the 0-shot numbers of such a model are *not comparable* with
[1], whose "no pseudo-input" rows start at one shot; :meth:`sample` refuses an empty
context for it.

References:
    [1] Bartunov & Vetrov, "Few-shot generative modelling with generative matching
        networks", AISTATS 2018 (ICLR 2017 submission: "Fast adaptation in generative
        models with generative matching networks").
    [2] Vinyals et al., "Matching networks for one shot learning", NeurIPS 2016.
    [3] Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
"""

from __future__ import annotations

import logging
import math

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

from ppl_fewshot.models.base import FewShotModel, as_mask, check_temperature, loc_scale
from ppl_fewshot.nn import MLP, image_decoder, image_encoder
from ppl_fewshot.nn.attention import (
    MatchingController,
    MatchingMemory,
    causal_allowed,
    full_allowed,
)

logger = logging.getLogger(__name__)


class GenerativeMatchingNetwork(FewShotModel):
    """Generative Matching Network [1] as a Pyro model/guide pair.

    Args:
        z_dim: latent units per item (paper: 50).
        state_dim: controller state, key and value size (paper: 200).
        channels: channels of the first convolution of encoder and decoder.
        hidden: conv feature size and width of the MLP heads.
        attention_steps: reads of the controller shared by likelihood and guide (paper: 4).
        prior_steps: reads of the prior's controller (paper: 1).
        attention: ``"full"`` or ``"average"`` (no attention, uniform weights).
        similarity: ``"cosine"`` or ``"dot"``.
        pseudo_input: prepend one trainable pseudo-input to every memory.
        image_read: the decoder also sees the attention-weighted average of the memory's
            images (module docstring); an extension, not in [1].
        prior: ``"gaussian"`` (the paper: one Normal from the prior's read) or
            ``"mixture"`` (one Normal per memory item, weighted by the prior's last
            attention; module docstring); the mixture needs the pseudo-input. Kept as
            ``prior_family`` (``prior`` is the prior *distribution* on set-latent models).
        event_shape: shape of one item.
        arch: ``"conv"`` or ``"resnet"``, the paper's residual PReLU encoder and decoder
            (:func:`~ppl_fewshot.nn.image_encoder`); the image read needs ``"conv"``.
    """

    has_set_latent = False
    autoregressive = True

    def __init__(
        self,
        z_dim: int = 50,
        state_dim: int = 200,
        channels: int = 32,
        hidden: int = 256,
        attention_steps: int = 4,
        prior_steps: int = 1,
        attention: str = "full",
        similarity: str = "cosine",
        pseudo_input: bool = True,
        image_read: bool = False,
        prior: str = "gaussian",
        event_shape: tuple[int, ...] = (1, 28, 28),
        arch: str = "conv",
    ) -> None:
        super().__init__(tuple(event_shape))
        if prior not in ("gaussian", "mixture"):
            raise ValueError(f"prior must be 'gaussian' or 'mixture', got {prior!r}")
        if prior == "mixture" and not pseudo_input:
            raise ValueError(
                "the mixture prior needs the pseudo-input: the first item of an episode "
                "has no other memory item to put a component on"
            )
        self.prior_family = prior
        self.z_dim = z_dim
        self.state_dim = state_dim
        self.hidden = hidden
        self.pseudo_input = bool(pseudo_input)
        self.num_pseudo = 1 if pseudo_input else 0
        c_in = self.event_shape[0]
        self.encoder = image_encoder(arch, hidden, channels, c_in)
        # memories of the conditioning items: shared (likelihood + guide) and prior
        self.memory = MatchingMemory(hidden, state_dim, self.num_pseudo)
        self.prior_memory = MatchingMemory(hidden, state_dim, self.num_pseudo)
        self.controller = MatchingController(state_dim, attention_steps, attention, similarity)
        self.prior_controller = MatchingController(
            state_dim, prior_steps, attention, similarity, learned_query=True
        )
        self.query_x = torch.nn.Linear(hidden, state_dim)  # f_R, guide query
        self.query_z = MLP(z_dim, [state_dim], state_dim)  # f_L, likelihood query
        if prior == "gaussian":
            self.prior_head = MLP(state_dim, [hidden], 2 * z_dim)
        else:  # one component per memory item, from [prior state, item's prior value]
            self.mixture_head = MLP(2 * state_dim, [hidden], 2 * z_dim)
        self.post_head = MLP(hidden + state_dim, [hidden], 2 * z_dim)
        self.image_read = bool(image_read)
        self.decoder = image_decoder(
            arch, z_dim + state_dim, channels, c_in, skip_channels=c_in if image_read else 0
        )
        if self.image_read:  # the pseudo-input's image: sigmoid of free logits, near blank
            self.pseudo_image = torch.nn.Parameter(
                torch.full((self.num_pseudo, *self.event_shape), -3.0)
            )

    # ------------------------------------------------------------ shared parts
    def encode(self, x: Tensor) -> Tensor:
        """Conv features ``[..., *event] -> [..., hidden]`` (empty inputs allowed)."""
        if x.numel() == 0:
            return x.new_zeros(*x.shape[: x.dim() - len(self.event_shape)], self.hidden)
        return self.encoder(x)

    def prepare(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Conditioning features of ``x[B, T]``, computed once for model and guide.

        Returns a dict with ``h`` (conv features ``[B, T, hidden]``), ``mask`` ``[B, T]``,
        the shared memory ``keys``/``values`` ``[B, P+T, state_dim]``, the prior memory
        ``prior_keys``/``prior_values``, ``memory_mask`` ``[B, P+T]`` and the causal read
        mask ``allowed`` ``[B, T, P+T]`` (item t reads the pseudo-input and items s < t);
        with ``image_read`` also ``images`` ``[B, P+T, prod(event)]``.
        """
        mask = as_mask(x, mask)
        h = self.encode(x)
        keys, values, mm = self.memory(h, mask)
        pkeys, pvalues, _ = self.prior_memory(h, mask)
        extra = {}
        if self.image_read:
            B, T = x.shape[:2]
            D = math.prod(self.event_shape)
            pseudo = torch.sigmoid(self.pseudo_image).reshape(1, self.num_pseudo, D)
            extra["images"] = torch.cat([pseudo.expand(B, -1, -1).to(x), x.reshape(B, T, D)], 1)
        return {
            **extra,
            "h": h,
            "mask": mask,
            "keys": keys,
            "values": values,
            "prior_keys": pkeys,
            "prior_values": pvalues,
            "memory_mask": mm,
            "allowed": causal_allowed(mask, self.num_pseudo),
        }

    def prepare_queries(
        self, x: Tensor, mask: Tensor, positions: list[int]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Score only items ``positions``: the memory of all of ``x``, the causal reads of
        the asked items (item t still reads exactly the pseudo-input and items s < t)."""
        ctx = self.prepare(x, mask)
        pos = torch.as_tensor(positions, device=x.device)
        sub = {"h": ctx["h"][:, pos], "mask": mask[:, pos], "allowed": ctx["allowed"][:, pos]}
        return x[:, pos], mask[:, pos], {**ctx, **sub}

    def prepare_singletons(
        self, x: Tensor, mask: Tensor, ctx: dict | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Every item alone (its 0-shot term), from the episode's features: the memory cut to
        the pseudo-input (one slot, never read, without one; see
        :meth:`FewShotModel.prepare_singletons`)."""
        ctx = self.prepare(x, mask) if ctx is None else ctx
        M = max(self.num_pseudo, 1)
        slots = ("keys", "values", "prior_keys", "prior_values", "memory_mask", "images")
        cut = {k: ctx[k][:, :M] for k in slots if k in ctx}
        allowed = ctx["allowed"][..., :M].clone()
        allowed[..., self.num_pseudo :] = False
        return x, ctx["mask"], {**ctx, **cut, "allowed": allowed}

    def prior_params(self, ctx: dict[str, Tensor], allowed: Tensor) -> tuple[Tensor, Tensor]:
        """Gaussian ``p(z | memory)``: loc and scale ``[B, Q, z_dim]`` for ``allowed[B, Q, M]``.

        For ``prior="mixture"`` use :meth:`mixture_params` (or :meth:`prior_dist`).
        """
        if self.prior_family != "gaussian":
            raise ValueError("this GMN has a mixture prior: use mixture_params or prior_dist")
        s, _, _ = self.prior_controller(None, ctx["prior_keys"], ctx["prior_values"], allowed)
        return loc_scale(self.prior_head(s))

    def mixture_params(
        self, ctx: dict[str, Tensor], allowed: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture ``p(z | memory)``: log-weights ``[B, Q, M]`` (``-inf`` where a read is not
        allowed), component locs and scales ``[B, Q, M, z_dim]``.

        The weights are the prior controller's last attention over the memory; component
        ``m`` comes from the controller state and item ``m``'s prior value.
        """
        if self.prior_family != "mixture":
            raise ValueError("this GMN has a Gaussian prior: use prior_params or prior_dist")
        s, _, w = self.prior_controller(None, ctx["prior_keys"], ctx["prior_values"], allowed)
        values = ctx["prior_values"].unsqueeze(-3)  # [B, 1, M, D]
        inp = torch.cat(torch.broadcast_tensors(s.unsqueeze(-2), values), -1)
        loc, scale = loc_scale(self.mixture_head(inp))
        # clamp before the log so that masked (zero) weights get no infinite gradient
        log_w = torch.log(w[..., -1, :].clamp_min(1e-30)).masked_fill(~allowed, -math.inf)
        return log_w, loc, scale

    def prior_dist(
        self,
        ctx: dict[str, Tensor],
        allowed: Tensor,
        components: str = "all",
        temperature: float = 1.0,
    ) -> dist.TorchDistribution:
        """``p(z | memory)`` with batch ``[B, Q]`` and event ``[z_dim]``: a diagonal Normal,
        or with ``prior="mixture"`` a mixture of diagonal Normals over the memory items;
        ``components="context"`` leaves out the pseudo-input's component (mixture only);
        ``temperature`` multiplies every scale (1: the model's prior; for sampling only)."""
        if self.prior_family == "gaussian":
            loc, scale = self.prior_params(ctx, allowed)
            return dist.Normal(loc, scale * temperature).to_event(1)
        log_w, loc, scale = self.mixture_params(ctx, allowed)
        if components == "context":
            log_w = log_w.clone()
            log_w[..., : self.num_pseudo] = -math.inf
        return dist.MixtureSameFamily(
            dist.Categorical(logits=log_w), dist.Normal(loc, scale * temperature).to_event(1)
        )

    def posterior_params(
        self, h_query: Tensor, ctx: dict[str, Tensor], allowed: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``q(z | x, memory)`` for query features ``h_query[..., B, Q, hidden]``."""
        s, _, _ = self.controller(self.query_x(h_query), ctx["keys"], ctx["values"], allowed)
        return loc_scale(self.post_head(torch.cat([h_query, s], -1)))

    def likelihood_logits(self, z: Tensor, ctx: dict[str, Tensor], allowed: Tensor) -> Tensor:
        """Logits ``[..., B, Q, *event]`` of ``p(x | z, memory)``, ``z[..., B, Q, z_dim]``."""
        s, _, w = self.controller(self.query_z(z), ctx["keys"], ctx["values"], allowed)
        if not self.image_read:
            return self.decoder(torch.cat([z, s], -1))
        proto = torch.matmul(w[..., -1, :], ctx["images"])  # [..., B, Q, prod(event)]
        proto = proto.reshape(*proto.shape[:-1], *self.event_shape)
        return self.decoder(torch.cat([z, s], -1), proto)

    # ------------------------------------------------------------------- sites
    def model(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        if T == 0:  # the empty set: nothing to generate (Pyro plates cannot be empty)
            return
        if ctx is None:
            ctx = self.prepare(x, mask)
        allowed = ctx["allowed"]
        with pyro.plate("sets", B, dim=-2), pyro.plate("items", T, dim=-1):
            z = pyro.sample("z", self.prior_dist(ctx, allowed).mask(mask))
            logits = self.likelihood_logits(z, ctx, allowed)
            px = dist.Bernoulli(logits=logits, validate_args=False).to_event(len(self.event_shape))
            pyro.sample("x", px.mask(mask), obs=x)

    def guide(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        if T == 0:
            return
        if ctx is None:
            ctx = self.prepare(x, mask)
        allowed = ctx["allowed"]
        with pyro.plate("sets", B, dim=-2), pyro.plate("items", T, dim=-1):
            loc, scale = self.posterior_params(ctx["h"], ctx, allowed)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1).mask(mask))

    # -------------------------------------------------------------- utilities
    def _context(
        self, context: Tensor, context_mask: Tensor | None, num_queries: int
    ) -> tuple[dict[str, Tensor], Tensor]:
        cmask = self.urn_split(context, context_mask)[0]  # with an urn, the distinct ones
        ctx = self.prepare(context, cmask)
        return ctx, full_allowed(ctx["memory_mask"], num_queries)

    def sample(
        self,
        context: Tensor,
        num_samples: int,
        context_mask: Tensor | None = None,
        components: str = "all",
        temperature: float = 1.0,
    ) -> Tensor:
        """Bernoulli means ``[B, N, *event]`` of ``x' ~ p(x' | context)``, each sample on its own.

        ``context[B, Tc, *event]``; ``Tc = 0`` samples ``p(x)`` through the pseudo-input.
        ``components="context"`` (mixture prior) draws ``z`` only from the components on
        the context items, leaving out the pseudo-input's ("a drawing unlike any in
        memory"): new drawings of the context's character rather than of any character.
        ``temperature < 1`` narrows every scale of the prior: samples more faithful to the
        context and less varied (docs/findings.md section 12). ``ValueError`` for an empty
        context without pseudo-input, for ``components="context"`` without a mixture prior
        or context items, and for a temperature that is not positive.
        """
        if components not in ("all", "context"):
            raise ValueError(f"components must be 'all' or 'context', got {components!r}")
        check_temperature(temperature)
        cmask = as_mask(context, context_mask)
        has_items = context.shape[1] > 0 and bool(cmask.any(-1).all())
        if not self.pseudo_input and not has_items:
            raise ValueError(
                "a GMN without pseudo-input has no 0-shot model: every set of the context "
                "needs at least one item (use pseudo_input=True for p(x) with X empty)"
            )
        if components == "context" and (self.prior_family != "mixture" or not has_items):
            raise ValueError(
                "components='context' needs the mixture prior and at least one context item "
                f"in every set (prior={self.prior_family!r})"
            )
        with torch.no_grad():
            ctx, allowed = self._context(context, cmask, num_samples)
            z = self.prior_dist(ctx, allowed, components, temperature).sample()
            return torch.sigmoid(self.likelihood_logits(z, ctx, allowed))

    def features(
        self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None
    ) -> Tensor:
        """Guide features: the mean of ``q(z | x, context)``.

        With ``context[B, Tc, *event]``, ``x`` is ``[B, Q, *event]`` and the result
        ``[B, Q, z_dim]``. Without a context, ``x`` may have any leading dims
        ``[..., *event] -> [..., z_dim]`` and each item is encoded against the empty
        memory (the pseudo-input, or the learned default read without one).
        """
        n_ev = len(self.event_shape)
        if context is None:
            lead = x.shape[: x.dim() - n_ev]
            flat = x.reshape(-1, 1, *self.event_shape)
            out = self.features(flat, flat[:, :0])
            return out.reshape(*lead, self.z_dim)
        ctx, allowed = self._context(context, context_mask, x.shape[1])
        loc, _ = self.posterior_params(self.encode(x), ctx, allowed)
        return loc

    def attention_weights(
        self, query: Tensor, context: Tensor, context_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Attention maps of queries ``[B, Q, *event]`` over ``context[B, Tc, *event]``.

        Returns a dict of ``[B, Q, steps, P + Tc]`` tensors (the first ``P = num_pseudo``
        columns are the pseudo-input): ``"recognition"`` (guide, query ``x``),
        ``"likelihood"`` (decoder, at ``z`` = the guide mean) and ``"prior"``.
        """
        Q = query.shape[1]
        with torch.no_grad():
            ctx, allowed = self._context(context, context_mask, Q)
            hq = self.encode(query)
            qx = self.query_x(hq)
            _, _, rec = self.controller(qx, ctx["keys"], ctx["values"], allowed)
            z, _ = self.posterior_params(hq, ctx, allowed)
            _, _, lik = self.controller(self.query_z(z), ctx["keys"], ctx["values"], allowed)
            _, _, pri = self.prior_controller(None, ctx["prior_keys"], ctx["prior_values"], allowed)
        return {"recognition": rec, "likelihood": lik, "prior": pri}
