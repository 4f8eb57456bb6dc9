"""N-way K-shot few-shot classification with generative models.

A task draws ``ways`` distinct classes, then ``shots + queries_per_class`` distinct
drawings of each: the first ``shots`` are the class's support set ``X_c``, the rest are
queries. A query ``x`` is given the class ``c`` with the highest score ``s(x, c)``:

* ``"likelihood"``: ``s = log p(x | X_c)``, importance-sampled with K samples from the
  guide (:meth:`FewShotModel.log_predictive`; for models with a per-set latent optionally
  nested, ``inner`` draws of each item's latents per draw of the set latent), or exact for
  conjugate models that have ``exact_log_predictive`` when ``exact=True``. With a uniform
  prior over the classes this is the Bayes decision rule of the model.
* ``"cosine"``: ``s = cos(f(x), mean_k f(x_ck))`` with ``f`` the guide features
  (``model.features(x)``, each item encoded on its own, no context).
* ``"min-kl"``: ``s = -KL(q(c | {x}) || q(c | X_c))`` for models with a per-set latent
  ([1], section 5.2); ``"min-kl-reverse"``: ``s = -KL(q(c | X_c) || q(c | {x}))``, the
  other direction (the paper's text does not pin it down, so both are measured).

Models with batch normalization score with its running averages (test sets independent);
``norm_stats="task"`` normalizes each task by its own items instead (transductive), to
measure what an evaluation in training mode would report.

Ties are broken uniformly at random (seeded), so a score that cannot tell the classes
apart (a context-free model under ``"likelihood"``) gives chance accuracy, not the
accuracy of always answering class 0. Accuracy comes with a 95% Wilson interval over
the ``tasks x queries`` decisions (queries of one task share a support set, so the
interval is somewhat optimistic) and the standard error of per-task accuracies.

References:
    [1] Edwards & Storkey, "Towards a Neural Statistician", ICLR 2017.
    [2] Bartunov & Vetrov, "Few-shot generative modelling with generative matching
        networks", AISTATS 2018 (section 5.3, likelihood and cosine classification).
    [3] Wilson, "Probable inference, the law of succession, and statistical
        inference", JASA 1927.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ppl_fewshot.inference.evaluate import describe_estimator
from ppl_fewshot.inference.tasks import FewShotTasks, make_tasks
from ppl_fewshot.models import FewShotModel
from ppl_fewshot.models.annealing import check_inner
from ppl_fewshot.models.posteriors import index_batch, widened_guide
from ppl_fewshot.nn import batch_norm_layers, batch_statistics

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("likelihood", "cosine", "min-kl", "min-kl-reverse")
NORM_STATS: tuple[str, ...] = ("running", "task")  # batch-norm statistics at test time


def _as_event(model: FewShotModel, x: Tensor, lead: int) -> Tensor:
    """Reshape items ``x[*lead, ...]`` to the model's event shape (e.g. 1x1xD -> D)."""
    ev = tuple(model.event_shape)
    if tuple(x.shape[lead:]) == ev:
        return x
    if math.prod(x.shape[lead:]) != math.prod(ev):
        raise ValueError(f"items of shape {tuple(x.shape[lead:])} do not fit model "
                         f"{model.name!r} with event shape {ev}")
    return x.reshape(*x.shape[:lead], *ev)


def applicable_methods(model: FewShotModel) -> list[str]:
    """The scoring methods ``model`` supports, in the order of :data:`METHODS`."""
    out = ["likelihood"]
    if hasattr(model, "features"):
        out.append("cosine")
    if model.has_set_latent:
        out += ["min-kl", "min-kl-reverse"]
    return out


