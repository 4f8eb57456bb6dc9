"""The training loop: SVI on episodes with checkpoints, validation, resume and a NaN guard.

``train(config, out_dir)`` trains ``models.build(config.model, **config.model_overrides)``
on episodes of the protocol's training classes (a few classes held out for validation)
by minimising :class:`~ppl_fewshot.inference.objectives.ELBOLoss` with ``torch.optim.Adam``.

Files written to ``out_dir`` (each atomically):

- ``checkpoint.pt`` -- the latest good state (model, optimizer, step, config, versions);
- ``best.pt`` -- the weights with the lowest validation loss so far (no optimizer; its
  ``extra["val_loss"]`` and step say which), for early stopping;
- ``config.json`` -- the :class:`TrainConfig`;
- ``metrics.jsonl`` -- one JSON object per logged step (train loss, lr, beta, validation);
- ``summary.json`` -- budget and final losses, written at the end, with ``loss_spikes``: the
  steps whose loss exceeded 10 times the median of the 200 steps before (since this start or
  resume), which a healthy run has none of and the end-of-run losses do not show.

A NaN or Inf loss stops training with :class:`TrainingDiverged` naming the step; the last
good checkpoint stays untouched.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

from ppl_fewshot.data import (
    EpisodeSampler,
    derive_seed,
    get_protocol,
    load_split,
    make_loader,
    split_validation,
)
from ppl_fewshot.data.base import ClassDataset
from ppl_fewshot.inference import distributed
from ppl_fewshot.inference.checkpoint import (
    CheckpointError,
    earlier_runs,
    load_checkpoint,
    run_entry,
    save_checkpoint,
    warm_start,
)
from ppl_fewshot.inference.objectives import ELBOLoss
from ppl_fewshot.inference.train_config import TrainConfig
from ppl_fewshot.models import build
from ppl_fewshot.utils import (
    atomic_write_text,
    folder_lock,
    resolve_device,
    seed_everything,
    source_commit,
    versions,
)

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the message names the step and the last good checkpoint."""


def load_training_data(config: TrainConfig) -> tuple[ClassDataset, ClassDataset]:
    """The protocol's training classes, split into (train, validation) classes."""
    protocol = get_protocol(config.protocol)
    if config.augmentation is not None:  # TrainConfig.augmentation overrides the protocol's
        protocol = dataclasses.replace(protocol, augmentation=tuple(config.augmentation))
    ds = load_split(protocol, "train", data_dir=config.data_dir)
    if config.train_classes:
        ds = ds.subset(list(range(min(config.train_classes, ds.num_classes))))
    if config.val_classes:
        if config.val_classes >= ds.num_classes:
            raise ValueError(
                f"val_classes={config.val_classes} leaves no training classes (of {ds.num_classes})"
            )
        return split_validation(ds, config.val_classes, seed=config.seed)
    return ds, ds


def _sampler(ds: ClassDataset, config: TrainConfig, seed: int) -> EpisodeSampler:
    return EpisodeSampler(
        ds,
        config.batch_size,
        config.set_size,
        config.num_classes,
        sampler=config.sampler,
        seed=seed,
    )


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def validation_loss(loss_fn: ELBOLoss, batches: list, device: torch.device) -> float:
    """Mean negative ELBO per item over fixed validation batches (KL weight 1, every item's
    term weighing 1: comparable across runs whatever their training weights)."""
    was_training = loss_fn.training
    loss_fn.eval()
    try:
        with torch.no_grad(), loss_fn.plain():
            vals = [float(loss_fn(ep.x.to(device), ep.mask.to(device))) for ep in batches]
    finally:
        loss_fn.train(was_training)
    return sum(vals) / len(vals)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool | None = None,
    data: tuple[ClassDataset, ClassDataset] | None = None,
    time_limit: float | None = None,
) -> dict[str, Any]:
    """Train ``config.model`` and write checkpoint, metrics and summary into ``out_dir``.

    Args:
        config: the run's settings.
        out_dir: output folder; refused if it holds a checkpoint and ``resume`` is False.
        resume: continue from ``out_dir/checkpoint.pt`` (same config required).
        progress: show a tqdm bar (default: only when stderr is a terminal).
        data: ``(train, validation)`` class datasets to use instead of the protocol's.
        time_limit: seconds of this call after which training stops at the next log step
            with a checkpoint and a summary (``stopped_early``); ``resume=True`` continues
            it. For a job's wall-clock limit: nothing is lost when the limit comes first.

    Returns:
        The summary dictionary (also written to ``summary.json``).

    Raises:
        RunInProgressError: another live process is training into ``out_dir`` (it holds
            ``out_dir/.lock``); a second trainer would interleave checkpoints and metrics.
    """
    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pt"
    if resume and not ckpt_path.exists():
        raise CheckpointError(f"nothing to resume: {ckpt_path} does not exist")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be > 0 seconds, got {time_limit}")
    source_commit()  # the commit of the code imported now, not the checkout's at the first save
    info = distributed.setup(resolve_device(config.device))
    clean = False
    try:
        # One trainer per folder: the main rank (the only writer) holds out/.lock throughout.
        with folder_lock(out) if info.is_main else contextlib.nullcontext():
            if ckpt_path.exists() and not resume:
                raise FileExistsError(
                    f"{out} already holds a run; pass --resume or choose another --out")
            summary = _train(config, out, resume, progress, data, info, time_limit)
        clean = True
        return summary
    finally:
        distributed.teardown(info, clean)


