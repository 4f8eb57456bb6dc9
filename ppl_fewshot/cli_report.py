"""``ppl-fewshot report``: result JSONs of ``evaluate`` gathered into one markdown page beside
the published numbers (TARGETS.md), with the NLL-by-shots figure; ``ppl-fewshot compare``:
two evaluations of the same seeded episodes or tasks, paired."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_report(sub: argparse._SubParsersAction) -> None:
    """Register ``report``."""
    p = sub.add_parser("report", help="gather evaluation results into one markdown page")
    p.add_argument("--results", nargs="+", required=True, help="folders (or files) of result JSON")
    p.add_argument("--out", default="docs/results.md")
    p.add_argument("--no-plot", action="store_true", help="skip the NLL-vs-shots figure")
    p.set_defaults(func=cmd_report)


def add_compare(sub: argparse._SubParsersAction) -> None:
    """Register ``compare``."""
    p = sub.add_parser("compare", help="pair two evaluations of the same episodes or tasks",
                       description="Mean of NEW - BASE over the episodes of one seeded bank, "
                       "per shot column, and over the seeded tasks of each classification "
                       "setting, with its standard error (folders of ppl-fewshot evaluate; "
                       "see ppl_fewshot.inference.compare).")
    p.add_argument("base", help="result folder of the reference evaluation")
    p.add_argument("new", nargs="+", help="result folder(s) to compare with it")
    p.add_argument("--out", default=None, help="also write the comparisons as JSON here")
    p.add_argument("--weights", default=None, metavar="W1,W2,...",
                   help="print one contrast of all the folders (BASE first) instead, with these "
                   "weights, e.g. --weights=1,-1,-1,1 for the interaction of a two-by-two "
                   "design (write it with '=' when the first weight is negative)")
    p.add_argument("--runs", default=None, metavar="N[,N...]",
                   help="with --weights: the folders are training runs (seeds) of recipes, N "
                   "consecutive folders per recipe (or one count per recipe), and the weights "
                   "are per recipe; the spread between runs joins the error bar "
                   "(ppl_fewshot.inference.replicates)")
    p.set_defaults(func=cmd_compare)


def _run_groups(folders: list[str], runs: str, recipes: int) -> list[list[str]]:
    """Split ``folders`` into ``recipes`` groups of consecutive runs, per ``--runs``."""
    from ppl_fewshot.inference.replicates import split_runs

    try:
        sizes = [int(n) for n in runs.split(",")]
    except ValueError:
        raise ValueError(f"--runs wants a count or counts separated by commas, got "
                         f"{runs!r}") from None
    if len(sizes) == 1:
        sizes = sizes * recipes
    if len(sizes) != recipes or sum(sizes) != len(folders) or min(sizes) < 1:
        raise ValueError(f"--runs {runs} does not split {len(folders)} folders into "
                         f"{recipes} recipes (one weight each)")
    return split_runs(folders, sizes)


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the paired tables of each ``new`` folder, or with ``--weights`` one contrast of
    all the folders (with ``--runs``, of recipes run several times); write the same to
    ``--out`` (JSON) if given."""
    import json

    from ppl_fewshot.inference.compare import compare
    from ppl_fewshot.inference.contrast import contrast
    from ppl_fewshot.inference.replicates import replicate_contrast
    from ppl_fewshot.utils import atomic_write_text

    if args.runs is not None and args.weights is None:
        raise ValueError("--runs needs --weights (one weight per recipe)")
    if args.weights is not None:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            raise ValueError(f"--weights wants numbers separated by commas, got "
                             f"{args.weights!r}") from None
        folders = [args.base, *args.new]
        if args.runs is not None:
            result: Any = replicate_contrast(_run_groups(folders, args.runs, len(weights)),
                                             weights)
        else:
            result = contrast(folders, weights)
        print(result.markdown())
        saved: object = result.to_dict()
    else:
        pairs = [compare(args.base, new) for new in args.new]
        print("\n\n".join(c.markdown() for c in pairs))
        saved = [c.to_dict() for c in pairs]
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(saved, indent=1))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write ``--out`` (markdown) and, unless ``--no-plot``, the figure beside it (``.png``)."""
    from ppl_fewshot.inference.report import collect_results, nll_curves, render_report
    from ppl_fewshot.utils import atomic_write_text

    results = collect_results(args.results)
    out = Path(args.out)
    plot = None
    curves = nll_curves(results)
    if curves and not args.no_plot:
        from ppl_fewshot.diagnostics import plot_nll_curves, save_figure

        fig, _ = plot_nll_curves(curves)
        plot = save_figure(fig, out.with_suffix(".png"))
    text = render_report(results, plot=plot.name if plot else None)
    atomic_write_text(out, text)
    print(out)
    return 0