def check_method(model: FewShotModel, method: str) -> None:
    """Raise ``ValueError`` for an unknown method or one ``model`` cannot do."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    if method not in applicable_methods(model):
        need = "guide features (model.features)" if method == "cosine" else "a per-set latent"
        raise ValueError(f"method {method!r} needs {need}; model {model.name!r} supports "
                         f"{', '.join(applicable_methods(model))}")


def _device(model: FewShotModel) -> torch.device:
    return next(model.parameters(), torch.zeros(())).device


def likelihood_scores(
    model: FewShotModel,
    tasks: FewShotTasks,
    num_particles: int = 50,
    exact: bool = False,
    max_items: int = 1 << 13,
    progress: bool = False,
    inner: int = 1,
) -> Tensor:
    """``log p(x_q | X_c)`` for every task, query and class: ``[N_tasks, Q, ways]``.

    Context-free models (no per-set latent, not autoregressive: the VAE) have
    ``log p(x | X_c) = log p(x)``; each query is scored once and the score repeated.
    Models with a per-set latent use ``log p(X_c u {x}) - log p(X_c)`` (both
    importance-sampled, as :meth:`~FewShotModel.log_predictive` does) with ``log p(X_c)``
    estimated once per class rather than once per query.

    All (query, class) pairs of all tasks are flattened and scored ``P`` at a time by one
    :meth:`~FewShotModel.log_predictive` call, with ``P * min(K, 100) * (shots + 1) <=
    max_items`` (the importance samples that one call holds in memory; ``inner`` times
    fewer pairs with ``inner`` nested draws, see :meth:`~FewShotModel.log_marginal`).
    """
    check_inner(model, inner)
    N, W, S = tasks.num_tasks, tasks.ways, tasks.shots
    Q = tasks.query.shape[1]
    dev = _device(model)
    model.eval()
    if exact:
        if not hasattr(model, "exact_log_predictive"):
            raise ValueError(f"model {model.name!r} has no exact_log_predictive")
        rows, step = [], max(1, max_items // (W * Q))  # tasks per call
        for i in range(0, N, step):
            sup, qry = tasks.support[i : i + step], _as_event(model, tasks.query[i : i + step], 2)
            n = sup.shape[0]
            ctx = _as_event(model, sup.reshape(n * W, S, *sup.shape[3:]), 2)
            qry = qry.unsqueeze(1).expand(n, W, *qry.shape[1:]).reshape(n * W, Q, *qry.shape[2:])
            with torch.no_grad():
                rows.append(model.exact_log_predictive(qry.to(dev), ctx.to(dev)).cpu())
        return torch.cat(rows, 0).reshape(N, W, Q).transpose(1, 2)
    if not model.has_set_latent and not model.autoregressive:
        # context-free (VAE): log p(x | X_c) = log p(x) for every class, scored once per query
        qry = _as_event(model, tasks.query.reshape(N * Q, 1, *tasks.query.shape[2:]), 2)
        per_call = max(1, max_items // min(num_particles, 100))
        with torch.no_grad():
            lp = torch.cat([model.log_marginal(qry[i : i + per_call].to(dev), None,
                                               num_particles).cpu()
                            for i in range(0, N * Q, per_call)], 0)
        return lp.reshape(N, Q, 1).expand(N, Q, W).clone()
    total = N * W * Q
    per_call = max(1, max_items // (min(num_particles, 100) * inner * (S + 1)))
    base = None
    if model.has_set_latent:
        # log p(x | X_c) = log p(X_c u {x}) - log p(X_c): the second term once per class
        sup = _as_event(model, tasks.support.reshape(N * W, S, *tasks.support.shape[3:]), 2)
        with torch.no_grad():
            base = torch.cat([model.log_marginal(sup[i : i + per_call].to(dev), None,
                                                 num_particles, inner=inner).cpu()
                              for i in range(0, N * W, per_call)], 0)
    out = torch.empty(total)
    for start in tqdm(range(0, total, per_call), disable=not progress, desc="likelihood"):
        p = torch.arange(start, min(start + per_call, total))
        t, c, q = p // (W * Q), (p // Q) % W, p % Q  # pair p = (task, class, query)
        ctx = _as_event(model, tasks.support[t, c], 2).to(dev)  # [P, S, *event]
        qry = _as_event(model, tasks.query[t, q].unsqueeze(1), 2).to(dev)  # [P, 1, *event]
        with torch.no_grad():
            if base is None:
                lp = model.log_predictive(qry, ctx, num_particles)[:, 0]
            else:
                lp = model.log_marginal(torch.cat([ctx, qry], 1), None, num_particles,
                                        inner=inner)
            out[start : start + len(p)] = lp.cpu()
    if base is not None:
        out = out - base.reshape(N, W, 1).expand(N, W, Q).reshape(-1)
    return out.reshape(N, W, Q).transpose(1, 2)


def _features(model: FewShotModel, x: Tensor, lead: int, batch: int = 4096) -> Tensor:
    flat = _as_event(model, x, lead).reshape(-1, *model.event_shape)
    dev = _device(model)
    with torch.no_grad():
        f = torch.cat([model.features(flat[i : i + batch].to(dev)).cpu()
                       for i in range(0, flat.shape[0], batch)], 0)
    return f.reshape(*x.shape[:lead], -1)


def cosine_scores(model: FewShotModel, tasks: FewShotTasks) -> Tensor:
    """Cosine similarity of query features and mean support features: ``[N, Q, ways]``."""
    model.eval()
    fq = _features(model, tasks.query, 2)  # [N, Q, F]
    fs = _features(model, tasks.support, 3).mean(2)  # [N, ways, F]
    fq = torch.nn.functional.normalize(fq, dim=-1)
    fs = torch.nn.functional.normalize(fs, dim=-1)
    return torch.einsum("nqf,nwf->nqw", fq, fs)


def min_kl_scores(
    model: FewShotModel, tasks: FewShotTasks, max_pairs: int = 4096, reverse: bool = False
) -> Tensor:
    """``-KL(q(c | {x_q}) || q(c | X_c))`` for every task, query and class: ``[N, Q, ways]``
    (``reverse=True``: ``-KL(q(c | X_c) || q(c | {x_q}))``).

    Pairs are formed by repeating inputs, so this works for any ``context_posterior``
    whose family has a registered KL (Normal, Beta, Dirichlet, ...).
    """
    N, W, S = tasks.num_tasks, tasks.ways, tasks.shots
    Q = tasks.query.shape[1]
    dev = _device(model)
    model.eval()
    rows = []
    batch = max(1, max_pairs // (Q * W))  # tasks per step
    with torch.no_grad():
        for i in range(0, N, batch):
            sup = _as_event(model, tasks.support[i : i + batch], 3).to(dev)
            qry = _as_event(model, tasks.query[i : i + batch], 2).to(dev)
            n = sup.shape[0]
            qx = model.context_posterior(qry.reshape(n * Q, 1, *model.event_shape))
            qs = model.context_posterior(sup.reshape(n * W, S, *model.event_shape))
            ix = torch.arange(n * Q, device=dev).reshape(n, Q, 1).expand(n, Q, W).reshape(-1)
            tt = torch.arange(n, device=dev).reshape(n, 1, 1).expand(n, Q, W)
            iw = (tt * W + torch.arange(W, device=dev)).reshape(-1)
            pair = (index_batch(qx, lambda p, i=ix: p[i]), index_batch(qs, lambda p, i=iw: p[i]))
            kl = torch.distributions.kl_divergence(*(pair[::-1] if reverse else pair))
            rows.append(-kl.reshape(n, Q, W).cpu())
    return torch.cat(rows, 0)


def predict(scores: Tensor, seed: int = 0) -> Tensor:
    """``argmax`` over the last dim with ties broken uniformly at random (seeded)."""
    g = torch.Generator().manual_seed(int(seed))
    top = scores == scores.max(-1, keepdim=True).values
    jitter = torch.rand(scores.shape, generator=g)
    return torch.where(top, jitter, torch.full_like(jitter, -1.0)).argmax(-1)


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (as fractions)."""
    if trials <= 0:
        return (math.nan, math.nan)
    p = successes / trials
    den = 1 + z * z / trials
    mid = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def accuracy(pred: Tensor, labels: Tensor) -> dict[str, Any]:
    """Accuracy (%) with a 95% Wilson interval and the per-task standard error.

    ``pred`` and ``labels`` are ``[tasks, queries]``; ``correct_per_task`` keeps each task's
    count of right decisions, so that two evaluations of the same tasks can be paired
    (:func:`ppl_fewshot.inference.compare.paired_accuracy`).
    """
    hit = (pred == labels).float()
    k, n = int(hit.sum()), hit.numel()
    lo, hi = wilson_interval(k, n)
    per_task = hit.mean(-1)
    se = float(per_task.std(unbiased=True)) / math.sqrt(per_task.numel()) \
        if per_task.numel() > 1 else math.nan
    return {"accuracy": round(100 * k / n, 3), "ci95": [round(100 * lo, 3), round(100 * hi, 3)],
            "se_tasks": round(100 * se, 3), "correct": k, "decisions": n,
            "correct_per_task": hit.sum(-1).int().tolist() if hit.dim() > 1 else [k]}


