"""Do a model's few-shot samples draw the context's character? An independent judge says.

For 100 seeded gmn28 test episodes of one character each (11 distinct drawings: 0-4 are the
context the generator sees, 5-9 the judge's reference set, 10 a real held-out drawing):

- every checkpoint draws S samples from ``p(x | context)`` (``model.sample``), binarized by
  one Bernoulli draw per pixel;
- the judge, the Neural Statistician of ``models/ns-medium-omniglot.pt``, classifies each
  sample 20-way among the reference sets of this episode's character and of the 19 next
  episodes' characters (5 drawings each, none of them in the generator's context), by the
  smallest ``KL(q(c | X_k) || q(c | {x}))`` (its best method, docs/findings.md section 2);
- ``fidelity`` is the fraction of samples given to the context's character. The real
  held-out drawing, judged the same way, is the ceiling; samples with an empty context
  (``p(x)``), the floor (1/20 = 0.05 by chance);
- ``copy_distance`` is the fraction of pixels in which a sample differs from the nearest
  context drawing (0 for a copy); the held-out drawing's distance is the reference.

The judge was trained on ns28, whose training classes may include these characters (another
split and another rendering of the same zips); it judges, it is not judged. Judging the
Neural Statistician's own samples favours it.

Usage: PPL_FEWSHOT_DATA=../shared/data python docs/results/sample_fidelity.py OUT CKPT...
[--judge NS_CHECKPOINT] (writes OUT/fidelity.json, or OUT/fidelity-<judge>.json for another
judge; S = 10 samples per episode; ~5 s per checkpoint on one thread.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.distributions import kl_divergence

from ppl_fewshot.cli_evaluate import model_label, test_bank
from ppl_fewshot.inference import model_from_checkpoint

JUDGE = "models/ns-medium-omniglot.pt"
WAYS, SAMPLES, EPISODES = 20, 10, 100


def judge_accuracy(judge, items: torch.Tensor, refs: torch.Tensor, own: torch.Tensor) -> float:
    """Fraction of ``items[E, S, *event]`` whose smallest reverse KL among ``refs[E, 5, *event]``
    (the reference sets) is their own episode's set ``own[E, WAYS]`` column 0."""
    with torch.no_grad():
        q_ref = judge.context_posterior(refs)  # batch [E]
        E, S = items.shape[:2]
        q_x = judge.context_posterior(items.reshape(E * S, 1, *items.shape[2:]))
        loc = q_x.base_dist.loc.reshape(E, S, 1, -1)
        scale = q_x.base_dist.scale.reshape(E, S, 1, -1)
        r_loc, r_scale = q_ref.base_dist.loc[own], q_ref.base_dist.scale[own]  # [E, WAYS, C]
        kl = kl_divergence(
            torch.distributions.Normal(r_loc.unsqueeze(1), r_scale.unsqueeze(1)),
            torch.distributions.Normal(loc, scale),
        ).sum(-1)  # [E, S, WAYS]
        return float((kl.argmin(-1) == 0).float().mean())


def copy_distance(items: torch.Tensor, context: torch.Tensor) -> float:
    """Mean over items of the fraction of pixels differing from the nearest context drawing."""
    diff = (items.flatten(2).unsqueeze(2) != context.flatten(2).unsqueeze(1)).float().mean(-1)
    return float(diff.min(-1).values.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--judge", default=JUDGE, help="a Neural Statistician checkpoint")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    judge, _ = model_from_checkpoint(args.judge)
    judge.eval()
    bank, _ = test_bank("gmn28", 1, 11, EPISODES, "distinct", 0, None)
    labels = bank.labels[:, 0]
    context, refs, real = bank.x[:, :5], bank.x[:, 5:10], bank.x[:, 10:11]
    own = []  # this episode, then the next episodes of other characters
    for e in range(EPISODES):
        row, k = [e], e
        while len(row) < WAYS:
            k = (k + 1) % EPISODES
            if int(labels[k]) not in {int(labels[j]) for j in row}:
                row.append(k)
        own.append(row)
    own = torch.tensor(own)
    results = {
        "protocol": f"gmn28 test, {EPISODES} seeded episodes of 11 distinct drawings "
                    f"(distinct sampler, seed 0); {SAMPLES} samples per episode; "
                    f"judge {args.judge}, "
                    f"{WAYS}-way, 5 reference drawings per character, reverse min-KL",
        "real_held_out": {"fidelity": judge_accuracy(judge, real, refs, own),
                          "copy_distance": copy_distance(real, context)},
        "models": [],
    }
    for ckpt in args.checkpoints:
        model, state = model_from_checkpoint(ckpt)
        model.eval()
        row = {"checkpoint": ckpt, "model": model_label(model), "step": state["step"]}
        for shots in (5, 0):
            torch.manual_seed(0)
            with torch.no_grad():
                probs = model.sample(context[:, :shots], SAMPLES)
            x = torch.bernoulli(probs)
            row[f"{shots}_shot"] = {"fidelity": judge_accuracy(judge, x, refs, own),
                                    "copy_distance": copy_distance(x, context)}
        results["models"].append(row)
        print(json.dumps(row), flush=True)
    judge_path = Path(args.judge)
    tag = judge_path.parent.name if judge_path.stem == "checkpoint" else judge_path.stem
    name = "fidelity.json" if args.judge == JUDGE else f"fidelity-{tag}.json"
    (out / name).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["real_held_out"]))


if __name__ == "__main__":
    main()
