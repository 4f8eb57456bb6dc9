"""Throughput of the importance-sampled evaluation: ``conditional_log_likelihoods`` per episode.

Times ``model.conditional_log_likelihoods(x, num_particles=K, chunk=C)`` (the estimator behind
the NLL tables: per-item weights for GMN/VAE, prefix differences of ``log p(X)`` for NS) on a
fixed random batch of ``episodes`` sets of ``set_size`` items, for each chunk size ``C``
(particles vectorized per call), interleaved, warm-up excluded. Reports the median seconds per
call, episodes per second, and how many seconds the 659-episode NLL table of DESIGN.md section 6
would take at that rate.

Usage::

    python benchmarks/eval_throughput.py --model gmn-small --episodes 4 --set-size 20 \\
        --particles 100 --chunks 25,100 --repeats 3 --threads 1 --device cpu --out eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, summarize, sync  # noqa: E402

from ppl_fewshot.models import build  # noqa: E402

TABLE_EPISODES = 659


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gmn-small")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--set-size", type=int, default=20)
    ap.add_argument("--particles", type=int, default=100, help="importance samples K")
    ap.add_argument("--chunks", default="25,100", help="comma-separated chunk sizes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = build(args.model).to(device).eval()
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.episodes, args.set_size, *model.event_shape, generator=g).lt(0.2)
    x = x.float().to(device)
    chunks = [int(c) for c in args.chunks.split(",")]
    times: dict[int, list[float]] = {c: [] for c in chunks}
    nll: dict[int, float] = {}
    for r in range(args.warmup + args.repeats):
        for c in chunks[r % len(chunks):] + chunks[: r % len(chunks)]:
            sync(device)
            t0 = time.perf_counter()
            ll = model.conditional_log_likelihoods(x, None, args.particles, chunk=c)
            sync(device)
            if r >= args.warmup:
                times[c].append(time.perf_counter() - t0)
                nll[c] = float(-ll.mean())
    results = {}
    for c in chunks:
        s = summarize(times[c])
        per_episode = s["median_ms"] / 1e3 / args.episodes
        results[str(c)] = {**s, "episodes_per_s": 1.0 / per_episode,
                           "table_seconds_659_episodes": per_episode * TABLE_EPISODES,
                           "mean_nll_nats_last_call": nll[c]}
    out = {
        "benchmark": "eval_throughput",
        "command": " ".join(["benchmarks/eval_throughput.py"]
                            + (argv if argv is not None else sys.argv[1:])),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_info(device),
        "chunks": results,
        "note": "untrained weights: the NLL values only show that the estimator ran",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    res = main()
    print(json.dumps({c: round(v["median_ms"], 1) for c, v in res["chunks"].items()}))
