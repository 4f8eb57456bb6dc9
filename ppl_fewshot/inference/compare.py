"""Paired comparison of two evaluations of the same seeded episodes (NLL) or tasks (accuracy).

Two models (or two estimators of one model) scored on the same episodes differ far less from
episode to episode than the episodes differ in difficulty: the standard error of a table's
column is dominated by which characters the bank drew, and cancels from the difference. So the
comparison to quote is the mean over episodes of ``new - base`` with the standard error of
*that* mean, not the difference of the two tables' means with their own standard errors.

``ppl-fewshot evaluate --task nll`` writes one row per episode (``nll_episodes.csv``) beside
``nll.json``; :func:`paired_nll` reads two such folders, checks that they scored the same bank
(protocol, split, C_test, set size, sampler, episode count and seed, all in the bank's name)
and returns the paired difference per shot column. Classification likewise: ``evaluate``
keeps each task's number of queries decided right, and :func:`paired_accuracy` pairs two
evaluations of the same seeded tasks setting by setting. :func:`compare` does whichever
applies; ``ppl-fewshot compare BASE NEW`` prints it. The NLL functions also take
``nll_table`` results in memory, and :mod:`ppl_fewshot.inference.contrast` extends the pair
to any weighted sum of evaluations of one bank.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The ``nll.json`` fields that define the bank of an evaluation, for results that predate
#: the ``bank`` field (its file name encodes all of them).
BANK_FIELDS: tuple[str, ...] = ("protocol", "c_test", "set_size", "episode_sampler", "episodes",
                                "seed")


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean of ``values`` and the standard error of that mean (n - 1 in the variance).

    Raises:
        ValueError: fewer than two values (no standard error).
    """
    n = len(values)
    if n < 2:
        raise ValueError(f"a standard error needs at least two values, got {n}")
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


@dataclass(frozen=True)
class PairedColumn:
    """One shot column of a paired comparison, in nats per item.

    Attributes:
        shots: conditioning items of the column.
        base / new: each evaluation's mean NLL over the bank's episodes.
        diff: the mean over episodes of ``new - base`` (negative: ``new`` is better).
        se: the standard error of ``diff`` over episodes.
    """

    shots: int
    base: float
    new: float
    diff: float
    se: float


