"""Where an evaluation's episodes and tasks come from: the split, and the cached bank.

:func:`eval_split` gives the protocol's test classes or, for a checkpoint, the classes it
trained on or held out for validation; :func:`test_bank` the fixed, seeded episode bank
drawn from them, cached on disk so that every model is scored on the very same episodes;
:func:`training_class_overlap` which of those classes a checkpoint trained on when it was
trained under another protocol (``ns28`` pools both Omniglot sets, so most of ``gmn28``'s
test characters are among its training classes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

from ppl_fewshot.data import (
    ClassDataset,
    Episode,
    base_class_name,
    cache_dir,
    episode_bank,
    load_bank,
    load_split,
    original_classes,
    save_bank,
)

logger = logging.getLogger(__name__)

SPLITS = ("test", "train", "val")  # ``evaluate --split``: where the evaluation's classes come from


def test_bank(protocol: str, classes: int, set_size: int, episodes: int, sampler: str,
              seed: int, data_dir: str | None, dataset: ClassDataset | None = None,
              split: str = "test") -> tuple[Episode, Path]:
    """The fixed, seeded bank of test episodes, cached on disk so every model sees the same.

    ``split`` other than ``"test"`` (see :func:`eval_split`) needs ``dataset``; its bank is
    cached under a digest of the dataset's class names, since which training classes a
    checkpoint held out depends on its training run.
    """
    if split == "test":
        tag = "test"
    elif dataset is None:
        raise ValueError(f"a bank of the {split!r} split needs its dataset")
    else:
        digest = hashlib.sha256("\n".join(dataset.class_names).encode()).hexdigest()[:12]
        tag = f"{split}-{digest}"
    path = (cache_dir() / "banks" /
            f"{protocol}-{tag}-C{classes}-T{set_size}-E{episodes}-{sampler}-s{seed}.pt")
    if path.exists():
        return load_bank(path), path
    ds = dataset if dataset is not None else load_split(protocol, "test", data_dir=data_dir)
    bank = episode_bank(ds, episodes, set_size, classes, sampler=sampler, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_bank(bank, path)
    return bank, path


def eval_split(split: str, protocol: str, train_config: dict[str, Any] | None,
               data_dir: str | None) -> ClassDataset:
    """The classes an evaluation draws from, as a ``ClassDataset``.

    ``"test"``: the protocol's test classes. ``"train"`` / ``"val"``: the classes a
    checkpoint's training run trained on / held out for validation (``train_config=None``:
    a baseline fitted on all of the protocol's training classes), rebuilt from its
    ``train_config`` exactly as the trainer split them (same protocol, augmentation,
    ``train_classes``, ``val_classes`` and seed; :func:`~ppl_fewshot.inference.trainer.
    load_training_data`), keeping of augmented classes (``ns28``'s rotations and flips)
    only the ones as drawn (:func:`~ppl_fewshot.data.original_classes`), like the test
    classes. Scored beside ``"test"``, they separate what a model memorized from what it
    generalizes to new characters of known alphabets and to new alphabets.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    if split == "test":
        return load_split(protocol, "test", data_dir=data_dir)
    from ppl_fewshot.inference import TrainConfig
    from ppl_fewshot.inference.trainer import load_training_data

    if train_config is None:  # a baseline fitted on every training class of the protocol
        if split == "val":
            raise ValueError("--split val: this model is fitted on every training class of "
                             f"{protocol}; none is held out")
        ds = original_classes(load_split(protocol, "train", data_dir=data_dir))
        ds.name = f"{protocol}/train"
        return ds
    if "steps" not in train_config:
        raise ValueError(f"--split {split} needs a --checkpoint written by train (its training "
                         "configuration says which classes it trained on)")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig.from_json({**{k: v for k, v in train_config.items() if k in fields},
                                 "data_dir": data_dir})
    if cfg.protocol != protocol:
        raise ValueError(f"--split {split} scores the checkpoint's training protocol "
                         f"{cfg.protocol!r}, not {protocol!r}")
    if split == "val" and not cfg.val_classes:
        raise ValueError("--split val: this checkpoint was trained without held-out "
                         "validation classes (val_classes=0)")
    train, val = load_training_data(cfg)
    ds = original_classes(train if split == "train" else val)
    ds.name = f"{protocol}/{split}"
    return ds


def training_class_overlap(train_protocol: str | None, eval_protocol: str, ds: ClassDataset,
                           data_dir: str | None) -> dict[str, Any] | None:
    """Classes of ``ds`` (an evaluation's test classes under ``eval_protocol``) that are
    training classes of ``train_protocol``, the protocol a checkpoint was trained under.

    Protocols split the same characters differently: ``ns28`` draws its 1200 training
    characters from both Omniglot sets, so a model trained on it has seen most of
    ``gmn28``'s and ``lake28``'s test characters, and its scores there are not few-shot
    generalization to new characters. Classes are matched by name (``images_evaluation/
    <alphabet>/characterNN`` in every Omniglot protocol; augmented copies count as their
    original class). Returns ``None`` when the protocols are the same (their splits are
    disjoint by construction) or the training protocol is unknown, else
    ``{"train_protocol", "classes", "of", "names"}`` (``names``: the shared classes), and
    logs a warning when any class is shared.
    """
    from ppl_fewshot.data import available_protocols

    tp = (train_protocol or "").split("/")[0]  # a free baseline records "gmn28/train"
    if not tp or tp == eval_protocol or tp not in available_protocols():
        return None
    train_names = {base_class_name(n)
                   for n in load_split(tp, "train", data_dir=data_dir).class_names}
    shared = [n for n in ds.class_names if n in train_names]
    if shared:
        logger.warning("%d of the %d test classes of %s are training classes of %s, the "
                       "protocol this model was trained under: its scores on them are not "
                       "few-shot generalization to new characters", len(shared),
                       ds.num_classes, eval_protocol, tp)
    return {"train_protocol": tp, "classes": len(shared), "of": ds.num_classes,
            "names": shared}


__all__ = ["SPLITS", "eval_split", "test_bank", "training_class_overlap"]