def _one_task(tasks: FewShotTasks, i: int) -> FewShotTasks:
    return FewShotTasks(tasks.support[i : i + 1], tasks.query[i : i + 1],
                        tasks.labels[i : i + 1], tasks.classes[i : i + 1])


def _scores(model: FewShotModel, tasks: FewShotTasks, method: str, num_particles: int,
            exact: bool, progress: bool, inner: int = 1,
            proposal_scale: float = 1.0) -> tuple[str, Tensor]:
    """The estimator's description and the ``[N, Q, ways]`` scores of ``method``."""
    if method == "likelihood":
        if exact:
            return "exact log p(x|X_c)", likelihood_scores(model, tasks, exact=True,
                                                          progress=progress)
        with widened_guide(model, proposal_scale):
            scores = likelihood_scores(model, tasks, num_particles, progress=progress, inner=inner)
        return describe_estimator(num_particles, inner, proposal_scale=proposal_scale), scores
    if method == "cosine":
        return "cosine of guide features, support mean", cosine_scores(model, tasks)
    reverse = method == "min-kl-reverse"
    est = ("KL(q(c|X_c) || q(c|{x}))" if reverse else "KL(q(c|{x}) || q(c|X_c))") + ", closed form"
    return est, min_kl_scores(model, tasks, reverse=reverse)


