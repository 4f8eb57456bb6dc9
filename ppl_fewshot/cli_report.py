"""``ppl-fewshot report``: result JSONs of ``evaluate`` gathered into one markdown page beside
the published numbers (TARGETS.md), with the NLL-by-shots figure; ``ppl-fewshot compare``:
two NLL tables of the same bank paired episode by episode."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_report(sub: argparse._SubParsersAction) -> None:
    """Register ``report``."""
    p = sub.add_parser("report", help="gather evaluation results into one markdown page")
    p.add_argument("--results", nargs="+", required=True, help="folders (or files) of result JSON")
    p.add_argument("--out", default="docs/results.md")
    p.add_argument("--no-plot", action="store_true", help="skip the NLL-vs-shots figure")
    p.set_defaults(func=cmd_report)


def add_compare(sub: argparse._SubParsersAction) -> None:
    """Register ``compare``."""
    p = sub.add_parser("compare", help="pair NLL tables of the same episode bank per episode",
                       description="Mean of NEW - BASE over the episodes of one seeded bank, "
                       "per shot column, with its standard error (evaluate --task nll "
                       "folders; see ppl_fewshot.inference.compare).")
    p.add_argument("base", help="result folder of the reference evaluation")
    p.add_argument("new", nargs="+", help="result folder(s) to compare with it")
    p.add_argument("--out", default=None, help="also write the comparisons as JSON here")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    """Print one paired table per ``new`` folder; write them to ``--out`` (JSON) if given."""
    import json

    from ppl_fewshot.inference.compare import paired_nll
    from ppl_fewshot.utils import atomic_write_text

    pairs = [paired_nll(args.base, new) for new in args.new]
    print("\n\n".join(p.markdown() for p in pairs))
    if args.out:
        atomic_write_text(Path(args.out), json.dumps([p.to_dict() for p in pairs], indent=1))
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
