"""Diagnostics and figures: calibration (SBC, coverage), PSIS, ArviZ adapter and plots.

* :mod:`~ppl_fewshot.diagnostics.psis` -- PSIS k-hat and effective sample size of the
  importance sampler behind every reported NLL (:func:`importance_diagnostics`);
* :mod:`~ppl_fewshot.diagnostics.calibration` -- simulation-based calibration ranks and
  credible-interval coverage of an amortized guide q(c|X) (:func:`sbc_ranks`,
  :func:`interval_coverage`) and of a new item's q(z|x,X) given a real context
  (:func:`query_sbc_ranks`, :func:`query_interval_coverage`);
* :mod:`~ppl_fewshot.diagnostics.arviz_adapter` -- draws of q(c|X) and of a new item's
  q(z|x,X) as ``arviz.InferenceData`` (:func:`context_posterior_to_inference_data`,
  :func:`query_posterior_to_inference_data`);
* :mod:`~ppl_fewshot.diagnostics.elbo_terms` -- the ELBO of each set by sample site: the
  nats the guide puts into each latent (:func:`elbo_terms`);
* :mod:`~ppl_fewshot.diagnostics.exchangeability` -- the spread of ``log p(X)`` over item
  orders of a sequentially factorized model (:func:`exchangeability_spread`);
* :mod:`~ppl_fewshot.diagnostics.fidelity` -- whether samples draw the context's class,
  by a judge model (:func:`sample_fidelity`), and how close they are to copies
  (:func:`copy_distance`) or to each other (:func:`sample_diversity`);
* :mod:`~ppl_fewshot.diagnostics.plots` -- loss curves, sample grids, NLL curves.

Matplotlib and ArviZ are imported lazily, inside the functions that need them.
"""

from ppl_fewshot.diagnostics.arviz_adapter import (
    context_posterior_draws,
    context_posterior_to_inference_data,
    query_posterior_to_inference_data,
)
from ppl_fewshot.diagnostics.calibration import (
    interval_coverage,
    query_interval_coverage,
    query_sbc_ranks,
    rank_uniformity_pvalues,
    sbc_ranks,
    simulate_and_draw,
    simulate_queries_and_draw,
)
from ppl_fewshot.diagnostics.elbo_terms import elbo_terms
from ppl_fewshot.diagnostics.exchangeability import exchangeability_spread
from ppl_fewshot.diagnostics.fidelity import (
    copy_distance,
    judge_classes,
    sample_diversity,
    sample_fidelity,
)
from ppl_fewshot.diagnostics.plots import (
    image_grid,
    plot_attention,
    plot_loss_curve,
    plot_nll_curves,
    plot_sample_grid,
    read_metrics,
    save_figure,
)
from ppl_fewshot.diagnostics.psis import (
    conditional_importance_diagnostics,
    effective_sample_size,
    importance_diagnostics,
    importance_log_weights,
    khat_threshold,
    pareto_khat,
    summarize_khat,
)

__all__ = [
    "conditional_importance_diagnostics",
    "context_posterior_draws",
    "context_posterior_to_inference_data",
    "copy_distance",
    "effective_sample_size",
    "elbo_terms",
    "exchangeability_spread",
    "image_grid",
    "importance_diagnostics",
    "importance_log_weights",
    "interval_coverage",
    "judge_classes",
    "khat_threshold",
    "pareto_khat",
    "query_interval_coverage",
    "query_posterior_to_inference_data",
    "query_sbc_ranks",
    "plot_attention",
    "plot_loss_curve",
    "plot_nll_curves",
    "plot_sample_grid",
    "rank_uniformity_pvalues",
    "read_metrics",
    "sample_diversity",
    "sample_fidelity",
    "summarize_khat",
    "save_figure",
    "sbc_ranks",
    "simulate_and_draw",
    "simulate_queries_and_draw",
]
