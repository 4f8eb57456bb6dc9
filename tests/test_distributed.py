"""Data-parallel training: 2 gloo processes equal one process on the union of their episodes."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ppl_fewshot.data import EpisodeSampler
from ppl_fewshot.inference import TrainConfig, load_checkpoint, train
from ppl_fewshot.inference import trainer as trainer_mod
from ppl_fewshot.inference.distributed import DistInfo
from tests.conftest import make_prototype_classes

DATA = (make_prototype_classes(8, 10, seed=5), make_prototype_classes(2, 10, seed=6))
CFG = TrainConfig(
    model="vae-small",
    protocol="synthetic",
    steps=1,
    batch_size=3,
    set_size=(2, 4),
    val_batches=1,
    checkpoint_every=1,
    device="cpu",
    seed=7,
    grad_clip=0.0,
)


def _noise_free_rsample() -> None:
    """Replace Normal.rsample by its mean: the step is then deterministic, and any difference
    between the two runs comes from how gradients are combined, which is what is tested."""

    def rsample(self, sample_shape=torch.Size()):  # noqa: B008
        return self.loc.expand(self._extended_shape(sample_shape))

    torch.distributions.Normal.rsample = rsample


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    _noise_free_rsample()
    train(CFG, out, data=DATA, progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_equal_one_process_on_the_union(tmp_path, monkeypatch) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ddp["extra"]["world_size"] == 2

    # one process, given the union of both ranks' episodes (ranks draw with their own seeds)
    eps = []
    for rank in (0, 1):
        s = EpisodeSampler(
            DATA[0],
            CFG.batch_size,
            CFG.set_size,
            CFG.num_classes,
            sampler=CFG.sampler,
            seed=trainer_mod._step_seed(CFG, 0, DistInfo(rank, 2)),
        )
        eps.append(s.sample())
    T = max(e.x.shape[1] for e in eps)

    def pad(t, value=0):
        return torch.nn.functional.pad(
            t, [0] * (2 * (t.dim() - 2)) + [0, T - t.shape[1]], value=value
        )

    union = type(eps[0])(
        torch.cat([pad(e.x) for e in eps]),
        torch.cat([pad(e.labels) for e in eps]),
        torch.cat([pad(e.mask, False) for e in eps]),
    )
    assert union.mask.sum() > 0 and not torch.equal(eps[0].x[:, :1], eps[1].x[:, :1])

    class Fixed:
        def reseed(self, seed):
            pass

        def sample(self):
            return union

    real_sampler = trainer_mod._sampler
    monkeypatch.setattr(
        trainer_mod,
        "_sampler",
        lambda ds, cfg, seed: Fixed() if ds is DATA[0] else real_sampler(ds, cfg, seed),
    )
    saved = torch.distributions.Normal.rsample
    try:
        _noise_free_rsample()
        train(CFG, tmp_path / "one", data=DATA, progress=False)
    finally:
        torch.distributions.Normal.rsample = saved
    one = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    # Adam's first moment after one step is 0.1 * gradient: the gradients must agree ...
    g_one = [st["exp_avg"] for st in one["optimizer"]["state"].values()]
    g_ddp = [st["exp_avg"] for st in ddp["optimizer"]["state"].values()]
    assert len(g_one) == len(g_ddp) > 0
    for a, b in zip(g_one, g_ddp):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-4), (a - b).abs().max()
    # ... and so must the weights, except where Adam divides a ~0 gradient by its own size
    for k, v in one["state_dict"].items():
        assert torch.allclose(ddp["state_dict"][k], v, atol=2e-4), k
    # and the step really moved the weights (Adam's first step is ~lr per weight)
    torch.manual_seed(CFG.seed)
    from ppl_fewshot import models
    from ppl_fewshot.utils import seed_everything

    seed_everything(CFG.seed)
    init = models.build("vae-small").state_dict()
    moved = max((one["state_dict"][k] - init[k]).abs().max().item() for k in init)
    assert moved > 1e-4