class _SpikeCounter:
    """Counts steps whose loss exceeds ``factor`` times the median of the ``window`` before."""

    def __init__(self, factor: float = 10.0, window: int = 200, warmup: int = 20) -> None:
        self.factor, self.warmup = factor, warmup
        self.recent: collections.deque[float] = collections.deque(maxlen=window)
        self.count, self.largest, self.at_step = 0, None, None

    def add(self, step: int, loss: float) -> None:
        if len(self.recent) >= self.warmup and loss > self.factor * statistics.median(self.recent):
            self.count += 1
            if self.largest is None or loss > self.largest:
                self.largest, self.at_step = loss, step
        self.recent.append(loss)

    def record(self) -> dict[str, Any]:
        return {"count": self.count, "largest": self.largest, "at_step": self.at_step,
                "rule": f"loss > {self.factor:g} x median of the previous "
                        f"{self.recent.maxlen} steps"}


def _step_seed(config: TrainConfig, step: int, info: distributed.DistInfo, *keys: int) -> int:
    """Seed of one step's episodes (keys=()) or Monte Carlo draws (keys=(1,)) on this rank."""
    ranks = (info.rank,) if info.enabled else ()
    return derive_seed(config.seed, step, *keys, *ranks)


def _train(config, out, resume, progress, data, info: distributed.DistInfo,
           time_limit: float | None) -> dict[str, Any]:
    ckpt_path = out / "checkpoint.pt"
    device = distributed.local_device(resolve_device(config.device), info)
    train_ds, val_ds = data if data is not None else load_training_data(config)
    if config.binarization is not None:  # TrainConfig.binarization overrides the protocol's
        train_ds, val_ds = (dataclasses.replace(d, binarization=config.binarization)
                            for d in (train_ds, val_ds))
    seed_everything(config.seed)  # initial weights depend on the seed only (same on all ranks)
    model = build(config.model, **config.model_overrides)
    loss_fn = ELBOLoss(model, config.objective, config.num_particles,
                       config.position_weights, config.singleton_weight).to(device)
    optimizer = (torch.optim.AdamW(loss_fn.parameters(), lr=config.lr_at(0),
                                   weight_decay=config.weight_decay) if config.weight_decay
                 else torch.optim.Adam(loss_fn.parameters(), lr=config.lr_at(0)))
    start, wall_before = 0, 0.0
    # the runs whose weights this one continues: every checkpoint carries them, so that
    # "N steps" of a continued run is never read as its whole budget
    before: dict[str, Any] = {}
    if resume:
        state = load_checkpoint(ckpt_path, map_location=device)
        if TrainConfig.from_json(state["train_config"]) != config:
            raise ValueError(f"--resume needs the same settings as the run in {out}")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        wall_before = float(state["extra"].get("wall_time_s", 0.0))
        if "earlier_runs" in state["extra"]:  # as recorded when the run started
            before = {"earlier_runs": state["extra"]["earlier_runs"]}
        logger.info("resuming %s at step %d", out, start)
    elif config.init_from:
        src = warm_start(model, config.init_from)
        before = {"earlier_runs": earlier_runs(src) + [run_entry(config.init_from, src)]}
    if config.init_from and not before:  # resuming a run from before the record
        before = {"earlier_runs": earlier_runs({"train_config": config.to_json()})}
    step_fn = distributed.wrap(loss_fn, info, device)
    main = info.is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(config.to_json(), indent=2))
    metrics_path = out / "metrics.jsonl"
    val_batches = (
        [
            _sampler(val_ds, config, seed=derive_seed(config.seed, 10**6 + i)).sample()
            for i in range(config.val_batches)
        ]
        if main
        else []
    )
    sampler = _sampler(train_ds, config, seed=_step_seed(config, start, info))
    # Without workers every step is reseeded from (seed, step, rank): a resumed run takes
    # exactly the same episodes and Monte Carlo draws as an uninterrupted one.
    it = iter(make_loader(sampler, num_workers=config.num_workers) if config.num_workers else ())
    show = main and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(total=config.steps, initial=start, disable=not show, desc=f"train {config.model}")
    t0, last_good, loss_val, val = time.perf_counter(), start, float("nan"), None
    best = (math.inf, 0)  # (validation loss, step) of best.pt
    if resume and (out / "best.pt").exists():
        b = load_checkpoint(out / "best.pt")
        best = (float(b["extra"].get("val_loss", math.inf)), int(b["step"]))
    # Per-step losses stay on the device until a log or checkpoint step reads them all in one
    # transfer: no host-device sync inside the step (it would stall a GPU every step).
    pending: list[tuple[int, torch.Tensor]] = []
    running: list[float] = []
    spikes = _SpikeCounter()

    def wall() -> float:
        return wall_before + time.perf_counter() - t0

    def flush() -> float:
        """Read the pending losses; stop at the first non-finite one (nothing saved after it)."""
        nonlocal pending
        if pending:
            values = torch.stack([v for _, v in pending]).tolist()
            for (s, _), v in zip(pending, values):
                if not math.isfinite(v):
                    bar.close()
                    raise TrainingDiverged(
                        f"loss became {v} at step {s}; stopped. Last good checkpoint: "
                        f"{ckpt_path if ckpt_path.exists() else 'none'} (step {last_good})"
                    )
                spikes.add(s, v)
            running.extend(values)
            pending = []
        return running[-1] if running else float("nan")

    loss_fn.train()
    done, stopped = start, None
    for step in range(start, config.steps):
        if config.num_workers:
            ep = next(it)
        else:
            sampler.reseed(_step_seed(config, step, info))
            ep = sampler.sample()
        seed_everything(_step_seed(config, step, info, 1) % 2**31)
        x, mask = ep.x.to(device, non_blocking=True), ep.mask.to(device, non_blocking=True)
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        loss_fn.beta = (
            min(1.0, (step + 1) / config.kl_anneal_steps) if config.kl_anneal_steps else 1.0
        )
        norm = None
        if info.enabled:  # divide by the global item count / W: DDP's mean is the union's loss
            n_all = distributed.all_sum(mask.sum().to(torch.float32), info)
            norm = n_all.clamp(min=1) / info.world_size
        checked = step < start + config.validate_steps  # else checks off (never turned on)
        try:
            with contextlib.nullcontext() if checked else pyro.validation_enabled(False):
                loss = step_fn(x, mask, norm)
        except ValueError:  # e.g. invalid distribution parameters after a non-finite step
            flush()  # raises TrainingDiverged naming that step, if there was one
            raise
        pending.append((step, distributed.all_sum(loss.detach(), info) / info.world_size))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(loss_fn.parameters(), config.grad_clip)
        optimizer.step()
        done = step + 1
        bar.update(1)
        at_log = done % config.log_every == 0 or done == config.steps
        if at_log or done % config.checkpoint_every == 0:
            loss_val = flush()
        if at_log:  # every rank empties its running losses; the main one logs their mean
            mean_loss = sum(running) / len(running)
            running.clear()
        if main and at_log:
            rec = {
                "step": done,
                "loss": mean_loss,
                "lr": config.lr_at(step),
                "beta": loss_fn.beta,
                "wall_s": round(wall(), 3),
            }
            if done % config.val_every == 0 or done == config.steps:
                val = validation_loss(loss_fn, val_batches, device)
                rec["val_loss"] = val
                if val < best[0]:  # early stopping: keep the weights of the best validation
                    best = (val, done)
                    save_checkpoint(out / "best.pt", model, None, done, config.to_json(),
                                    {"wall_time_s": wall(), "val_loss": val,
                                     "device": str(device), "world_size": info.world_size,
                                     **before})
            _append_jsonl(metrics_path, rec)
            bar.set_postfix(loss=f"{rec['loss']:.2f}")
        if at_log and time_limit is not None and done < config.steps:
            late = torch.tensor(float(time.perf_counter() - t0 > time_limit), device=device)
            if distributed.all_sum(late, info).item() > 0:  # every rank stops at the same step
                stopped = f"time limit of {time_limit:g} s after step {done}"
        if main and (done % config.checkpoint_every == 0 or done == config.steps or stopped):
            save_checkpoint(
                ckpt_path,
                model,
                optimizer,
                done,
                config.to_json(),
                {"wall_time_s": wall(), "device": str(device), "world_size": info.world_size,
                 **before},
            )
            last_good = done
        if stopped:
            logger.warning("%s: stopped; --resume continues from %s", stopped, ckpt_path)
            break
    bar.close()
    if not main:
        return {}
    if val is None or stopped:
        val = validation_loss(loss_fn, val_batches, device)
    if spikes.count:
        logger.warning(
            "%d step(s) had a loss over %gx the median of the steps before (largest %.3g at "
            "step %d): a learning rate too high for this model? (docs/findings.md section 15)",
            spikes.count, spikes.factor, spikes.largest, spikes.at_step,
        )
    summary = {
        "model": config.model,
        "model_config": model.config(),
        "protocol": config.protocol,
        "steps": done,
        "planned_steps": config.steps,
        "stopped_early": stopped,
        "episodes_per_step": config.batch_size * info.world_size,
        "world_size": info.world_size,
        "final_train_loss_nats_per_item": loss_val,
        "final_val_loss_nats_per_item": val,
        "best_val_loss_nats_per_item": best[0] if best[1] else None,
        "best_step": best[1] or None,
        "loss_spikes": spikes.record(),
        "wall_time_s": round(wall(), 2),
        "device": str(device),
        **before,
        "peak_device_memory_bytes": (
            torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        ),
        "train_classes": train_ds.num_classes,
        "val_classes": val_ds.num_classes,
        "versions": versions(),
        "config": config.to_json(),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