@dataclass(frozen=True)
class PairedNLL:
    """``new - base`` per shot column over the episodes both evaluations scored.

    Attributes:
        base / new: the two evaluations' labels (or folders, when they have none).
        episodes: episodes paired.
        bank: the bank's identity (its cached file name, or its defining fields).
        columns: one :class:`PairedColumn` per shot column both evaluations scored.
    """

    base: str
    new: str
    episodes: int
    bank: str
    columns: tuple[PairedColumn, ...]

    def markdown(self) -> str:
        """A table: both evaluations' means and the paired difference (se) per column."""
        cols = self.columns
        head = "| | " + " | ".join(f"{c.shots} shots" if i == 0 else str(c.shots)
                                   for i, c in enumerate(cols)) + " |"
        rule = "|---|" + "---|" * len(cols)
        return "\n".join([
            f"Paired on {self.episodes} episodes of `{self.bank}`; NLL in nats, mean over "
            "episodes; the last row is the mean of new - base with its standard error.",
            "", head, rule,
            f"| base: {self.base} | " + " | ".join(f"{c.base:.1f}" for c in cols) + " |",
            f"| new: {self.new} | " + " | ".join(f"{c.new:.1f}" for c in cols) + " |",
            "| new - base, paired (se) | " + " | ".join(
                f"{c.diff:+.1f} ({c.se:.1f})" for c in cols) + " |",
        ])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``columns`` as a list of dicts)."""
        d = asdict(self)
        d["columns"] = [asdict(c) for c in self.columns]
        return d


#: An evaluation: a result folder of ``ppl-fewshot evaluate``, or (NLL only) the dict that
#: :func:`ppl_fewshot.inference.evaluate.nll_table` returns, which keeps ``per_episode``.
Source = str | Path | Mapping[str, Any]

#: The bank named for an in-memory table, which does not record its bank: such tables pair
#: with each other (the caller vouches that they scored the same episodes), not with folders.
IN_MEMORY = "in-memory table (bank not recorded)"


def source_name(source: Source) -> str:
    """A folder's path, or an in-memory table's label."""
    if isinstance(source, Mapping):
        return str(source.get("label") or "in-memory table")
    return str(source)


def has_episode_nll(source: Source) -> bool:
    """Whether ``source`` holds per-episode NLL values (a folder or an in-memory table)."""
    if isinstance(source, Mapping):
        return "per_episode" in source
    return (Path(source) / "nll_episodes.csv").is_file()


def load_episode_nll(source: Source) -> tuple[dict[str, Any], dict[int, list[float]]]:
    """An NLL evaluation's result JSON and its per-episode values ``{shots: [nll, ...]}``.

    ``transfer.json`` stands in for ``nll.json`` in a ``--task transfer`` folder (its table's
    fields are lifted to the top level). A mapping is an ``nll_table`` result in memory.

    Raises:
        FileNotFoundError: ``source`` lacks ``nll_episodes.csv`` or the result JSON.
        ValueError: a malformed ``nll_episodes.csv``, or a mapping without ``shots`` and
            ``per_episode``.
    """
    if isinstance(source, Mapping):
        if "shots" not in source or not source.get("per_episode"):
            raise ValueError("an in-memory table needs 'shots' and 'per_episode' (the dict "
                             "that ppl_fewshot.inference.nll_table returns)")
        meta = {k: v for k, v in source.items() if k != "per_episode"}
        meta.setdefault("bank", IN_MEMORY)
        meta.setdefault("label", "in-memory table")
        rows = source["per_episode"]
        if any(len(r) != len(source["shots"]) for r in rows):
            raise ValueError(f"an in-memory table's per_episode rows must have one value per "
                             f"shot column ({len(source['shots'])})")
        return meta, {int(s): [float(r[j]) for r in rows] for j, s in enumerate(source["shots"])}
    folder = Path(source)
    rows_file = folder / "nll_episodes.csv"
    metas = [folder / f"{task}.json" for task in ("nll", "transfer")]
    meta_file = next((f for f in metas if f.is_file()), None)
    if not rows_file.is_file() or meta_file is None:
        raise FileNotFoundError(
            f"{folder} holds no per-episode NLL: pairing needs the folder of an `ppl-fewshot "
            "evaluate --task nll` (or transfer) run, with nll.json (or transfer.json) and "
            "nll_episodes.csv")
    meta = json.loads(meta_file.read_text())
    if isinstance(meta.get("nll"), dict):  # transfer: the table is nested, provenance flat
        meta = {**meta, **meta["nll"]}
    with open(rows_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{rows_file} has no episode rows")
    values: dict[int, list[float]] = {}
    for key in rows[0]:
        if key == "episode":
            continue
        if not key.startswith("shots_"):
            raise ValueError(f"{rows_file}: unexpected column {key!r} (want shots_N)")
        values[int(key.removeprefix("shots_"))] = [float(r[key]) for r in rows]
    return meta, values


def bank_identity(meta: dict[str, Any]) -> str:
    """The name of the bank an evaluation scored: its cached file name, else its fields."""
    if meta.get("bank") == IN_MEMORY:
        return IN_MEMORY
    if meta.get("bank"):
        return Path(str(meta["bank"])).name
    return ",".join(f"{k}={meta.get(k)}" for k in BANK_FIELDS)


def check_same_bank(metas: Sequence[dict[str, Any]],
                    values: Sequence[dict[int, list[float]]]) -> tuple[str, int]:
    """The bank and episode count that NLL evaluations (:func:`load_episode_nll`) share.

    Raises:
        ValueError: different banks or different episode counts.
    """
    banks = [bank_identity(m) for m in metas]
    if len(set(banks)) > 1:
        raise ValueError(f"the evaluations scored different banks ({' and '.join(banks)}): "
                         "only evaluations of the same episodes can be paired")
    counts = [len(next(iter(v.values()))) for v in values]
    if len(set(counts)) > 1:
        raise ValueError(f"the evaluations cover {' and '.join(map(str, counts))} episodes")
    return banks[0], counts[0]


def paired_nll(base: Source, new: Source) -> PairedNLL:
    """Pair two ``evaluate --task nll`` folders episode by episode.

    Args:
        base, new: result folders of the same bank (``new - base`` is reported), or two
            ``nll_table`` results of the same bank in memory.

    Returns:
        :class:`PairedNLL` over the shot columns both scored, in increasing order.

    Raises:
        ValueError: different banks, different episode counts, or no shot column in common.
        FileNotFoundError: a folder without per-episode values.
    """
    (ma, va), (mb, vb) = load_episode_nll(base), load_episode_nll(new)
    bank, n = check_same_bank((ma, mb), (va, vb))
    shots = sorted(set(va) & set(vb))
    if not shots:
        raise ValueError(f"no shot column in common ({sorted(va)} and {sorted(vb)})")
    columns = []
    for s in shots:
        diff, se = mean_se([b - a for a, b in zip(va[s], vb[s])])
        columns.append(PairedColumn(shots=s, base=math.fsum(va[s]) / n,
                                    new=math.fsum(vb[s]) / n, diff=diff, se=se))
    return PairedNLL(base=str(ma.get("label") or base), new=str(mb.get("label") or new),
                     episodes=n, bank=bank, columns=tuple(columns))


@dataclass(frozen=True)
class PairedAccuracy:
    """One classification setting of two evaluations of the same seeded tasks.

    Attributes:
        method / ways / shots / tasks: the setting and the number of tasks paired.
        base / new: each evaluation's accuracy, %.
        diff: the mean over tasks of the accuracy difference ``new - base``, percentage points.
        se: its standard error over tasks.
    """

    method: str
    ways: int
    shots: int
    tasks: int
    base: float
    new: float
    diff: float
    se: float


def load_classification(source: Source) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A classification evaluation's result JSON (``classify`` or ``transfer``) and its rows
    that keep per-task counts (``correct_per_task``, written by ``evaluate`` since
    2026-12-07); ``([], ...)`` rows when it has none. A mapping is such a JSON in memory."""
    if isinstance(source, Mapping):
        meta = dict(source)
        return meta, [r for r in meta.get("classification", []) if "correct_per_task" in r]
    folder = Path(source)
    meta_file = next((f for f in (folder / "classify.json", folder / "transfer.json")
                      if f.is_file()), None)
    if meta_file is None:
        return {}, []
    meta = json.loads(meta_file.read_text())
    return meta, [r for r in meta.get("classification", []) if "correct_per_task" in r]


