"""Omniglot -> MNIST transfer with MNIST's strokes thinned or shrunk toward Omniglot's (and
Omniglot with thickened strokes).

Is the MNIST transfer gap (docs/findings.md sections 2 and 14) about stroke width? At
28 x 28, Omniglot strokes are 1-2 pixels wide and MNIST's about 3. This transforms the
grey levels of the official MNIST test digits (protocol `mnist28-t10k`, the same seeded
10-way tasks for every transform) and scores them by min-KL in both directions:

- ``none``: as they are;
- ``erode2``: a 2 x 2 minimum filter (strokes one pixel thinner);
- ``erode3``: a 3 x 3 minimum filter (two pixels thinner);
- ``shrink``: the digit scaled to 3/4 (area resampling, 21 x 21 pasted at the centre);
- ``dilate2``, ``dilate3``: 2 x 2 and 3 x 3 maximum filters (strokes one or two pixels wider),
  for the converse test on Omniglot's own test classes (``--protocol ns28``).

Prints, per transform, the ink statistics (mean grey level; the fraction of ink pixels whose
four neighbours are ink, a stroke-width proxy) and the accuracies, and writes them as JSON.

Usage: PPL_FEWSHOT_DATA=../shared/data python docs/results/ns_mnist_strokes.py \\
           models/ns-medium-omniglot.pt --out docs/results/ns-medium-strokes/mnist.json
       ... --protocol ns28 --ways 20 --transforms none,dilate2,dilate3 --out ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ppl_fewshot.data import load_split
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.classify import make_tasks, min_kl_scores, predict


def transform(images: torch.Tensor, kind: str) -> torch.Tensor:
    """``images[..., 1, 28, 28]`` (uint8 grey levels) transformed by ``kind``."""
    if kind == "none":
        return images
    x = images.reshape(-1, 1, 28, 28).float()
    if kind in ("erode2", "erode3"):
        k = int(kind[-1])
        x = -F.max_pool2d(F.pad(-x, (0, k - 1, 0, k - 1), value=-255.0), k, stride=1)
    elif kind in ("dilate2", "dilate3"):
        k = int(kind[-1])
        x = F.max_pool2d(F.pad(x, (0, k - 1, 0, k - 1)), k, stride=1)
    elif kind == "shrink":
        small = F.interpolate(x, size=(21, 21), mode="area")
        x = F.pad(small, (3, 4, 3, 4))
    else:
        raise ValueError(f"unknown transform {kind!r}")
    return x.round().clamp(0, 255).to(torch.uint8).reshape(images.shape)


def ink_stats(images: torch.Tensor) -> dict[str, float]:
    b = (images.reshape(-1, 28, 28).float() / 255) > 0.5
    c = b[:, 1:-1, 1:-1]
    inner = c & b[:, :-2, 1:-1] & b[:, 2:, 1:-1] & b[:, 1:-1, :-2] & b[:, 1:-1, 2:]
    return {"mean_grey": round(images.float().mean().item() / 255, 4),
            "interior_fraction": round(inner.sum().item() / max(b.sum().item(), 1), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--ways", type=int, default=10)
    p.add_argument("--k-shots", default="1,5")
    p.add_argument("--transforms", default="none,erode2,erode3,shrink")
    p.add_argument("--protocol", default="mnist28-t10k", help="test split to transform")
    p.add_argument("--binarization", default="dynamic", choices=("dynamic", "none"),
                   help="test inputs: seeded Bernoulli draws (the protocol) or grey levels")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(args.checkpoint, device="cpu")
    base = dataclasses.replace(load_split(args.protocol, "test"), binarization=args.binarization)
    omni = load_split("ns28", "test")
    result = {"checkpoint": args.checkpoint, "protocol": args.protocol, "ways": args.ways,
              "tasks": args.tasks, "binarization": args.binarization,
              "omniglot_ns28_test": ink_stats(omni.images), "transforms": {}}
    print("ns28 test:", result["omniglot_ns28_test"], flush=True)
    for kind in args.transforms.split(","):
        data = dataclasses.replace(base, images=transform(base.images, kind))
        row: dict = {**ink_stats(data.images)}
        for k in (int(s) for s in args.k_shots.split(",")):
            tasks = make_tasks(data, args.tasks, args.ways, k, seed=0)
            for name, rev in (("min-kl", False), ("min-kl-reverse", True)):
                right = predict(min_kl_scores(model, tasks, reverse=rev)) == tasks.labels
                row[f"{name}_{k}shot"] = round(100 * right.float().mean().item(), 1)
        result["transforms"][kind] = row
        print(kind, row, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
