"""The training engine: files, exact resume, NaN guard, atomic checkpoints."""

from __future__ import annotations

import dataclasses
import json
import os

import pyro
import pytest
import torch
from pyro.infer.util import is_validation_enabled

from ppl_fewshot.inference import (
    CheckpointError,
    TrainConfig,
    TrainingDiverged,
    load_checkpoint,
    model_from_checkpoint,
    train,
    weight_difference,
)
from ppl_fewshot.inference import trainer as trainer_mod
from tests.conftest import make_prototype_classes

DATA = (make_prototype_classes(10, 10, seed=1), make_prototype_classes(3, 10, seed=2))


def cfg(**kw) -> TrainConfig:
    base = dict(
        model="vae-small",
        protocol="synthetic",
        steps=20,
        batch_size=4,
        set_size=3,
        val_every=10,
        val_batches=1,
        checkpoint_every=10,
        log_every=5,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_everything(tmp_path) -> None:
    summary = train(cfg(), tmp_path / "run", data=DATA, progress=False)
    run = tmp_path / "run"
    for name in ("checkpoint.pt", "config.json", "metrics.jsonl", "summary.json"):
        assert (run / name).exists(), name
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [5, 10, 15, 20]
    assert "val_loss" in recs[1] and "val_loss" in recs[3]
    assert summary["steps"] == 20 and summary["final_val_loss_nats_per_item"] > 0
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 20 and TrainConfig.from_json(state["train_config"]) == cfg()
    model, _ = model_from_checkpoint(run / "checkpoint.pt")
    assert model.name == "vae-small"
    vals = [(r["val_loss"], r["step"]) for r in recs if "val_loss" in r]
    best = load_checkpoint(run / "best.pt")
    assert (best["extra"]["val_loss"], best["step"]) == min(vals)
    assert best["optimizer"] is None and summary["best_step"] == min(vals)[1]


def test_refuses_to_overwrite_and_to_resume_nothing(tmp_path) -> None:
    train(cfg(steps=5, checkpoint_every=5), tmp_path / "r", data=DATA, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg(steps=5, checkpoint_every=5), tmp_path / "r", data=DATA, progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(cfg(), tmp_path / "empty", resume=True, data=DATA, progress=False)


def test_one_trainer_per_folder(tmp_path) -> None:
    """A second trainer (here: a --resume while the run holds its lock) is refused."""
    from ppl_fewshot.utils import RunInProgressError, folder_lock

    run = tmp_path / "r"
    train(cfg(steps=5, checkpoint_every=5), run, data=DATA, progress=False)
    before = (run / "metrics.jsonl").read_text()
    with folder_lock(run):  # what the first trainer holds while it runs
        assert (run / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(RunInProgressError, match=f"pid {os.getpid()}"):
            train(cfg(steps=5, checkpoint_every=5), run, resume=True, data=DATA,
                  progress=False)
        with pytest.raises(RunInProgressError):
            train(cfg(steps=5), run, data=DATA, progress=False)
    assert (run / "metrics.jsonl").read_text() == before  # nothing written by the refused
    summary = train(cfg(steps=5, checkpoint_every=5), run, resume=True, data=DATA,
                    progress=False)  # the lock went with the block
    assert summary["steps"] == 5


def test_folder_lock_removes_a_folder_it_created_and_left_empty(tmp_path) -> None:
    from ppl_fewshot.utils import folder_lock

    with pytest.raises(KeyError):
        with folder_lock(tmp_path / "new" / "run"):
            raise KeyError("failed before writing anything")
    assert not (tmp_path / "new").exists()
    with folder_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "f.txt").write_text("x")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [".lock", "f.txt"]
    (tmp_path / "old").mkdir()
    with folder_lock(tmp_path / "old"):
        pass
    assert (tmp_path / "old").is_dir()  # it existed before: left alone


def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch) -> None:
    full = train(cfg(), tmp_path / "full", data=DATA, progress=False)
    real_save = trainer_mod.save_checkpoint

    def crash_after_first(path, model, opt, step, *a, **k):
        real_save(path, model, opt, step, *a, **k)
        if step == 10 and str(path).endswith("checkpoint.pt"):
            raise KeyboardInterrupt  # the machine dies right after the step-10 checkpoint

    monkeypatch.setattr(trainer_mod, "save_checkpoint", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(), tmp_path / "cut", data=DATA, progress=False)
    monkeypatch.setattr(trainer_mod, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 10
    resumed = train(cfg(), tmp_path / "cut", resume=True, data=DATA, progress=False)
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["state_dict"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert resumed["final_train_loss_nats_per_item"] == pytest.approx(
        full["final_train_loss_nats_per_item"], rel=1e-5
    )
    with pytest.raises(ValueError, match="same settings"):
        train(cfg(steps=30), tmp_path / "cut", resume=True, data=DATA, progress=False)


def test_validation_and_checkpoints_leave_the_training_unchanged(tmp_path) -> None:
    """Validation draws from the global RNG and checkpoints read the losses back; neither may
    change the trajectory (every step is reseeded from (seed, step)), so runs of one recipe and
    seed agree bit for bit whatever their --val-every and --checkpoint-every."""
    runs = {(ve, ce): tmp_path / f"v{ve}-c{ce}" for ve, ce in ((20, 20), (3, 7), (1, 2))}
    for (ve, ce), out in runs.items():
        train(cfg(val_every=ve, checkpoint_every=ce), out, data=DATA, progress=False)
    first, *others = (out / "checkpoint.pt" for out in runs.values())
    for other in others:
        same = weight_difference(first, other)
        assert same["identical"] and same["max_abs"] == 0.0 and same["tensors_differing"] == 0
        assert same["steps"] == [20, 20]
    other_seed = train(cfg(seed=1), tmp_path / "seed1", data=DATA, progress=False)
    assert other_seed["final_train_loss_nats_per_item"] != pytest.approx(
        json.loads((runs[20, 20] / "summary.json").read_text())["final_train_loss_nats_per_item"])
    apart = weight_difference(first, tmp_path / "seed1" / "checkpoint.pt")
    assert not apart["identical"] and apart["max_abs"] > 0
    assert 0 < apart["tensors_differing"] <= apart["tensors"]
    ours, theirs = (load_checkpoint(p)["state_dict"]
                    for p in (first, tmp_path / "seed1" / "checkpoint.pt"))
    assert apart["max_abs"] == pytest.approx(max(
        (v.double() - theirs[k].double()).abs().max().item() for k, v in ours.items()
        if v.numel()))
    train(cfg(model="vae", steps=1, checkpoint_every=1), tmp_path / "vae", data=DATA,
          progress=False)
    with pytest.raises(CheckpointError, match="same model"):
        weight_difference(first, tmp_path / "vae" / "checkpoint.pt")


def test_time_limit_stops_with_a_checkpoint_that_resumes(tmp_path, monkeypatch) -> None:
    clock = {"t": 0.0}

    def tick() -> float:  # every reading of the clock is one more second
        clock["t"] += 1.0
        return clock["t"]

    monkeypatch.setattr(trainer_mod.time, "perf_counter", tick)
    with pytest.raises(ValueError, match="time_limit"):
        train(cfg(), tmp_path / "bad", data=DATA, progress=False, time_limit=0)
    cut = train(cfg(), tmp_path / "cut", data=DATA, progress=False, time_limit=1.5)
    assert cut["steps"] == 5 and cut["planned_steps"] == 20  # first log step after the limit
    assert "time limit" in cut["stopped_early"] and cut["final_val_loss_nats_per_item"] > 0
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 5
    monkeypatch.undo()
    resumed = train(cfg(), tmp_path / "cut", resume=True, data=DATA, progress=False)
    train(cfg(), tmp_path / "full", data=DATA, progress=False)
    assert resumed["steps"] == 20 and resumed["stopped_early"] is None
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["state_dict"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_binarization_override_reaches_the_loss(tmp_path, monkeypatch) -> None:
    """``binarization="none"`` feeds grey levels (training and validation); the default
    keeps the data's own binarization (here fixed: 100/255 < 0.5 -> no ink)."""
    grey = make_prototype_classes(4, 5, seed=3)
    grey.images[grey.images == 255] = 100
    data = (grey, grey.subset([0, 1]))
    seen: list[set] = []
    real = trainer_mod.ELBOLoss.forward

    def spy(self, x, mask=None, normalizer=None):
        seen.append(set(x.unique().tolist()))
        return real(self, x, mask, normalizer)

    monkeypatch.setattr(trainer_mod.ELBOLoss, "forward", spy)
    train(cfg(steps=2, val_every=2, checkpoint_every=2), tmp_path / "a", data=data,
          progress=False)
    assert set().union(*seen) == {0.0}
    seen.clear()
    train(cfg(steps=2, val_every=2, checkpoint_every=2, binarization="none"), tmp_path / "b",
          data=data, progress=False)
    values = sorted(set().union(*seen))
    assert values == [0.0, pytest.approx(100 / 255)] and len(seen) >= 3


def test_objective_weights_reach_training_but_not_validation(tmp_path, monkeypatch) -> None:
    """Training steps use the configured position weights and singleton term; validation
    losses are the plain per-item bound; the settings survive the checkpoint's JSON."""
    seen: list[tuple[bool, tuple, float]] = []
    real = trainer_mod.ELBOLoss.forward

    def spy(self, x, mask=None, normalizer=None):
        seen.append((self.training, self.position_weights, self.singleton_weight))
        return real(self, x, mask, normalizer)

    monkeypatch.setattr(trainer_mod.ELBOLoss, "forward", spy)
    c = cfg(model="gmn-small", steps=2, val_every=2, checkpoint_every=2,
            position_weights=(4.0, 1.0), singleton_weight=0.5,
            model_overrides={"z_dim": 4, "state_dim": 16, "channels": 4, "hidden": 32})
    train(c, tmp_path / "run", data=DATA, progress=False)
    assert set(seen) == {(True, (4.0, 1.0), 0.5), (False, (), 0.0)}
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert TrainConfig.from_json(json.loads(json.dumps(state["train_config"]))) == c


@pytest.mark.parametrize("objective", ["iwae", "iwae-dreg"])
def test_importance_weighted_objectives_train_and_lower_the_loss(tmp_path, objective) -> None:
    """A short run with either importance weighted objective on the VAE: a lower held-out
    bound at the end than at the first validation."""
    summary = train(cfg(objective=objective, num_particles=4, steps=30, val_every=5),
                    tmp_path / "run", data=DATA, progress=False)
    recs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    vals = [r["val_loss"] for r in recs if "val_loss" in r]
    assert len(vals) == 6 and vals[-1] < vals[0]
    assert summary["final_val_loss_nats_per_item"] == pytest.approx(vals[-1])


def test_augmentation_override_reaches_the_loader(monkeypatch) -> None:
    """``augmentation`` replaces the protocol's training augmentations (same name, the
    rest of the protocol unchanged); ``None`` keeps them."""
    seen = []

    def fake_load_split(protocol, split, data_dir=None):
        seen.append(protocol)
        return make_prototype_classes(12, 4, seed=0)

    monkeypatch.setattr(trainer_mod, "load_split", fake_load_split)
    trainer_mod.load_training_data(cfg(protocol="ns28", val_classes=2))
    trainer_mod.load_training_data(cfg(protocol="ns28", val_classes=2,
                                       augmentation=("rot90", "flip", "dilate")))
    trainer_mod.load_training_data(cfg(protocol="ns28", val_classes=2, augmentation=()))
    assert [p.augmentation for p in seen] == [("rot90", "flip"), ("rot90", "flip", "dilate"),
                                              ()]
    assert {p.name for p in seen} == {"ns28"}
    assert seen[1] == dataclasses.replace(seen[0], augmentation=("rot90", "flip", "dilate"))
    c = cfg(augmentation=("dilate",))
    assert TrainConfig.from_json(json.loads(json.dumps(c.to_json()))) == c


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch) -> None:
    real_forward = trainer_mod.ELBOLoss.forward
    calls = {"n": 0}

    def poisoned(self, x, mask=None, normalizer=None):
        calls["n"] += 1
        loss = real_forward(self, x, mask, normalizer)
        return loss * float("nan") if calls["n"] == 13 else loss

    monkeypatch.setattr(trainer_mod.ELBOLoss, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="at step 1[0-9].*step 10"):
        train(cfg(val_every=100), tmp_path / "r", data=DATA, progress=False)
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert state["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_loss_spikes_are_counted_in_the_summary(tmp_path, monkeypatch, caplog) -> None:
    clean = train(cfg(steps=40, val_every=100), tmp_path / "clean", data=DATA, progress=False)
    assert clean["loss_spikes"]["count"] == 0 and clean["loss_spikes"]["largest"] is None
    real_forward = trainer_mod.ELBOLoss.forward
    calls = {"n": 0}

    def spiky(self, x, mask=None, normalizer=None):
        calls["n"] += 1
        loss = real_forward(self, x, mask, normalizer)
        return loss * 1000 if calls["n"] == 30 else loss  # the 30th step (step 29) spikes

    monkeypatch.setattr(trainer_mod.ELBOLoss, "forward", spiky)
    with caplog.at_level("WARNING", logger=trainer_mod.__name__):
        summary = train(cfg(steps=40, val_every=100), tmp_path / "r", data=DATA, progress=False)
    spikes = summary["loss_spikes"]
    assert (spikes["count"], spikes["at_step"]) == (1, 29) and spikes["largest"] > 1e4
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["loss_spikes"] == spikes
    assert "1 step(s) had a loss over 10x the median" in caplog.text


def test_truncated_checkpoint_is_a_clear_error(tmp_path) -> None:
    train(cfg(steps=5, checkpoint_every=5), tmp_path / "r", data=DATA, progress=False)
    blob = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "kw",
    [
        {"steps": 0},
        {"batch_size": -1},
        {"set_size": (3, 0)},
        {"lr": ()},
        {"objective": "x"},
        {"sampler": "x"},
        {"binarization": "grey"},
        {"augmentation": ("rot90", "blur")},
        {"position_weights": (2.0, 0.0)},
        {"position_weights": (float("inf"),)},
        {"position_weights": (2.0,), "objective": "iwae", "num_particles": 2},
        {"singleton_weight": -0.5},
    ],
)
def test_bad_config(kw) -> None:
    with pytest.raises(ValueError):
        cfg(**kw)


def test_lr_schedule_phases() -> None:
    c = cfg(steps=90, lr=(1e-3, 3e-4, 1e-4))
    assert [c.lr_at(s) for s in (0, 29, 30, 59, 60, 89)] == [1e-3, 1e-3, 3e-4, 3e-4, 1e-4, 1e-4]


def test_export_drops_the_optimizer(tmp_path) -> None:
    from ppl_fewshot.inference.checkpoint import export_checkpoint

    train(cfg(steps=2, checkpoint_every=2), tmp_path / "r", data=DATA, progress=False)
    small = export_checkpoint(tmp_path / "r" / "checkpoint.pt", tmp_path / "zoo.pt")
    big = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert small["optimizer"] is None and big["optimizer"] is not None
    assert small["step"] == 2 and small["train_config"] == big["train_config"]
    assert (tmp_path / "zoo.pt").stat().st_size < (tmp_path / "r" / "checkpoint.pt").stat().st_size
    model, _ = model_from_checkpoint(tmp_path / "zoo.pt")
    for k, v in model.state_dict().items():
        assert torch.equal(v, big["state_dict"][k])
    # half-precision export: half the weight bytes, float32 model, weights rounded only
    half = export_checkpoint(tmp_path / "r" / "checkpoint.pt", tmp_path / "zoo16.pt",
                             dtype=torch.float16)
    assert half["extra"]["export_dtype"] == "float16"
    assert (tmp_path / "zoo16.pt").stat().st_size < 0.7 * (tmp_path / "zoo.pt").stat().st_size
    m16, _ = model_from_checkpoint(tmp_path / "zoo16.pt")
    for k, v in m16.state_dict().items():
        ref = big["state_dict"][k]
        assert v.dtype == ref.dtype
        if ref.is_floating_point():
            assert torch.equal(v, ref.half().to(v.dtype))
            assert torch.allclose(v, ref, rtol=1e-3, atol=1e-4)


def test_atomic_writes_never_replace_special_files(tmp_path) -> None:
    import os

    from ppl_fewshot.utils import atomic_write_text

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        atomic_write_text(fifo, "x")
    with pytest.raises(ValueError, match="not a regular file"):
        atomic_write_text(tmp_path, "x")
    assert fifo.exists() and not fifo.is_file() and tmp_path.is_dir()
    atomic_write_text(tmp_path / "f.txt", "ok")
    assert (tmp_path / "f.txt").read_text() == "ok" and len(list(tmp_path.iterdir())) == 2


def test_init_from_starts_at_the_given_weights_with_a_new_schedule(tmp_path) -> None:
    train(cfg(steps=5, checkpoint_every=5), tmp_path / "a", data=DATA, progress=False)
    src = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["state_dict"]
    warm = cfg(steps=1, lr=(1e-12,), init_from=str(tmp_path / "a" / "checkpoint.pt"))
    train(warm, tmp_path / "b", data=DATA, progress=False)
    got = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert got["step"] == 1 and TrainConfig.from_json(got["train_config"]).init_from
    for k, v in src.items():
        torch.testing.assert_close(got["state_dict"][k], v, atol=1e-6, rtol=0)
    train(cfg(steps=1, lr=(1e-12,)), tmp_path / "c", data=DATA, progress=False)
    cold = load_checkpoint(tmp_path / "c" / "checkpoint.pt")  # same seed, no --init-from
    assert any(not torch.allclose(cold["state_dict"][k], v) for k, v in src.items())
    bad = cfg(steps=1, model_overrides={"z_dim": 8}, init_from=warm.init_from)
    with pytest.raises(CheckpointError, match="--init-from"):
        train(bad, tmp_path / "d", data=DATA, progress=False)
    # an urn holds no weights: the same weights may continue with one
    urn = cfg(steps=1, lr=(1e-12,), model_overrides={"urn_concentration": 3.0},
              init_from=warm.init_from)
    train(urn, tmp_path / "e", data=DATA, progress=False)
    got = load_checkpoint(tmp_path / "e" / "checkpoint.pt")
    assert got["model_config"]["urn_concentration"] == 3.0


def test_a_continued_run_carries_the_budget_of_the_runs_before_it(tmp_path) -> None:
    """Three chained runs (5 + 3 + 2 steps): the last checkpoint's budget adds up to 10."""
    from ppl_fewshot.inference.checkpoint import earlier_runs, training_budget
    from ppl_fewshot.inference.report import budget_text

    train(cfg(steps=5, checkpoint_every=5), tmp_path / "a", data=DATA, progress=False)
    train(cfg(steps=3, checkpoint_every=3, init_from=str(tmp_path / "a" / "checkpoint.pt")),
          tmp_path / "b", data=DATA, progress=False)
    c = train(cfg(steps=2, checkpoint_every=2, init_from=str(tmp_path / "b" / "checkpoint.pt")),
              tmp_path / "c", data=DATA, progress=False)
    state = load_checkpoint(tmp_path / "c" / "checkpoint.pt")
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert [r["steps"] for r in c["earlier_runs"]] == [5, 3]
    assert [r["checkpoint"] for r in state["extra"]["earlier_runs"]] == [
        str(tmp_path / "a" / "checkpoint.pt"), str(tmp_path / "b" / "checkpoint.pt")]
    budget = training_budget(state)
    walls = [a["extra"]["wall_time_s"], b["extra"]["wall_time_s"], state["extra"]["wall_time_s"]]
    assert budget["steps"] == 2 and budget["steps_in_all"] == 10
    assert budget["wall_time_s_in_all"] == pytest.approx(sum(walls), abs=0.01)
    assert "after 2 earlier run(s): 10 steps" in budget_text(budget)
    assert "earlier_runs" not in load_checkpoint(tmp_path / "a" / "checkpoint.pt")["extra"]
    # a checkpoint from before the record, with the files of its chain still there
    old_style = dict(state, extra={k: v for k, v in state["extra"].items() if k != "earlier_runs"})
    assert [r["steps"] for r in earlier_runs(old_style)] == [5, 3]
    from ppl_fewshot.inference.checkpoint import export_checkpoint, save_checkpoint

    model, _ = model_from_checkpoint(tmp_path / "c" / "checkpoint.pt")
    save_checkpoint(tmp_path / "old.pt", model, None, 2, state["train_config"], old_style["extra"])
    exported = export_checkpoint(tmp_path / "old.pt", tmp_path / "zoo.pt")
    assert training_budget(exported)["steps_in_all"] == 10
    # recorded at training time: the budget survives the earlier files (a zoo export)
    for run in ("a", "b"):
        for f in (tmp_path / run).iterdir():
            f.unlink()
    assert training_budget(load_checkpoint(tmp_path / "c" / "checkpoint.pt"))["steps_in_all"] == 10
    # a checkpoint from before the record: the init_from chain is followed while files exist
    del state["extra"]["earlier_runs"]
    assert earlier_runs(state) == [{"checkpoint": str(tmp_path / "b" / "checkpoint.pt"),
                                    "steps": None, "wall_time_s": None, "device": None}]
    broken = training_budget(state)
    assert broken["steps_in_all"] is None and "unknown length" in budget_text(broken)


def test_argument_checks_only_in_the_first_validate_steps(tmp_path, monkeypatch) -> None:
    real_forward = trainer_mod.ELBOLoss.forward
    seen: list[bool] = []

    def spy(self, x, mask=None, normalizer=None):
        if self.training:  # training steps, not the validation batches
            seen.append(is_validation_enabled())
        return real_forward(self, x, mask, normalizer)

    monkeypatch.setattr(trainer_mod.ELBOLoss, "forward", spy)
    assert is_validation_enabled()
    train(cfg(steps=8, validate_steps=3), tmp_path / "r", data=DATA, progress=False)
    assert seen == [True] * 3 + [False] * 5
    assert is_validation_enabled()  # restored after the run
    seen.clear()
    with pyro.validation_enabled(False):  # a user's global choice is never overridden
        train(cfg(steps=4, validate_steps=3), tmp_path / "s", data=DATA, progress=False)
    assert seen == [False] * 4


def test_weight_decay_is_decoupled_adamw(tmp_path) -> None:
    """After one step from the same weights and batch, AdamW differs from Adam by exactly
    ``-lr * weight_decay * w0`` (the gradient step is the same); 0 keeps plain Adam."""
    from ppl_fewshot.models import build
    from ppl_fewshot.utils import seed_everything

    lr, wd = 1e-2, 3.0
    runs = {}
    for decay in (0.0, wd):
        train(cfg(steps=1, lr=(lr,), grad_clip=0.0, weight_decay=decay, checkpoint_every=1),
              tmp_path / str(decay), data=DATA, progress=False)
        state = load_checkpoint(tmp_path / str(decay) / "checkpoint.pt")
        runs[decay] = state["state_dict"]
        assert len(state["optimizer"]["param_groups"]) == 1
        assert state["optimizer"]["param_groups"][0]["weight_decay"] == decay
    seed_everything(0)  # the trainer's initial weights: the seed only
    w0 = build("vae-small").state_dict()
    moved = 0
    for k, v in runs[wd].items():
        assert torch.allclose(v - runs[0.0][k], -lr * wd * w0[k], atol=1e-6), k
        moved += int(bool((w0[k] != 0).any()))
    assert moved > 0
    with pytest.raises(ValueError, match="weight_decay"):
        cfg(weight_decay=-1.0)


def test_checkpoints_record_what_decides_the_bits(tmp_path, monkeypatch) -> None:
    """The thread count, torch's CPU instruction set, the machine and the library's commit
    change a run's weights (sections 45-46), so every checkpoint records them with the package
    versions."""
    import subprocess

    from ppl_fewshot import utils

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train(cfg(steps=1, checkpoint_every=1), tmp_path / "r", data=DATA, progress=False)
    finally:
        torch.set_num_threads(threads)
    rec = load_checkpoint(tmp_path / "r" / "checkpoint.pt")["versions"]
    assert rec["threads"] == "1"
    assert rec["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert rec["cpu"] == utils.cpu_model() and rec["cpu"].strip()
    head = subprocess.run(["git", "-C", os.path.dirname(utils.__file__), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode == 0:  # run from a checkout (as in CI): the commit, maybe "+dirty"
        assert rec["ppl_fewshot_commit"].split("+")[0] == head.stdout.strip()
        assert rec["ppl_fewshot_commit"].removeprefix(head.stdout.strip()) in ("", "+dirty")

    def no_git(*args, **kw):
        raise FileNotFoundError("git")

    first = utils.source_commit()
    monkeypatch.setattr(utils.subprocess, "run", no_git)
    try:  # read once per process: a checkout that changes during a run does not change it
        assert utils.source_commit() == first
        utils.source_commit.cache_clear()
        assert utils.source_commit() is None and "ppl_fewshot_commit" not in utils.versions()
    finally:
        utils.source_commit.cache_clear()
