"""Named data protocols: which pixels, which split, which binarization, which episodes.

A number without its protocol means nothing (DESIGN.md section 4). Each protocol is a
frozen :class:`Protocol` recorded with every result; :func:`load_split` turns it into
the train or test :class:`ClassDataset`.

| name | train / test classes | images | binarization | augmentation |
|---|---|---|---|---|
| ``gmn28`` | 964 / 659 (Lake split) | GMN authors' arrays | fixed (already binary) | none |
| ``lake28`` | 964 / 659 | official zips, 105 -> 28 area | fixed, 0.5 | none |
| ``ns28`` | 1200 / 423 (seeded, pooled) | official zips, area | dynamic | rot90 x flip (+ dilate) |
| ``mnist28`` | - / 10 digits | GMN binarized MNIST test | fixed (as stored) | none |
| ``mnist28-t10k`` | - / 10 digits | official t10k grey levels | dynamic | none |
| ``glyphs`` | 80% / 20% of alphabets | synthetic Pyro glyphs | fixed | none |
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

import torch

from ppl_fewshot.data.base import ClassDataset

SPLITS = ("train", "test")
AUGMENTATIONS = ("rot90", "flip", "dilate")


@dataclass(frozen=True)
class Protocol:
    """A named, immutable description of a data protocol.

    Attributes:
        name: registry name, e.g. ``"gmn28"``.
        source: the raw data it reads.
        split: how classes are split into train and test.
        image_size: side of the square images.
        binarization: of the training split: ``"fixed"``, ``"dynamic"`` or ``"none"``.
        test_binarization: of the test split (``"dynamic"`` test draws are fixed by the
            episode bank's seed).
        threshold: ink level above which a ``fixed`` pixel is ink.
        augmentation: training-only augmentations making new classes
            (``"rot90"``: 4 rotations, ``"flip"``: mirror image, ``"dilate"``: strokes one
            pixel wider); see :func:`augment_classes`.
        split_seed: seed of the class split (and of any seeded choice of images).
        sampler: default episode sampler, ``"with-replacement"`` (GMN's) or ``"distinct"``.
        num_train_classes / num_test_classes: expected class counts before augmentation.
        splits: the splits it has (``("test",)`` for a transfer-test-only protocol).
        description: one line for logs and result tables.
    """

    name: str
    source: str
    split: str
    image_size: int = 28
    binarization: str = "fixed"
    test_binarization: str = "fixed"
    threshold: float = 0.5
    augmentation: tuple[str, ...] = ()
    split_seed: int = 0
    sampler: str = "with-replacement"
    num_train_classes: int | None = None
    num_test_classes: int | None = None
    description: str = ""
    splits: tuple[str, ...] = ("train", "test")

    @property
    def transfer_only(self) -> bool:
        """No training split: a transfer target (models come from another protocol)."""
        return "train" not in self.splits

    def to_dict(self) -> dict:
        """Plain JSON-able fields, for result files and checkpoints."""
        return dataclasses.asdict(self)


_PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("gmn28", "gmn/train_small.npz, gmn/test_small.npz",
                 "Lake split: background / evaluation", num_train_classes=964,
                 num_test_classes=659,
                 description="GMN authors' 28x28 binary Omniglot arrays; compare with the "
                             "seed talk's NLL tables"),
        Protocol("lake28", "omniglot/images_background.zip, omniglot/images_evaluation.zip",
                 "Lake split: background / evaluation", num_train_classes=964,
                 num_test_classes=659,
                 description="official PNGs, ink inverted, 105->28 exact area downsample, "
                             "threshold 0.5"),
        Protocol("ns28", "omniglot/images_background.zip + images_evaluation.zip (pooled)",
                 "1200 train / 423 test classes, seeded random split of all 1623",
                 binarization="dynamic", test_binarization="dynamic",
                 augmentation=("rot90", "flip"), sampler="distinct", num_train_classes=1200,
                 num_test_classes=423,
                 description="Neural Statistician protocol: dynamic Bernoulli pixels, "
                             "8x rotation/flip classes for training"),
        Protocol("mnist28", "gmn/binmnist_test.npz", "test only: the 10 digits",
                 num_train_classes=None, num_test_classes=10,
                 description="GMN binarized MNIST test digits, each class cut to the "
                             "smallest digit count by a seeded choice", splits=("test",)),
        Protocol("mnist28-t10k", "mnist/t10k-images-idx3-ubyte.gz + t10k-labels",
                 "test only: the 10 digits", binarization="dynamic",
                 test_binarization="dynamic", num_train_classes=None, num_test_classes=10,
                 description="official MNIST test digits (grey levels, seeded Bernoulli "
                             "pixels), each class cut to the smallest digit count by a seeded "
                             "choice", splits=("test",)),
        Protocol("glyphs", "ppl_fewshot.data.glyphs.make_glyphs (synthetic)",
                 "seeded 80% of alphabets train / 20% test", sampler="distinct",
                 description="synthetic stroke glyphs, 200 characters of 20 tokens"),
    )
}


def available_protocols() -> list[str]:
    """Names of the known protocols."""
    return sorted(_PROTOCOLS)


def get_protocol(name: str | Protocol) -> Protocol:
    """The :class:`Protocol` called ``name`` (a Protocol is returned unchanged)."""
    if isinstance(name, Protocol):
        return name
    try:
        return _PROTOCOLS[name]
    except KeyError:
        raise KeyError(f"unknown protocol {name!r}; available: "
                       f"{', '.join(available_protocols())}") from None


def dilate(images: torch.Tensor) -> torch.Tensor:
    """Strokes one pixel wider: a 2 x 2 maximum filter over ink levels (same image size).

    Each output pixel is the most ink of itself and its right, lower and lower-right
    neighbours, so a one-pixel stroke becomes two pixels wide. On the ns28 test
    characters it raises the share of ink pixels with four ink neighbours from 3.6% to
    32.5%, MNIST's digits have 33.8% (``docs/findings.md`` section 16). Works on any
    dtype and leading dims ``[..., H, W]``.
    """
    padded = torch.nn.functional.pad(images, (0, 1, 0, 1))
    return torch.maximum(torch.maximum(padded[..., :-1, :-1], padded[..., :-1, 1:]),
                         torch.maximum(padded[..., 1:, :-1], padded[..., 1:, 1:]))


def augment_classes(ds: ClassDataset, augmentation: tuple[str, ...]) -> ClassDataset:
    """Each class becomes several new classes: 4 rotations (``rot90``) x mirror (``flip``)
    x strokes one pixel wider (``dilate``, :func:`dilate`).

    Class ``i`` turns into classes ``i * K .. i * K + K - 1``, named ``<name>/rot<deg>``
    with ``/flip`` and then ``/dilate`` appended for mirrored and dilated copies (``K`` = 8
    for rotations and flips, 16 with dilation). A dilated class holds the dilated drawings
    of its class only, so a set never mixes stroke widths: the optional dilation
    augmentation of the Neural Statistician's Omniglot recipe [1] (``TARGETS.md`` section
    4) as new classes, like its rotations and flips.

    References:
        [1] H. Edwards, A. Storkey, "Towards a Neural Statistician", ICLR 2017.
    """
    unknown = set(augmentation) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation {sorted(unknown)}; known: {AUGMENTATIONS}")
    rotations = (0, 1, 2, 3) if "rot90" in augmentation else (0,)
    flips = (False, True) if "flip" in augmentation else (False,)
    widths = (False, True) if "dilate" in augmentation else (False,)
    variants, suffixes = [], []
    for flip in flips:
        base = torch.flip(ds.images, dims=(-1,)) if flip else ds.images
        for k in rotations:
            turned = torch.rot90(base, k, dims=(-2, -1)) if k else base
            for wide in widths:
                variants.append(dilate(turned) if wide else turned)
                suffixes.append(f"/rot{90 * k}" + ("/flip" if flip else "")
                                + ("/dilate" if wide else ""))
    images = torch.stack(variants, dim=1).flatten(0, 1).contiguous()
    names = [n + s for n in ds.class_names for s in suffixes]
    alphabets = None if ds.alphabets is None else [a for a in ds.alphabets for _ in suffixes]
    return ClassDataset(images=images, class_names=names, binarization=ds.binarization,
                        name=ds.name, alphabets=alphabets)


_VARIANT = re.compile(r"/rot(0|90|180|270)(/flip)?(/dilate)?$")


def base_class_name(name: str) -> str:
    """The drawn class an augmented copy comes from: ``<name>/rot90/flip`` -> ``<name>``
    (:func:`augment_classes`); other names unchanged."""
    return _VARIANT.sub("", name)


def original_classes(ds: ClassDataset) -> ClassDataset:
    """The classes of ``ds`` that :func:`augment_classes` left as drawn (``/rot0``: not
    turned, mirrored or dilated); ``ds`` itself when its classes are not augmented copies.

    Test classes are never augmented, so scoring a model on the classes it trained on
    (``ppl-fewshot evaluate --split train``) compares like with like on these.
    """
    if not ds.class_names or not all(_VARIANT.search(n) for n in ds.class_names):
        return ds
    keep = [i for i, n in enumerate(ds.class_names) if n.endswith("/rot0")]
    return ds.subset(keep)


def _seeded_perm(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _concat(a: ClassDataset, b: ClassDataset) -> ClassDataset:
    return ClassDataset(images=torch.cat([a.images, b.images]),
                        class_names=a.class_names + b.class_names,
                        binarization=a.binarization, name=a.name,
                        alphabets=(a.alphabets or [""] * a.num_classes)
                        + (b.alphabets or [""] * b.num_classes))


def _threshold(images: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.where(images.float() >= threshold * 255.0, 255, 0).to(torch.uint8)


def load_split(protocol: str | Protocol, split: str, data_dir: str | os.PathLike | None = None
               ) -> ClassDataset:
    """The ``"train"`` or ``"test"`` classes of a protocol as a :class:`ClassDataset`."""
    p = get_protocol(protocol)
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if split not in p.splits:
        raise ValueError(f"protocol {p.name} has no {split} split (it has: {', '.join(p.splits)})")
    train = split == "train"
    binarization = p.binarization if train else p.test_binarization
    if p.name == "gmn28":
        from ppl_fewshot.data.gmn import load_gmn_omniglot

        ds = load_gmn_omniglot(split, data_dir, binarization=binarization)
    elif p.name in ("lake28", "ns28"):
        from ppl_fewshot.data.omniglot import load_omniglot

        def zips(which: str) -> ClassDataset:
            return load_omniglot(which, data_dir, image_size=p.image_size,
                                 binarization=binarization)

        if p.name == "lake28":
            ds = zips("background" if train else "evaluation")
        else:
            pooled = _concat(zips("background"), zips("evaluation"))
            perm = _seeded_perm(pooled.num_classes, p.split_seed)
            n_train = int(p.num_train_classes or 0)
            idx = perm[:n_train] if train else perm[n_train:]
            ds = pooled.subset(idx.sort().values)
    elif p.name == "mnist28":
        from ppl_fewshot.data.gmn import class_dataset_from_labels, load_gmn_mnist

        images, labels = load_gmn_mnist("test", data_dir)
        ds = class_dataset_from_labels(images, labels, seed=p.split_seed,
                                       binarization=binarization)
    elif p.name == "mnist28-t10k":
        from ppl_fewshot.data.gmn import class_dataset_from_labels
        from ppl_fewshot.data.mnist import load_mnist_idx

        images, labels = load_mnist_idx("test", data_dir)
        ds = class_dataset_from_labels(images, labels, seed=p.split_seed,
                                       binarization=binarization)
    elif p.name == "glyphs":
        ds = _glyph_split(p, train, binarization)
    else:  # a user-made Protocol with an unknown name
        raise KeyError(f"no loader for protocol {p.name!r}; available: {available_protocols()}")
    if binarization == "fixed" and p.threshold != 0.5:
        ds = dataclasses.replace(ds, images=_threshold(ds.images, p.threshold))
    if train and p.augmentation:
        ds = augment_classes(ds, p.augmentation)
    ds.name = f"{p.name}/{split}"
    return ds


def _glyph_split(p: Protocol, train: bool, binarization: str) -> ClassDataset:
    from ppl_fewshot.data.glyphs import make_glyphs  # lazy: glyphs imports pyro

    full = make_glyphs(num_characters=200, tokens_per_character=20, seed=p.split_seed,
                       image_size=p.image_size)
    full = dataclasses.replace(full, binarization=binarization)
    if full.alphabets:
        groups = sorted(set(full.alphabets))
        perm = _seeded_perm(len(groups), p.split_seed).tolist()
        n_train = max(1, round(0.8 * len(groups)))
        chosen = {groups[i] for i in (perm[:n_train] if train else perm[n_train:])}
        idx = [i for i, a in enumerate(full.alphabets) if a in chosen]
    else:
        perm = _seeded_perm(full.num_classes, p.split_seed)
        n_train = round(0.8 * full.num_classes)
        idx = sorted((perm[:n_train] if train else perm[n_train:]).tolist())
    return full.subset(idx)


def split_validation(ds: ClassDataset, num_classes: int, seed: int = 0
                     ) -> tuple[ClassDataset, ClassDataset]:
    """Hold out ``num_classes`` seeded random classes of ``ds`` for validation.

    Returns ``(train, val)``; both keep the original class order.
    """
    if not 0 < num_classes < ds.num_classes:
        raise ValueError(f"num_classes must be in 1..{ds.num_classes - 1} for a dataset of "
                         f"{ds.num_classes} classes, got {num_classes}")
    perm = _seeded_perm(ds.num_classes, seed)
    val = perm[:num_classes].sort().values
    train = perm[num_classes:].sort().values
    return (ds.subset(train, name=f"{ds.name}/train-part"),
            ds.subset(val, name=f"{ds.name}/val"))