def check_same_tasks(metas: Sequence[dict[str, Any]]) -> None:
    """Refuse classification evaluations of different seeded tasks (protocol, split, seed).

    Raises:
        ValueError: naming the first field that differs.
    """
    for key in ("protocol", "split", "seed"):
        found = [m.get(key) for m in metas]
        if len(set(map(repr, found))) > 1:
            raise ValueError(f"the evaluations classified different tasks ({key} "
                             f"{' and '.join(map(repr, found))})")


def per_task_accuracy(row: dict[str, Any]) -> list[float]:
    """A classification row's accuracy per task, % (from ``correct_per_task``)."""
    q = row["queries_per_task"]
    return [100 * c / q for c in row["correct_per_task"]]


def common_settings(loaded: Sequence[tuple[dict[str, Any], list[dict[str, Any]]]]
                    ) -> list[list[dict[str, Any]]]:
    """The classification settings that every evaluation (:func:`load_classification`)
    scored with per-task counts: for each, its rows, one per evaluation, in the first
    evaluation's order of settings.

    Raises:
        ValueError: the evaluations classified different tasks (or, in one setting, different
            numbers of tasks or queries).
    """
    check_same_tasks([m for m, _ in loaded])
    keyed = [{(r["method"], r["ways"], r["shots"]): r for r in rows} for _, rows in loaded]
    settings = []
    for key in keyed[0]:
        if all(key in k for k in keyed[1:]):
            rows = [k[key] for k in keyed]
            shapes = [(r["tasks"], r["queries_per_task"]) for r in rows]
            if len(set(shapes)) > 1:
                raise ValueError(f"{key[1]}-way {key[2]}-shot: "
                                 f"{' and '.join(str(t) for t, _ in shapes)} tasks "
                                 f"({' and '.join(str(q) for _, q in shapes)} queries each) "
                                 "cannot be paired")
            settings.append(rows)
    return settings


