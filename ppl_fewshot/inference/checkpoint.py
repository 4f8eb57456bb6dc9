"""Checkpoints: weights, optimizer state, configuration and versions, written atomically.

A checkpoint is a plain dictionary of tensors and strings saved with ``torch.save`` and
read back with ``torch.load(weights_only=True)``: modules are never pickled, so a
checkpoint can be loaded without trusting arbitrary code. Writes go to a temporary
file in the same folder that is then renamed over the target, so a crash never
leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from ppl_fewshot.models import URN_SETTINGS, FewShotModel, build, default_config
from ppl_fewshot.utils import atomic_write_bytes, versions

logger = logging.getLogger(__name__)

FORMAT = "ppl_fewshot.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not one of ours."""


def save_checkpoint(
    path: str | Path,
    model: FewShotModel,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    train_config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Save ``model`` (by registry name + config + state_dict) and training state atomically."""
    state = {
        "format": FORMAT,
        "model_name": model.name,
        "model_config": json.dumps(model.config(), sort_keys=True),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "train_config": json.dumps(train_config or {}, sort_keys=True),
        "versions": json.dumps(versions(), sort_keys=True),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    atomic_write_bytes(path, lambda fh: torch.save(state, fh))
    logger.info("saved checkpoint %s (step %d)", path, step)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; JSON fields are decoded.

    Raises :class:`CheckpointError` with a one-line message for a missing, truncated or
    foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise CheckpointError(
            f"checkpoint {path} could not be read (truncated or not a ppl_fewshot checkpoint): "
            f"{type(err).__name__}"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ppl_fewshot checkpoint (format {FORMAT})")
    for key in ("model_config", "train_config", "versions", "extra"):
        state[key] = json.loads(state[key])
    return state


def export_checkpoint(
    src: str | Path, dst: str | Path, dtype: torch.dtype | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Copy a checkpoint without its optimizer state (a small file for the model zoo).

    ``dtype=torch.float16`` stores floating-point weights at half precision (half the
    file); :func:`model_from_checkpoint` loads them back into the model's float32
    parameters, so only the rounding of the weights differs (the export records it in
    ``extra["export_dtype"]``). The budget of the runs a continued run started from
    (:func:`earlier_runs`) is written into the copy, so it survives without their files.
    ``settings`` overrides model settings that leave the weights as they are (e.g. a Pólya
    urn's ``urn_concentration``, any model; recorded in ``extra["export_settings"]``); the copy
    is removed and :class:`CheckpointError` raised when the weights no longer fit.
    """
    state = load_checkpoint(src)
    runs = earlier_runs(state)  # the zoo file travels without the runs it continued
    if runs:
        state["extra"] = {**state["extra"], "earlier_runs": runs}
    if dtype is not None:
        state["state_dict"] = {k: v.to(dtype) if v.is_floating_point() else v
                               for k, v in state["state_dict"].items()}
        state["extra"] = {**state["extra"], "export_dtype": str(dtype).replace("torch.", "")}
    if settings:
        state["model_config"] = {**state["model_config"], **settings}
        state["extra"] = {**state["extra"], "export_settings": dict(settings)}
    for key in ("model_config", "train_config", "versions", "extra"):
        state[key] = json.dumps(state[key], sort_keys=True)
    state["optimizer"] = None
    atomic_write_bytes(dst, lambda fh: torch.save(state, fh))
    if settings:
        try:
            model_from_checkpoint(dst)
        except (CheckpointError, ValueError) as err:
            Path(dst).unlink()
            raise CheckpointError(f"settings {settings} do not fit {src}: {err}") from err
    return load_checkpoint(dst)


def earlier_runs(state: dict[str, Any], _depth: int = 0) -> list[dict[str, Any]]:
    """The training runs whose weights the run of ``state`` started from, oldest first.

    A run started with ``--init-from`` records them in ``extra["earlier_runs"]``; for a
    checkpoint from before that record (or a ``{"train_config": ...}`` alone), the chain of
    ``train_config["init_from"]`` is followed through the files that still exist, and an
    entry with ``steps`` None marks where it breaks. Each entry is ``{"checkpoint", "steps",
    "wall_time_s", "device"}``: what a budget of "N steps" leaves out for a continued run.
    """
    extra = state.get("extra") or {}
    if "earlier_runs" in extra:
        return [dict(r) for r in extra["earlier_runs"]]
    src = (state.get("train_config") or {}).get("init_from")
    if not src:
        return []
    entry: dict[str, Any] = {"checkpoint": str(src), "steps": None, "wall_time_s": None,
                             "device": None}
    try:
        if _depth >= 50:  # a chain this long is a cycle
            raise CheckpointError(f"init_from chain through {src} does not end")
        prev = load_checkpoint(src)
    except (OSError, CheckpointError) as e:
        logger.info("budget before %s unknown: %s", src, e)
        return [entry]
    return earlier_runs(prev, _depth + 1) + [run_entry(src, prev)]


def run_entry(path: str | Path, state: dict[str, Any]) -> dict[str, Any]:
    """One entry of :func:`earlier_runs`: the run whose checkpoint ``state`` (at ``path``) is."""
    extra = state.get("extra") or {}
    return {"checkpoint": str(path), "steps": int(state["step"]),
            "wall_time_s": extra.get("wall_time_s"), "device": extra.get("device")}


def training_budget(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's budget: its run's ``steps`` / ``wall_time_s`` / ``device``, and for a
    continued run ``earlier_runs`` with ``steps_in_all`` / ``wall_time_s_in_all`` (None when an
    earlier run's length is unknown)."""
    extra = {k: v for k, v in (state.get("extra") or {}).items() if k != "earlier_runs"}
    budget = {"steps": state["step"], "wall_time_s": extra.get("wall_time_s"),
              "device": extra.get("device"), **extra}
    runs = earlier_runs(state)
    if runs:
        steps = [r["steps"] for r in runs]
        walls = [r["wall_time_s"] for r in runs] + [budget["wall_time_s"]]
        budget["earlier_runs"] = runs
        budget["steps_in_all"] = (None if None in steps
                                  else int(state["step"]) + sum(int(n) for n in steps))
        budget["wall_time_s_in_all"] = (None if None in walls
                                        else round(sum(float(w) for w in walls), 2))
    return budget


def model_from_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[FewShotModel, dict[str, Any]]:
    """Rebuild the model of a checkpoint through the registry and load its weights."""
    state = load_checkpoint(path, map_location=device)
    config = dict(state["model_config"])
    if "event_shape" in config:
        config["event_shape"] = tuple(config["event_shape"])
    try:
        model = build(state["model_name"], **config)
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} does not match model code: {err}") from err
    model.to(device)
    model.eval()
    return model, state


def checkpoint_settings(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The model name of a checkpoint and those of its settings that differ from the name's
    defaults (:func:`ppl_fewshot.models.default_config`), urn settings included.

    ``ppl-fewshot train --init-from`` takes them as the run's settings, under its own ``--set``:
    a continued run builds the checkpoint's model without the settings being repeated.
    """
    state = load_checkpoint(path)
    name, config = state["model_name"], state["model_config"]
    defaults = json.loads(json.dumps(default_config(name), default=list))
    return name, {k: v for k, v in json.loads(json.dumps(config, default=list)).items()
                  if k not in defaults or defaults[k] != v}


def warm_start(model: FewShotModel, path: str | Path) -> dict[str, Any]:
    """Load the weights of checkpoint ``path`` into ``model`` and return the checkpoint.

    The checkpoint must hold the same model name and settings, but for an urn's
    (:data:`ppl_fewshot.models.URN_SETTINGS`), which hold no weights; else
    :class:`CheckpointError` (``ppl-fewshot train --init-from``).
    """
    src, state = model_from_checkpoint(path)
    nets = [{k: v for k, v in m.config().items() if k not in URN_SETTINGS} for m in (src, model)]
    if src.name != model.name or nets[0] != nets[1]:
        raise CheckpointError(
            f"--init-from {path} holds {src.name} {src.config()}, not {model.name} {model.config()}"
        )
    model.load_state_dict(src.state_dict())
    logger.info("weights from %s (step %d)", path, state["step"])
    return state


def weight_difference(a: str | Path, b: str | Path) -> dict[str, Any]:
    """How far the weights of checkpoints ``a`` and ``b`` are apart, tensor by tensor.

    The test of a reproduction: a zoo file's card gives the command that trained it, and a
    rerun on the same kind of CPU, threads and code gives ``identical`` weights (the trainer
    draws everything from the seed; another thread count moves the weights by about 1e-6
    within 30 steps, and such differences grow over training). Both must hold
    the same model name and tensor names and shapes, else :class:`CheckpointError`. Returns
    ``identical``, ``max_abs`` (the largest absolute difference of any weight), ``largest``
    (that tensor's name), ``tensors_differing`` / ``tensors``, and each file's ``step``.
    """
    states = [load_checkpoint(p) for p in (a, b)]
    sds = [s["state_dict"] for s in states]
    if states[0]["model_name"] != states[1]["model_name"] or sds[0].keys() != sds[1].keys():
        raise CheckpointError(f"{a} and {b} do not hold the same model's weights")
    diffs = {}
    for name, x in sds[0].items():
        y = sds[1][name]
        if x.shape != y.shape:
            raise CheckpointError(f"{name} is {tuple(x.shape)} in {a} but {tuple(y.shape)} in {b}")
        diffs[name] = (x.double() - y.double()).abs().max().item() if x.numel() else 0.0
    largest = max(diffs, key=diffs.__getitem__)
    return {"identical": diffs[largest] == 0.0, "max_abs": diffs[largest],
            "largest": largest, "tensors_differing": sum(d > 0 for d in diffs.values()),
            "tensors": len(diffs), "steps": [int(s["step"]) for s in states]}
