"""Results pages: our evaluation JSONs beside the published numbers.

:data:`PUBLISHED` transcribes the published rows of TARGETS.md tables 1-3 (the seed talk,
Bartunov & Vetrov [1], and the Neural Statistician paper [2]) as data, each table with its
source and protocol. :func:`collect_results` reads the ``<task>.json`` files written by
``ppl-fewshot evaluate`` and :func:`render_report` lays both out as one markdown page in
the seed talk's layout, with every row of ours labelled ``<model> (ppl_fewshot)`` and
followed by its protocol, estimator, checkpoint hash and training budget.

No plotting here (inference must not import matplotlib): :func:`nll_curves` returns the
tables that :func:`ppl_fewshot.diagnostics.plot_nll_curves` draws.

References:
    [1] Bartunov & Vetrov, "Few-shot generative modelling with generative matching
        networks", AISTATS 2018.
    [2] Edwards & Storkey, "Towards a Neural Statistician", ICLR 2017.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from ppl_fewshot.data import get_protocol

logger = logging.getLogger(__name__)

SHOTS_COLUMNS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 10, 19)
_N = None  # an empty cell of a published table


def _shots(*vals: float | None) -> dict[int, float]:
    return {s: v for s, v in zip(SHOTS_COLUMNS, vals) if v is not None}


#: Published numbers (TARGETS.md): ``{table: {"source", "protocol", "rows": [...]}}``.
PUBLISHED: dict[str, dict[str, Any]] = {
    "omniglot_nll": {
        "source": "seed talk / Bartunov & Vetrov, AISTATS 2018 (TARGETS.md table 1)",
        "protocol": "gmn28, authors' with-replacement sampler, T=20, K=1000 importance samples",
        "rows": [
            ("GMN, C_train=2", 1, _shots(89.7, 83.3, 78.9, 75.7, 72.9, 70.1, 59.9, 45.8)),
            ("GMN, C_train=2", 2, _shots(89.4, 86.4, 84.9, 82.4, 81.0, 78.8, 71.4, 61.2)),
            ("GMN, C_train=2", 3, _shots(89.6, 88.1, 86.0, 85.0, 84.1, 82.0, 76.3, 69.4)),
            ("GMN, C_train=2", 4, _shots(89.3, 88.3, 87.3, 86.7, 85.4, 84.0, 80.2, 73.7)),
            ("GMN, C_train=2, no pseudo-input", 1,
             _shots(_N, 93.5, 82.2, 78.6, 76.8, 75.0, 69.7, 64.3)),
            ("VAE", "", _shots(89.1)),
            ("One-shot VAE", 1, _shots(_N, 83.9)),
            ("Neural statistician, C_train=1", 1,
             _shots(_N, _N, 102, 83.4, 77.8, 75.2, 74.6, 71.7)),
            ("Neural statistician, C_train=2", 2,
             _shots(_N, _N, _N, 86.4, 82.2, 82.3, 80.6, 79.7)),
            ("GMN, C_train=1, no attention", 1,
             _shots(92.4, 84.5, 82.3, 81.4, 81.1, 80.4, 79.8, 79.7)),
            ("GMN, C_train=2, no attention", 2,
             _shots(88.2, 86.6, 86.4, 85.7, 85.3, 84.5, 83.7, 83.4)),
        ],
    },
    "omniglot_classification": {
        "source": "seed talk / Bartunov & Vetrov 2018; NS own paper; Matching networks "
                  "(TARGETS.md table 2)",
        "protocol": "Omniglot test classes; the NS paper's own row uses an ns28-like protocol",
        "rows": [  # (model, method, {(ways, shots): accuracy %})
            ("GMN", "likelihood", {(5, 1): 82.7, (5, 5): 97.4, (20, 1): 64.3, (20, 5): 90.8}),
            ("GMN, no attention", "likelihood",
             {(5, 1): 90.8, (5, 5): 96.7, (20, 1): 77.0, (20, 5): 91.0}),
            ("GMN", "cosine", {(5, 1): 62.7, (5, 5): 80.8, (20, 1): 45.1, (20, 5): 67.2}),
            ("Neural statistician (GMN's run)", "likelihood",
             {(5, 1): 82.0, (5, 5): 94.8, (20, 1): 63.1, (20, 5): 87.6}),
            ("Neural statistician (its own paper, ns28-like)", "min-kl",
             {(5, 1): 98.1, (5, 5): 99.5, (20, 1): 93.2, (20, 5): 98.1}),
            ("Matching networks (discriminative)", "cosine",
             {(5, 1): 98.1, (5, 5): 98.9, (20, 1): 93.8, (20, 5): 98.5}),
        ],
    },
    "mnist_nll": {
        "source": "seed talk / Bartunov & Vetrov 2018 (TARGETS.md table 3)",
        "protocol": "mnist28 test digits, model trained on gmn28, K=1000",
        "rows": [
            ("GMN, C_train=2", 1, _shots(126.7, 121.1, 118.4, 117.6, 117.1, 117.1, 117.1, 118.5)),
            ("GMN, C_train=2, no pseudo-input", 1,
             _shots(_N, 135.1, 120.9, 117.5, 115.7, 114.4, 111.7, 109.8)),
        ],
    },
    "mnist_classification": {
        "source": "Neural Statistician paper (TARGETS.md, below table 2)",
        "protocol": "Omniglot-trained model, MNIST test digits, 10-way",
        "rows": [("Neural statistician (its own paper)", "min-kl", {(10, 1): 78.6, (10, 5): 93.2})],
    },
}

_TASKS = ("nll", "classify", "transfer")


def collect_results(paths: list[str | Path] | tuple[str | Path, ...]) -> list[dict[str, Any]]:
    """Read every evaluation JSON in ``paths`` (folders are searched recursively).

    Each result gets ``"_file"`` (its path). Raises ``FileNotFoundError`` for a missing
    path and ``ValueError`` when no evaluation result is found.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"results path {p} does not exist")
        files += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    results = []
    for f in files:
        try:
            r = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.info("skipping %s: not JSON", f)
            continue
        if isinstance(r, dict) and r.get("task") in _TASKS and "label" in r:
            results.append({**r, "_file": str(f)})
    if not results:
        raise ValueError(f"no evaluation results (nll/classify/transfer JSON) in {list(paths)}")
    return results


