"""Do a model's few-shot samples draw the context's character? An independent judge says.

For 100 seeded gmn28 test episodes of one character each (20 distinct drawings: 0-4 are the
context the generator sees, 5-9 the judge's reference set, 10-19 real held-out drawings):

- every checkpoint draws S samples from ``p(x | context)`` (``model.sample``) with 5, 1 and
  0 context drawings, binarized by one Bernoulli draw per pixel; GMNs with the mixture prior
  also with ``components="context"`` (the pseudo-input's component left out);
- the judge, the Neural Statistician of ``models/ns-medium-omniglot.pt``, classifies each
  sample 20-way among the reference sets of this episode's character and of the 19 next
  episodes' characters (5 drawings each, none of them in the generator's context), by the
  smallest ``KL(q(c | X_k) || q(c | {x}))`` (its best method, docs/findings.md section 2);
- ``fidelity`` is the fraction of samples given to the context's character
  (:func:`ppl_fewshot.diagnostics.sample_fidelity`, with a 95% Wilson interval). The 10 real
  held-out drawings, judged the same way, are the ceiling; samples with an empty context
  (``p(x)``), the floor (1/20 = 0.05 by chance);
- ``copy_distance`` (:func:`ppl_fewshot.diagnostics.copy_distance`) is the fraction of
  pixels in which a sample differs from the nearest drawing its model saw (the first for
  1 shot, the 5 context drawings for 0 and 5 shots; 0 for a copy); the held-out drawings'
  distance to the 5 context drawings is the reference;
- ``diversity`` (:func:`ppl_fewshot.diagnostics.sample_diversity`) is the mean fraction of
  differing pixels between two samples of one episode; the 10 held-out drawings' is the
  reference;
- ``--temperatures 1,0.5`` also samples (with 5 and 1 shots) at each temperature but 1
  (``model.sample(..., temperature=t)``: every scale of the prior of ``z`` times ``t``),
  stored under keys ending in ``_t<t>``: the trade of variety for fidelity.

The judge was trained on ns28, whose training classes may include these characters (another
split and another rendering of the same zips); it judges, it is not judged. Judging the
Neural Statistician's own samples favours it.

Usage: PPL_FEWSHOT_DATA=../shared/data python docs/results/sample_fidelity.py OUT CKPT...
[--judge NS_CHECKPOINT] [--temperatures 1,0.7,0.5] (writes OUT/fidelity.json, or
OUT/fidelity-<judge>.json for another judge; S = 10 samples per episode; ~5 s per checkpoint
and temperature on one thread.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ppl_fewshot.diagnostics import copy_distance, sample_diversity, sample_fidelity
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.eval_data import test_bank
from ppl_fewshot.models import label as model_label

JUDGE = "models/ns-medium-omniglot.pt"
WAYS, SAMPLES, EPISODES = 20, 10, 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--judge", default=JUDGE, help="a Neural Statistician checkpoint")
    parser.add_argument("--temperatures", default="1",
                        help="sampling temperatures, e.g. 1,0.7,0.5 (those but 1: 5 and 1 shots)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    temperatures = [float(t) for t in args.temperatures.split(",")]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    judge, _ = model_from_checkpoint(args.judge)
    judge.eval()
    bank, _ = test_bank("gmn28", 1, 20, EPISODES, "distinct", 0, None)
    labels = bank.labels[:, 0]
    context, refs, real = bank.x[:, :5], bank.x[:, 5:10], bank.x[:, 10:20]
    own = []  # this episode, then the next episodes of other characters
    for e in range(EPISODES):
        row, k = [e], e
        while len(row) < WAYS:
            k = (k + 1) % EPISODES
            if int(labels[k]) not in {int(labels[j]) for j in row}:
                row.append(k)
        own.append(row)
    own = torch.tensor(own)

    def judged(x: torch.Tensor, seen: torch.Tensor) -> dict:
        res = sample_fidelity(judge, x, refs, own)
        return {**res, "copy_distance": float(copy_distance(x, seen).mean()),
                "diversity": float(sample_diversity(x).mean())}

    results = {
        "protocol": f"gmn28 test, {EPISODES} seeded episodes of 20 distinct drawings "
                    f"(distinct sampler, seed 0); {SAMPLES} samples per episode; "
                    f"judge {args.judge}, "
                    f"{WAYS}-way, 5 reference drawings per character, reverse min-KL",
        "real_held_out": judged(real, context),
        "models": [],
    }
    for ckpt in args.checkpoints:
        model, state = model_from_checkpoint(ckpt)
        model.eval()
        row = {"checkpoint": ckpt, "model": model_label(model), "step": state["step"]}
        settings = [(5, "all", 1.0), (1, "all", 1.0), (0, "all", 1.0)]
        if getattr(model, "prior_family", None) == "mixture":
            settings += [(5, "context", 1.0), (1, "context", 1.0)]
        settings += [(n, c, t) for t in temperatures if t != 1 for n, c, _ in settings if n]
        for shots, components, t in settings:
            kw = {} if components == "all" else {"components": components}
            if t != 1:
                kw["temperature"] = t
            torch.manual_seed(0)
            with torch.no_grad():
                probs = model.sample(context[:, :shots], SAMPLES, **kw)
            x = torch.bernoulli(probs)
            key = f"{shots}_shot" + ("" if components == "all" else "_context_components")
            key += "" if t == 1 else f"_t{t:g}"
            row[key] = judged(x, context[:, :shots] if shots else context)
        results["models"].append(row)
        print(json.dumps(row), flush=True)
    judge_path = Path(args.judge)
    tag = judge_path.parent.name if judge_path.stem == "checkpoint" else judge_path.stem
    name = "fidelity.json" if args.judge == JUDGE else f"fidelity-{tag}.json"
    (out / name).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["real_held_out"]))


if __name__ == "__main__":
    main()
