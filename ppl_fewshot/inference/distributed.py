"""Data-parallel training across processes: ``torchrun`` + DistributedDataParallel.

``torchrun --nproc_per_node N -m ppl_fewshot.cli train ...`` starts N copies of the
trainer. Each reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the environment, joins
the process group (NCCL on GPUs, gloo on CPUs), draws its own episodes (seeded by
``(seed, step, rank)``), and wraps the same :class:`ELBOLoss` in
:class:`torch.nn.parallel.DistributedDataParallel`. The loss of each rank is divided by
the *global* number of items times ``1 / world_size``, so that DDP's gradient average
equals the gradient of the union batch's loss:

    (1/W) sum_r d/dtheta [ L_r / (N/W) ] = d/dtheta [ sum_r L_r / N ]

with ``L_r`` the summed negative ELBO of rank r and ``N`` the items of all ranks.
Rank 0 alone writes checkpoints, metrics and progress bars.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``; ``owns_group`` if we created it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1), else no-op."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        owns = True
    logger.info("rank %d of %d joined (backend %s)", rank, world, dist.get_backend())
    return DistInfo(rank, world, local, owns)


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """One GPU per process: ``cuda:LOCAL_RANK`` when training on CUDA with several ranks."""
    if info.enabled and device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return device


def all_sum(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (identity in one process)."""
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def wrap(module: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` when several ranks train, else ``module``."""
    if not info.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def teardown(info: DistInfo, clean: bool) -> None:
    """Leave the process group that :func:`setup` joined (no-op otherwise).

    After a clean run (``clean``: no exception raised) the ranks first meet at a barrier, so
    that no rank destroys its group, and with it the gloo transport threads, while a peer
    still has collectives in flight with it (a race that can abort the peer with SIGABRT).
    After an error a rank leaves at once: a barrier could wait forever for a rank that died,
    which is why ``clean`` has no default.
    """
    if info.owns_group and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()
