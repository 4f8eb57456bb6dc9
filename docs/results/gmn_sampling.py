"""Why GMN samples look generic: the data-dependent prior p(z | X) against the guide.

For 100 seeded gmn28 test episodes (5 context drawings of one character, 1 held-out
drawing of it as the query; the ``distinct`` bank of ``ppl-fewshot figures``), for each
checkpoint given on the command line:

- loc norm and mean scale of the prior ``p(z | X)`` at 5 shots and at 0 shots, and of the
  guide ``q(z | x, X)`` for the query; ``KL(q || p)`` of the query;
- the attention mass that the likelihood's last read puts on the pseudo-input, with ``z``
  at the guide mean (what the NLL uses) and with ``z ~ p(z | X)`` (what ``sample`` uses);
- sample grids with the prior's spread scaled by ``tau`` (0, 0.5, 1; ``tau = 1`` is
  ``p(x | X)``, the others are diagnostics, not samples of the model).

For a mixture prior (``prior="mixture"``) the KL is estimated by Monte Carlo, the prior is
described by its weight on the pseudo-input's component and its components' mean scale,
and there are no tau grids.

Usage: PPL_FEWSHOT_DATA=../shared/data python docs/results/gmn_sampling.py OUT CKPT...
(writes OUT/sampling.json and OUT/tau*-<model>.png; ~20 s per checkpoint on one thread.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.distributions import Normal, kl_divergence

from ppl_fewshot.diagnostics import plot_sample_grid, save_figure
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.eval_data import test_bank
from ppl_fewshot.models import label as model_label
from ppl_fewshot.nn.attention import full_allowed


def pseudo_input_read(model, ctx, allowed, **zs) -> dict:
    """Attention mass of the likelihood's last read on the pseudo-input, for each named z."""
    read = {}
    for name, z in zs.items():
        _, _, w = model.controller(model.query_z(z), ctx["keys"], ctx["values"], allowed)
        read[name] = round(float(w[..., -1, 0].mean()), 4)
    return read


def probe(ckpt: str, out: Path) -> dict:
    model, state = model_from_checkpoint(ckpt)
    model.eval()
    bank, _ = test_bank("gmn28", 1, 6, 100, "distinct", 0, None)
    context, query = bank.x[:, :5], bank.x[:, 5:6]
    stem = Path(ckpt).stem
    if getattr(model, "prior_family", "gaussian") == "mixture":
        return probe_mixture(model, state, ckpt, context, query)
    with torch.no_grad():
        ctx = model.prepare(context)
        allowed = full_allowed(ctx["memory_mask"], 1)
        hq = model.encode(query)
        q_loc, q_scale = model.posterior_params(hq, ctx, allowed)
        p_loc, p_scale = model.prior_params(ctx, allowed)
        ctx0 = model.prepare(context[:, :0])
        p0_loc, p0_scale = model.prior_params(ctx0, full_allowed(ctx0["memory_mask"], 1))
        kl = kl_divergence(Normal(q_loc, q_scale), Normal(p_loc, p_scale)).sum(-1)
        torch.manual_seed(0)
        z_prior = Normal(p_loc, p_scale).sample((10,))
        read = pseudo_input_read(model, ctx, allowed, z_guide_mean=q_loc, z_from_prior=z_prior)
        rows = slice(0, 6)
        ctx_r = model.prepare(context[rows])
        allowed_r = full_allowed(ctx_r["memory_mask"], 10)
        loc_r, scale_r = model.prior_params(ctx_r, allowed_r)
        files = []
        for tau in (0.0, 0.5, 1.0):
            torch.manual_seed(0)
            z = loc_r + tau * scale_r * torch.randn_like(scale_r)
            x = torch.sigmoid(model.likelihood_logits(z, ctx_r, allowed_r))
            fig, _ = plot_sample_grid(context[rows], x, title=f"{model_label(model)}: 5 shots -> "
                                      f"decoder at z = prior mean + {tau} x prior spread")
            files.append(str(save_figure(fig, out / f"tau{tau}-{stem}.png")))
    return {
        "checkpoint": ckpt, "model": model_label(model), "step": state["step"],
        "episodes": int(context.shape[0]),
        "prior_5shot": {"loc_norm": round(float(p_loc.norm(dim=-1).mean()), 3),
                        "scale_mean": round(float(p_scale.mean()), 3)},
        "prior_0shot": {"loc_norm": round(float(p0_loc.norm(dim=-1).mean()), 3),
                        "scale_mean": round(float(p0_scale.mean()), 3)},
        "guide_query": {"loc_norm": round(float(q_loc.norm(dim=-1).mean()), 3),
                        "scale_mean": round(float(q_scale.mean()), 3)},
        "kl_guide_prior_nats": round(float(kl.mean()), 2),
        "likelihood_last_read_pseudo_input_mass": read,
        "figures": files,
    }


def probe_mixture(model, state, ckpt: str, context, query) -> dict:
    """The same probe for ``prior="mixture"``: the KL by Monte Carlo (100 draws of the guide),
    the prior's weight on the pseudo-input's component, the components' mean scale."""
    with torch.no_grad():
        ctx = model.prepare(context)
        allowed = full_allowed(ctx["memory_mask"], 1)
        hq = model.encode(query)
        q_loc, q_scale = model.posterior_params(hq, ctx, allowed)
        log_w, c_loc, c_scale = model.mixture_params(ctx, allowed)
        prior = model.prior_dist(ctx, allowed)
        torch.manual_seed(0)
        zq = Normal(q_loc, q_scale).sample((100,))
        kl = (Normal(q_loc, q_scale).log_prob(zq).sum(-1) - prior.log_prob(zq)).mean(0)
        z_prior = prior.sample((10,))
        read = pseudo_input_read(model, ctx, allowed, z_guide_mean=q_loc, z_from_prior=z_prior)
    return {
        "checkpoint": ckpt, "model": model_label(model), "step": state["step"],
        "episodes": int(context.shape[0]),
        "prior_5shot": {"pseudo_input_weight": round(float(log_w[..., 0].exp().mean()), 4),
                        "component_loc_norm": round(float(c_loc.norm(dim=-1).mean()), 3),
                        "component_scale_mean": round(float(c_scale.mean()), 3)},
        "guide_query": {"loc_norm": round(float(q_loc.norm(dim=-1).mean()), 3),
                        "scale_mean": round(float(q_scale.mean()), 3)},
        "kl_guide_prior_nats": round(float(kl.mean()), 2),
        "likelihood_last_read_pseudo_input_mass": read,
    }


def main() -> None:
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    results = [probe(ck, out) for ck in sys.argv[2:]]
    (out / "sampling.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
