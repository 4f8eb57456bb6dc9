"""Few-shot generative models, found by name.

``available()`` lists the registered names and ``build(name, **overrides)`` makes a
model with its default configuration (a preset's settings, then the overrides). Every
model also takes the settings of :data:`URN_SETTINGS`: a Pólya urn over each set's items
(:meth:`FewShotModel.set_urn`, :mod:`ppl_fewshot.models.urn`).
The registry is a constant table of import paths: nothing is imported or mutated
until a model is asked for.

A model of your own needs no registration: its import path ``"package.module:Class"`` (a
subclass of :class:`FewShotModel` whose ``__init__`` takes keyword settings with defaults)
is a name wherever a registry name is, in ``build``, ``ppl-fewshot train`` and checkpoints,
which record it and rebuild the model from it. :func:`~ppl_fewshot.models.contract.
check_model` checks such a model against the contract (``tutorials/04_your_own_model.ipynb``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ppl_fewshot.models.base import FewShotModel, as_mask

# name -> (module, class, preset overrides)
_REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "vae": ("ppl_fewshot.models.vae", "VAE", {}),
    "vae-small": ("ppl_fewshot.models.vae", "VAE", {"z_dim": 16, "hidden": 128, "channels": 16}),
    "vae-resnet": (  # the GMN paper's residual PReLU networks and z of 50
        "ppl_fewshot.models.vae",
        "VAE",
        {"z_dim": 50, "hidden": 288, "channels": 16, "arch": "resnet"},
    ),
    "cvae": ("ppl_fewshot.models.cvae", "OneShotCVAE", {}),
    "cvae-small": (
        "ppl_fewshot.models.cvae",
        "OneShotCVAE",
        {"z_dim": 16, "hidden": 128, "channels": 16},
    ),
    "beta-bernoulli": ("ppl_fewshot.models.conjugate", "BetaBernoulli", {}),
    "normal-inverse-gamma": ("ppl_fewshot.models.conjugate", "NormalInverseGamma", {}),
    "dirichlet-categorical": ("ppl_fewshot.models.conjugate", "DirichletCategorical", {}),
    "pixel-beta-bernoulli": ("ppl_fewshot.models.pixel", "HierarchicalBernoulliPixels", {}),
    "neural-definetti": ("ppl_fewshot.models.definetti", "NeuralDeFinetti", {}),
    "logistic-normal": ("ppl_fewshot.models.definetti", "LogisticNormalSet", {}),
    "ns": ("ppl_fewshot.models.neural_statistician", "NeuralStatistician", {}),
    "ns-small": (
        "ppl_fewshot.models.neural_statistician",
        "NeuralStatistician",
        {"c_dim": 64, "z_dim": 16, "hidden": 128, "channels": 16},
    ),
    "gmn": ("ppl_fewshot.models.gmn", "GenerativeMatchingNetwork", {}),
    "gmn-small": (
        "ppl_fewshot.models.gmn",
        "GenerativeMatchingNetwork",
        {"z_dim": 16, "state_dim": 64, "channels": 16, "hidden": 128},
    ),
}


#: settings every model takes: a Pólya urn's concentration (None: no urn) and atoms
URN_SETTINGS: dict[str, Any] = {"urn_concentration": None, "urn_atoms": 0}


def _resolve(name: str) -> tuple[type[FewShotModel], dict[str, Any]]:
    """The class and preset of a registry name or of an import path ``module:Class``."""
    if name in _REGISTRY:
        module, cls_name, preset = _REGISTRY[name]
        return getattr(importlib.import_module(module), cls_name), dict(preset)
    if ":" not in name:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available())}, or "
                       "the import path 'package.module:Class' of a model of your own")
    module, _, cls_name = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as err:
        raise KeyError(f"unknown model {name!r}: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, FewShotModel)):
        raise KeyError(f"model {name!r} is not a subclass of ppl_fewshot.models.FewShotModel")
    return cls, {}


def resolve(name: str) -> str:
    """``name`` when it names a model (a registry name, or an importable ``module:Class``
    subclass of :class:`FewShotModel`); ``KeyError`` saying what is wrong otherwise."""
    _resolve(name)
    return name


def available() -> list[str]:
    """Names of the models whose implementation is present in this installation."""
    names = []
    for name, (module, _, _) in _REGISTRY.items():
        if importlib.util.find_spec(module) is not None:
            names.append(name)
    return names


def default_config(name: str) -> dict[str, Any]:
    """The full keyword configuration ``build(name)`` uses, defaults included."""
    cls, preset = _resolve(name)
    sig = inspect.signature(cls.__init__)
    cfg = {
        k: p.default
        for k, p in sig.parameters.items()
        if k != "self" and p.default is not inspect.Parameter.empty
    }
    cfg.update(preset)
    cfg.update(URN_SETTINGS)
    return cfg


def build(name: str, **overrides: Any) -> FewShotModel:
    """Make model ``name`` with its default configuration and ``overrides``.

    Raises ``KeyError`` for an unknown name and ``TypeError`` for an unknown setting.
    """
    cls, _ = _resolve(name)
    cfg = default_config(name)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise TypeError(
            f"model {name!r} has no setting(s) {sorted(unknown)}; settings: {sorted(cfg)}"
        )
    cfg.update(overrides)
    urn = {k: cfg.pop(k) for k in URN_SETTINGS}
    model = cls(**cfg)
    model.name = name
    model._config = cfg
    model.set_urn(urn["urn_concentration"], urn["urn_atoms"])
    return model


def label(model: FewShotModel) -> str:
    """The registry name, followed by the settings that differ from that preset, e.g.
    ``ns-small[c_dim=128,channels=32]``, so that a result row names exactly what was scored."""
    try:
        preset = default_config(model.name)
    except (KeyError, ValueError):  # no preset: a model of one's own without defaults
        return model.name
    plain = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    diff = {k: v for k, v in model.config().items() if k in preset and plain(preset[k]) != plain(v)}
    if not diff:
        return model.name
    return model.name + "[" + ",".join(f"{k}={v}" for k, v in sorted(diff.items())) + "]"


__all__ = [
    "URN_SETTINGS", "FewShotModel", "as_mask", "available", "build", "default_config", "label",
    "resolve",
]
