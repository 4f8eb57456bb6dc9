"""How likelihood classification moves with the importance sampler, on the same tasks.

``ppl-fewshot evaluate --task classify`` scores each query against each class by
``log p(x | X_c)`` estimated with ``--classify-samples K`` draws from the guide (K 10 in every
GMN row of table 2). This script scores one set of seeded tasks at several K, each with its own
seeded draws, and reports each K's accuracy and its paired difference from the first K (the
same queries decided twice; standard error over tasks), so that a change smaller than the
interval of one run can still be seen (each row keeps its queries decided right per task, so
``docs/results/paired_classify.py`` can pair two checkpoints' runs). ``--k 10x1.5`` draws the
K 10 samples from the guide with its Normal scales widened 1.5 times (``evaluate --proposal-scale``,
``ppl_fewshot.models.posteriors.widened_guide``).

    python docs/results/classify_k.py CHECKPOINT --ways 5 --shots 5 --tasks 300 \
        --k 10,30,100,300,10x1.5 --out runs/ksweep/w5-s5.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ppl_fewshot.data import get_protocol, load_split
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.classify import accuracy, likelihood_scores, make_tasks, predict
from ppl_fewshot.models.posteriors import widened_guide


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--protocol", default="gmn28")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--tasks", type=int, default=300)
    p.add_argument("--k", default="10,30,100")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    runs = [(int(k.split("x")[0]), float(k.split("x")[1]) if "x" in k else 1.0)
            for k in a.k.split(",")]
    model, _ = model_from_checkpoint(a.checkpoint)
    proto = get_protocol(a.protocol)
    ds = load_split(proto.name, "test")
    tasks = make_tasks(ds, a.tasks, a.ways, a.shots, 1, seed=a.seed)
    rows, correct = [], {}
    for i, (k, scale) in enumerate(runs):
        torch.manual_seed(a.seed)  # as `evaluate --seed`: the first K repeats its number
        t0 = time.perf_counter()
        with widened_guide(model, scale):
            scores = likelihood_scores(model, tasks, num_particles=k)
        pred = predict(scores, a.seed)
        correct[i] = (pred == tasks.labels).float()  # [tasks, queries]
        r = {"k": k, "proposal_scale": scale,  # accuracy() includes correct_per_task
             **accuracy(pred, tasks.labels), "wall_s": round(time.perf_counter() - t0, 1)}
        if i:
            d = (correct[i] - correct[0]).mean(1) * 100  # per task
            r["paired_diff_vs_first"] = round(d.mean().item(), 3)
            r["paired_se"] = round((d.std() / len(d) ** 0.5).item(), 3)
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "correct_per_task"}), flush=True)
    out = {"checkpoint": a.checkpoint, "protocol": proto.name, "ways": a.ways, "shots": a.shots,
           "tasks": a.tasks, "queries_per_task": a.ways, "seed": a.seed, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
