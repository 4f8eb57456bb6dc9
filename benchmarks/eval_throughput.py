"""Throughput of the importance-sampled evaluation: ``conditional_log_likelihoods`` per episode.

Times ``model.conditional_log_likelihoods(x, num_particles=K, chunk=C, positions=P)`` (the
estimator behind the NLL tables: per-item weights for GMN/VAE, prefix differences of
``log p(X)`` for NS) on a fixed random batch of ``episodes`` sets of ``set_size`` items, for
each chunk size ``C`` (particles vectorized per call; ``auto`` = the library default), scoring
the positions ``P`` (default: the eight columns of the NLL table), interleaved, warm-up
excluded. Reports the median seconds per call, episodes and importance samples per second, the
seconds the 659-episode NLL table of DESIGN.md section 6 would take at that rate, and the
process's peak resident memory.

Usage::

    python benchmarks/eval_throughput.py --model gmn-small --episodes 8 --set-size 20 \\
        --particles 200 --chunks auto,2,16 --repeats 3 --threads 1 --device cpu --out eval.json
"""

from __future__ import annotations

import argparse
import json
import resource
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
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="score with trained weights (default: untrained --model)")
    ap.add_argument("--positions", default="0,1,2,3,4,5,10,19",
                    help="comma-separated items to score, or 'all'; several specs separated "
                         "by ';' are timed side by side (e.g. '0,1,2,3,4,5,10,19;all')")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--set-size", type=int, default=20)
    ap.add_argument("--particles", type=int, default=100, help="importance samples K")
    ap.add_argument("--chunks", default="auto,25", help="comma-separated chunk sizes or 'auto'")
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
    if args.checkpoint is not None:
        from ppl_fewshot.inference.checkpoint import model_from_checkpoint

        model = model_from_checkpoint(args.checkpoint, device=device)[0].eval()
    else:
        model = build(args.model).to(device).eval()
    specs = [p.strip() for p in args.positions.split(";") if p.strip()]
    positions = {spec: (None if spec == "all" else
                        [p for p in (int(v) for v in spec.split(",")) if p < args.set_size])
                 for spec in specs}
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.episodes, args.set_size, *model.event_shape, generator=g).lt(0.2)
    x = x.float().to(device)
    chunks = [None if c == "auto" else int(c) for c in args.chunks.split(",")]
    variants = [(c, spec) for spec in specs for c in chunks]
    times: dict[tuple, list[float]] = {v: [] for v in variants}
    nll: dict[tuple, float] = {}
    for r in range(args.warmup + args.repeats):
        for c, spec in variants[r % len(variants):] + variants[: r % len(variants)]:
            sync(device)
            t0 = time.perf_counter()
            ll = model.conditional_log_likelihoods(x, None, args.particles, chunk=c,
                                                   positions=positions[spec])
            sync(device)
            if r >= args.warmup:
                times[c, spec].append(time.perf_counter() - t0)
                nll[c, spec] = float(-ll.mean())
    results = {}
    for c, spec in variants:
        s = summarize(times[c, spec])
        per_episode = s["median_ms"] / 1e3 / args.episodes
        scored = args.set_size if positions[spec] is None else len(positions[spec])
        key = "auto" if c is None else str(c)
        results.setdefault(spec, {})[key] = {
            **s,
            "episodes_per_s": 1.0 / per_episode,
            "item_particles_per_s": scored * args.particles / per_episode,
            "table_seconds_659_episodes": per_episode * TABLE_EPISODES,
            "mean_nll_nats_last_call": nll[c, spec],
        }
    out = {
        "benchmark": "eval_throughput",
        "command": " ".join(["benchmarks/eval_throughput.py"]
                            + (argv if argv is not None else sys.argv[1:])),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_info(device),
        "positions": results,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "note": ("random binary episodes: the NLL values only show that the estimator ran; "
                 "table_seconds_659_episodes is at this K"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    res = main()
    print(json.dumps({spec: {c: round(v["median_ms"], 1) for c, v in by_chunk.items()}
                      for spec, by_chunk in res["positions"].items()}))
