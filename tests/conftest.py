"""Shared fixtures: tiny synthetic class datasets and the real data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pyro
import pytest
import torch

from ppl_fewshot.data.base import ClassDataset

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PPL_FEWSHOT_DATA", REPO.parent / "shared" / "data"))
# the smallest configurations of the image models that still run every code path (CPU tests)
TINY_GMN = {"z_dim": 4, "state_dim": 16, "channels": 4, "hidden": 32, "attention_steps": 2}
TINY_NS = {"c_dim": 3, "z_dim": 2, "hidden": 16, "channels": 2}


def make_prototype_classes(
    num_classes: int = 12, per_class: int = 10, flip: float = 0.03, seed: int = 0, size: int = 28
) -> ClassDataset:
    """Classes = random blobs of ink; items = the blob with a few pixels flipped."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.zeros(num_classes, 1, size, size)
    for c in range(num_classes):
        for _ in range(3):  # three rectangles of ink per class
            y, x = torch.randint(2, size - 10, (2,), generator=g).tolist()
            h, w = torch.randint(3, 8, (2,), generator=g).tolist()
            protos[c, 0, y : y + h, x : x + w] = 1.0
    noise = torch.rand(num_classes, per_class, 1, size, size, generator=g) < flip
    imgs = (protos.unsqueeze(1).expand_as(noise).bool() ^ noise).to(torch.uint8) * 255
    return ClassDataset(imgs, [f"synthetic/c{c:02d}" for c in range(num_classes)], "fixed", "proto")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One torch thread: the models here are small, and on a busy 2-core machine a second
    thread per process costs far more in contention than it gains."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def proto_data() -> ClassDataset:
    return make_prototype_classes()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No downloads; caches (preprocessed data, episode banks) go to a per-session temp folder."""
    monkeypatch.setenv("PPL_FEWSHOT_OFFLINE", "1")  # nothing may download during tests
    if "PPL_FEWSHOT_CACHE" not in os.environ:
        monkeypatch.setenv("PPL_FEWSHOT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def shared_data(monkeypatch) -> Path:
    if not (SHARED_DATA / "gmn" / "train_small.npz").exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    monkeypatch.setenv("PPL_FEWSHOT_DATA", str(SHARED_DATA))
    return SHARED_DATA


def fit_guide(
    model,
    num_steps: int = 400,
    num_sets: int = 64,
    max_items: int = 64,
    lr: float = 1e-2,
    num_particles: int = 4,
    seed: int = 0,
) -> list[float]:
    """Train the amortized guide by SVI on prior-simulated sets of random sizes."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    elbo = pyro.infer.Trace_ELBO(
        num_particles=num_particles, vectorize_particles=True, max_plate_nesting=2
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 if s < 0.6 * num_steps else 0.1)
    losses = []
    for _ in range(num_steps):
        x, mask, _ = model.simulate(num_sets, max_items)
        loss = elbo.differentiable_loss(model.model, model.guide, x, mask) / num_sets
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    from ppl_fewshot.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """Assert that stderr is one ``ppl-fewshot: error:`` line (no traceback) and return it."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ppl-fewshot: error:") and "Traceback" not in err
    return lines[0]