def paired_accuracy(base: Source, new: Source) -> tuple[PairedAccuracy, ...]:
    """Pair two classification evaluations task by task, per (method, ways, shots).

    Both must have classified the same seeded tasks: the same protocol, split and seed, and
    per setting the same number of tasks and queries (``evaluate`` draws them from those
    alone). Settings only one of them scored are left out.

    Raises:
        ValueError: no setting in common with per-task counts, or different tasks.
    """
    pairs = []
    for a, b in common_settings([load_classification(base), load_classification(new)]):
        diff, se = mean_se([y - x for x, y in zip(per_task_accuracy(a), per_task_accuracy(b))])
        pairs.append(PairedAccuracy(method=a["method"], ways=a["ways"], shots=a["shots"],
                                    tasks=a["tasks"], base=a["accuracy"], new=b["accuracy"],
                                    diff=diff, se=se))
    if not pairs:
        raise ValueError(f"{base} and {new} share no classification setting with per-task "
                         "counts (rerun `ppl-fewshot evaluate --task classify` for older results)")
    return tuple(pairs)


def accuracy_markdown(pairs: Sequence[PairedAccuracy]) -> str:
    """A table of paired accuracies: one row per setting, base, new, new - base (se)."""
    rows = [f"| {p.method} | {p.ways}-way {p.shots}-shot | {p.tasks} | {p.base:.1f} | "
            f"{p.new:.1f} | {p.diff:+.2f} ({p.se:.2f}) |" for p in pairs]
    return "\n".join(["| method | setting | tasks | base % | new % | new - base, paired (se) |",
                      "|---|---|---|---|---|---|", *rows])


@dataclass(frozen=True)
class Comparison:
    """What two evaluation folders pair on (:func:`compare`).

    Attributes:
        base / new: the two folders.
        nll: the paired NLL table, when both hold per-episode values; else ``None``.
        classification: the settings both classified with per-task counts (may be empty).
    """

    base: str
    new: str
    nll: PairedNLL | None
    classification: tuple[PairedAccuracy, ...]

    def markdown(self) -> str:
        """The NLL table and the classification table, whichever there are."""
        parts = [f"## {self.new} - {self.base}"]
        if self.nll is not None:
            parts.append(self.nll.markdown())
        if self.classification:
            parts.append("Classification, paired per task (percentage points):\n\n"
                         + accuracy_markdown(self.classification))
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"base": self.base, "new": self.new,
                "nll": self.nll.to_dict() if self.nll is not None else None,
                "classification": [asdict(p) for p in self.classification]}


def compare(base: Source, new: Source) -> Comparison:
    """Everything two evaluation folders can be paired on.

    The NLL table when both hold per-episode values, and the classification settings both
    scored with per-task counts (an NLL folder and a ``transfer`` folder pair on the NLL).

    Raises:
        ValueError: nothing to pair, or the two scored different episodes or tasks.
    """
    has_nll = all(has_episode_nll(f) for f in (base, new))
    has_cls = all(load_classification(f)[1] for f in (base, new))
    if not (has_nll or has_cls):
        raise ValueError(f"{base} and {new} have nothing to pair: compare needs two "
                         "`ppl-fewshot evaluate` folders with per-episode NLL values "
                         "(nll_episodes.csv) or per-task classification counts")
    return Comparison(base=source_name(base), new=source_name(new),
                      nll=paired_nll(base, new) if has_nll else None,
                      classification=paired_accuracy(base, new) if has_cls else ())
