"""Objectives, the training loop, checkpoints and evaluation estimators.

May import :mod:`ppl_fewshot.models` and :mod:`ppl_fewshot.data`; no matplotlib, no arviz.
"""

from ppl_fewshot.inference.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    weight_difference,
)
from ppl_fewshot.inference.classify import classify
from ppl_fewshot.inference.compare import (
    Comparison,
    PairedAccuracy,
    PairedNLL,
    compare,
    paired_accuracy,
    paired_nll,
)
from ppl_fewshot.inference.contrast import Contrast, ContrastCell, contrast
from ppl_fewshot.inference.evaluate import (
    SHOTS,
    conditional_nll,
    log_marginal,
    markdown_header,
    markdown_row,
    nll_table,
)
from ppl_fewshot.inference.gradients import (
    GroupSNR,
    gradient_snr,
    objective_gradient_snr,
    parameter_roles,
)
from ppl_fewshot.inference.objectives import ELBOLoss, LatentScale
from ppl_fewshot.inference.proposal import ProposalFit, fit_proposal_scale
from ppl_fewshot.inference.replicates import (
    ReplicateCell,
    ReplicateContrast,
    replicate_contrast,
    student_t_quantile,
)
from ppl_fewshot.inference.report import collect_results, render_report
from ppl_fewshot.inference.tasks import FewShotTasks, make_tasks
from ppl_fewshot.inference.train_config import TrainConfig
from ppl_fewshot.inference.trainer import TrainingDiverged, train

__all__ = [
    "SHOTS",
    "CheckpointError",
    "Comparison",
    "Contrast",
    "ContrastCell",
    "ELBOLoss",
    "FewShotTasks",
    "GroupSNR",
    "LatentScale",
    "PairedAccuracy",
    "PairedNLL",
    "ProposalFit",
    "ReplicateCell",
    "ReplicateContrast",
    "TrainConfig",
    "TrainingDiverged",
    "classify",
    "collect_results",
    "compare",
    "conditional_nll",
    "contrast",
    "fit_proposal_scale",
    "gradient_snr",
    "load_checkpoint",
    "log_marginal",
    "make_tasks",
    "markdown_header",
    "markdown_row",
    "model_from_checkpoint",
    "nll_table",
    "objective_gradient_snr",
    "paired_accuracy",
    "paired_nll",
    "parameter_roles",
    "render_report",
    "replicate_contrast",
    "save_checkpoint",
    "student_t_quantile",
    "train",
    "weight_difference",
]