def classify(
    model: FewShotModel,
    tasks: FewShotTasks,
    method: str = "likelihood",
    num_particles: int = 50,
    exact: bool = False,
    seed: int = 0,
    progress: bool = False,
    norm_stats: str = "running",
    inner: int = 1,
    proposal_scale: float = 1.0,
) -> dict[str, Any]:
    """Classify every query of ``tasks`` with ``method`` and return the accuracy record.

    Args:
        proposal_scale: ``"likelihood"`` by importance sampling: draw from the guide with its
            Normal scales times this (:func:`~ppl_fewshot.models.posteriors.widened_guide`).
        inner: ``"likelihood"`` with a model with a per-set latent: nested importance
            sampling, ``inner`` draws of every item's latents per draw of the set latent
            (:func:`~ppl_fewshot.models.annealing.nested_log_weights`); 1 = plain.
        norm_stats: batch-norm models only: ``"running"`` (default) uses the running
            averages of training; ``"task"`` scores the tasks one at a time with batch
            statistics (:func:`ppl_fewshot.nn.batch_statistics`): a task's support sets are
            normalized together, and so are its queries. Transductive (one query's answer
            depends on the other items of its task), as a batch-norm network evaluated in
            training mode is; measured to tell how much an accuracy owes to it.

    Returns ``{"method", "ways", "shots", "tasks", "queries_per_task", "estimator",
    "norm_stats", "accuracy", "ci95", "se_tasks", "correct", "decisions",
    "correct_per_task"}`` (percentages; the last a list, one count per task).

    Raises:
        ValueError: unknown ``method`` or ``norm_stats``, a method the model cannot do,
            ``norm_stats="task"`` for a model without batch normalization, or ``inner > 1``
            for a model without a per-set latent.
    """
    check_method(model, method)
    check_inner(model, inner)
    if norm_stats not in NORM_STATS:
        raise ValueError(f"unknown norm_stats {norm_stats!r}; use one of {NORM_STATS}")
    if norm_stats == "running":
        est, scores = _scores(model, tasks, method, num_particles, exact, progress, inner,
                              proposal_scale)
    else:
        if not batch_norm_layers(model):
            raise ValueError(f"norm_stats='task' needs batch normalization; model {model.name!r} "
                             "has none (train it with norm=batch)")
        model.eval()
        with batch_statistics(model):
            parts = [_scores(model, _one_task(tasks, i), method, num_particles, exact, False,
                             inner, proposal_scale)
                     for i in tqdm(range(tasks.num_tasks), disable=not progress, desc=method)]
        est = parts[0][0] + "; batch norm with each task's statistics (transductive)"
        scores = torch.cat([p[1] for p in parts], 0)
    return {"method": method, "ways": tasks.ways, "shots": tasks.shots, "tasks": tasks.num_tasks,
            "queries_per_task": int(tasks.query.shape[1]), "estimator": est,
            "norm_stats": norm_stats, **accuracy(predict(scores, seed), tasks.labels)}


__all__ = [
    "METHODS",
    "NORM_STATS",
    "FewShotTasks",
    "accuracy",
    "applicable_methods",
    "check_method",
    "classify",
    "cosine_scores",
    "likelihood_scores",
    "make_tasks",
    "min_kl_scores",
    "predict",
    "wilson_interval",
]