def nll_tables(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The NLL table(s) of one result (flat for ``task=nll``, nested for ``transfer``)."""
    if result.get("task") == "nll":
        return [result]
    return [result["nll"]] if isinstance(result.get("nll"), dict) else []


def _cell(v: float | None, se: float | None = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if se is None or math.isnan(se):
        return f"{v:.1f}"
    return f"{v:.1f} ({se:.1f})"


def nll_markdown(rows: list[tuple[str, dict[str, Any]]],
                 shots: tuple[int, ...] | list[int] | None = None,
                 published: list[tuple] | None = None) -> str:
    """A markdown NLL table: ``| model | C_test | sampler | K | episodes | <shots> |``.

    ``rows`` are ``(label, table)`` of ours (``table`` as from ``nll_table`` plus
    ``c_test``/``episode_sampler``/``num_particles``); ``published`` rows are
    ``(model, C_test, {shots: nll})`` from :data:`PUBLISHED`.
    """
    if shots is None:
        shots = sorted({s for _, t in rows for s in t["shots"]} | (
            set(SHOTS_COLUMNS) if published else set()))
    head = ("| model | C_test | sampler | K | episodes | " + " | ".join(str(s) for s in shots)
            + " |")
    lines = [head, "|" + "---|" * (len(shots) + 5)]
    for model, c_test, vals in published or []:
        cells = [_cell(vals.get(s)) for s in shots]
        lines.append(f"| {model} (published) | {c_test} | authors' | 1000 | | "
                     + " | ".join(cells) + " |")
    for label, t in rows:
        by = {s: (v, e) for s, v, e in zip(t["shots"], t["nll"], t["se"])}
        cells = [_cell(*by[s]) if s in by else "" for s in shots]
        k = t.get("num_particles", "")
        if "exact" in str(t.get("estimator", "")):
            k = "exact"
        elif t.get("ais"):
            k = f"{k}, AIS {t['ais']['steps']}"
        else:
            k = _k_label(t)
        lines.append(f"| {label} | {t.get('c_test', '')} | {t.get('episode_sampler', '')} | {k} | "
                     f"{t.get('episodes', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def psis_markdown(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """PSIS k-hat of the NLL estimates (tables that carry a ``"psis"`` record).

    One row per table: per shot, the median k-hat over the checked episodes and, in
    brackets, the share above the threshold (0.7: above it the importance-sampling
    estimate is unreliable and the reported NLL is, in expectation, an upper bound).
    """
    rows = [(label, t) for label, t in rows if t.get("psis")]
    if not rows:
        return ""
    shots = sorted({s for _, t in rows for s in t["shots"]})
    lines = ["PSIS k-hat of the importance weights, median [share > 0.7], on the first "
             "episodes of each table (Vehtari et al. 2024: > 0.7 means unreliable):", "",
             "| model | C_test | sampler | K | episodes | " + " | ".join(map(str, shots)) + " |",
             "|" + "---|" * (len(shots) + 5)]
    for label, t in rows:
        ps = t["psis"]
        by = {s: f"{m:.2f} [{f:.2f}]" for s, m, f in
              zip(t["shots"], ps["median"], ps["share_above_threshold"])}
        lines.append(f"| {label} | {t.get('c_test', '')} | {t.get('episode_sampler', '')} | "
                     f"{_k_label(ps)} | {ps['episodes']} | "
                     + " | ".join(by.get(s, "") for s in shots) + " |")
    return "\n".join(lines)


def _k_label(record: dict[str, Any]) -> str:
    """The K column of a table or PSIS record: ``K``, or ``K x M nested`` for nested
    importance sampling (K draws of the set latent, M of each item's latents)."""
    inner = record.get("inner_particles", 1)
    return f"{record.get('num_particles', '')}" + (f" x {inner} nested" if inner != 1 else "")


def classification_markdown(rows: list[tuple[str, list[dict[str, Any]]]],
                            published: list[tuple] | None = None) -> str:
    """A markdown accuracy table: ``| model | method | N-way K-shot ... |`` (percent).

    ``rows`` are ``(label, records)`` with records from
    :func:`~ppl_fewshot.inference.classify.classify`; ``published`` rows are
    ``(model, method, {(ways, shots): accuracy})``.
    """
    settings = sorted({(r["ways"], r["shots"]) for _, recs in rows for r in recs}
                      | {k for _, _, vals in published or [] for k in vals})
    head = "| model | method | " + " | ".join(f"{w}-way {k}-shot" for w, k in settings) + " |"
    lines = [head, "|" + "---|" * (len(settings) + 2)]
    for model, method, vals in published or []:
        lines.append(f"| {model} (published) | {method} | "
                     + " | ".join(_cell(vals.get(s)) for s in settings) + " |")
    for label, recs in rows:
        for method in dict.fromkeys(r["method"] for r in recs):
            by = {(r["ways"], r["shots"]): r for r in recs if r["method"] == method}
            cells = [f"{by[s]['accuracy']:.1f} [{by[s]['ci95'][0]:.1f}, {by[s]['ci95'][1]:.1f}]"
                     if s in by else "" for s in settings]
            lines.append(f"| {label} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _is_mnist(r: dict[str, Any]) -> bool:
    """Results on a transfer-only protocol (``mnist28``, ``mnist28-t10k``) go to the MNIST
    sections; unknown protocol names (synthetic data in tests) to the Omniglot ones."""
    try:
        return get_protocol(str(r.get("protocol"))).transfer_only
    except KeyError:
        return False


def _on_test(r: dict[str, Any]) -> bool:
    """Scored on the test classes (``evaluate --split test``, every result before --split)."""
    return r.get("split", "test") == "test"


def _row_label(r: dict[str, Any]) -> str:
    """``label [protocol, N steps]``: the training budget travels with every row (a continued
    run's steps counted with those of the runs it started from), and so does a warning when
    the model trained on some of the test classes under another protocol
    (``training_class_overlap``, :func:`~ppl_fewshot.inference.eval_data.
    training_class_overlap`)."""
    b = r.get("training_budget") or {}
    steps = b.get("steps_in_all") or b.get("steps")
    budget = f", {steps} steps" if steps else ""
    if b.get("earlier_runs") and not b.get("steps_in_all"):
        budget += " after earlier runs"
    o = r.get("training_class_overlap") or {}
    if o.get("classes"):
        budget += (f"; TRAINED ON {o['classes']} of the {o['of']} test classes "
                   f"({o['train_protocol']})")
    return f"{r['label']} [{r.get('protocol')}{budget}]"


def budget_text(b: dict[str, Any]) -> str:
    """``N steps / W s / device``, and for a continued run what it adds up to with the runs it
    started from (``checkpoint.training_budget``)."""
    def secs(w: Any) -> str:
        return f"{float(w):.0f} s" if isinstance(w, (int, float)) else "?"

    text = f"{b.get('steps', '?')} steps / {secs(b.get('wall_time_s'))} / {b.get('device') or '?'}"
    runs = b.get("earlier_runs") or []
    if runs:
        total = b.get("steps_in_all")
        text += (f" after {len(runs)} earlier run(s): {total} steps / "
                 f"{secs(b.get('wall_time_s_in_all'))} in all" if total
                 else f" after {len(runs)} earlier run(s) of unknown length")
    return text


def nll_curves(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{label: {"shots", "nll", "se"}}`` of every NLL table, for ``plot_nll_curves``.

    Includes the published GMN (C_train=2, C_test=1) Omniglot row for reference; results on
    training or validation classes (``evaluate --split``) are left out.
    """
    curves: dict[str, dict[str, Any]] = {}
    for r in results:
        if not _on_test(r):
            continue
        for t in nll_tables(r):
            key = (f"{_row_label(r)} C={t.get('c_test')} {t.get('episode_sampler', '')}")
            curves[key] = {"shots": t["shots"], "nll": t["nll"], "se": t["se"]}
    if curves:
        model, c_test, vals = PUBLISHED["omniglot_nll"]["rows"][0]
        curves[f"{model}, C_test={c_test} (published)"] = {
            "shots": list(vals), "nll": list(vals.values()), "se": None}
    return curves


def _provenance(r: dict[str, Any]) -> str:
    b = r.get("training_budget") or {}
    sha = r.get("checkpoint_sha256") or "none"
    ests = sorted({t.get("estimator", "") for t in nll_tables(r)}
                  | {c.get("estimator", "") for c in r.get("classification", [])})
    return (f"- **{r['label']}**, task `{r['task']}`, protocol `{r.get('protocol')}`: "
            f"checkpoint `{r.get('checkpoint')}` (sha256 `{sha[:16]}`), budget "
            f"{budget_text(b)}; estimators: "
            f"{'; '.join(e for e in ests if e)}; file `{r['_file']}`")


def render_report(results: list[dict[str, Any]], plot: str | None = None) -> str:
    """One markdown page: published numbers and ours, table by table, with provenance."""
    other = [r for r in results if not _on_test(r)]
    tested = [r for r in results if _on_test(r)]
    omni = [r for r in tested if not _is_mnist(r)]
    mnist = [r for r in tested if _is_mnist(r)]
    out = ["# Results: ppl_fewshot beside the published numbers", "",
           "Generated by `ppl-fewshot report` from `ppl-fewshot evaluate` outputs. NLL in nats "
           "per 28x28 binary image (lower is better), mean (standard error over episodes); "
           "accuracy in % with a 95% Wilson interval. Rows marked (published) are transcribed "
           "from TARGETS.md with their source; rows marked (ppl_fewshot) are ours, each with "
           "its protocol, estimator and training budget listed at the end. The `sampler` "
           "column is the episode sampler (DESIGN.md section 4): compare published rows "
           "with `with-replacement`.", ""]
    sections = [
        ("1. Conditional NLL on Omniglot", "omniglot_nll", omni, "nll"),
        ("2. Few-shot classification on Omniglot", "omniglot_classification", omni, "cls"),
        ("3. Transfer to MNIST: conditional NLL", "mnist_nll", mnist, "nll"),
        ("4. Transfer to MNIST: 10-way classification", "mnist_classification", mnist, "cls"),
    ]
    for title, key, rs, kind in sections:
        pub = PUBLISHED[key]
        out += [f"## {title}", "", f"Published: {pub['source']}; protocol: {pub['protocol']}.", ""]
        if kind == "nll":
            rows = [(_row_label(r), t) for r in rs for t in nll_tables(r)]
            out.append(nll_markdown(rows, SHOTS_COLUMNS if not rows else None, pub["rows"]))
            if psis_markdown(rows):
                out += ["", psis_markdown(rows)]
        else:
            rows = [(_row_label(r), r["classification"]) for r in rs if r.get("classification")]
            out.append(classification_markdown(rows, pub["rows"]))
        out.append("")
    if other:  # evaluate --split train/val: beside each other, never beside published rows
        out += ["## 5. The same models on training and held-out validation classes", "",
                "Scored with `ppl-fewshot evaluate --split train|val` on the classes each "
                "checkpoint trained on or held out for validation (new characters of the "
                "training alphabets): generalization gaps, not results to compare with the "
                "published tables.", ""]
        rows = [(_row_label(r), t) for r in other for t in nll_tables(r)]
        if rows:
            out += [nll_markdown(rows), ""]
        cls = [(_row_label(r), r["classification"]) for r in other if r.get("classification")]
        if cls:
            out += [classification_markdown(cls), ""]
    if plot:
        out += ["## NLL against the number of shots", "", f"![NLL vs shots]({plot})", ""]
    out += ["## Provenance of our rows", ""] + [_provenance(r) for r in results] + [""]
    return "\n".join(out)


__all__ = [
    "PUBLISHED",
    "classification_markdown",
    "collect_results",
    "nll_curves",
    "nll_markdown",
    "nll_tables",
    "psis_markdown",
    "render_report",
]
