"""Datasets, protocols and episode samplers.

Raw files are found through :func:`resolve_data_dir` (``--data-dir``, then
``PPL_FEWSHOT_DATA``, then the user cache) and fetched from their official homes only
when missing. :func:`load_split` turns a named :class:`Protocol` into a
:class:`ClassDataset`; :class:`EpisodeSampler` draws :class:`Episode` batches from it.

This package imports only torch, numpy and Pillow; the synthetic glyphs (Pyro) are
imported lazily by the ``glyphs`` protocol.
"""

from ppl_fewshot.data.base import ClassDataset, Episode
from ppl_fewshot.data.episodes import (
    EpisodeSampler,
    EpisodeStream,
    derive_seed,
    episode_bank,
    load_bank,
    make_loader,
    save_bank,
)
from ppl_fewshot.data.gmn import class_dataset_from_labels, load_gmn_mnist, load_gmn_omniglot
from ppl_fewshot.data.mnist import load_mnist_idx, read_idx
from ppl_fewshot.data.omniglot import (
    OneShotRun,
    load_omniglot,
    load_one_shot_runs,
    read_omniglot_zip,
)
from ppl_fewshot.data.paths import (
    KNOWN_FILES,
    DataError,
    DataNotFoundError,
    KnownFile,
    cache_dir,
    fetch,
    resolve_data_dir,
    verify,
)
from ppl_fewshot.data.protocols import (
    Protocol,
    augment_classes,
    available_protocols,
    base_class_name,
    get_protocol,
    load_split,
    original_classes,
    split_validation,
)

__all__ = [
    "KNOWN_FILES",
    "ClassDataset",
    "DataError",
    "DataNotFoundError",
    "Episode",
    "EpisodeSampler",
    "EpisodeStream",
    "KnownFile",
    "OneShotRun",
    "Protocol",
    "augment_classes",
    "available_protocols",
    "base_class_name",
    "cache_dir",
    "class_dataset_from_labels",
    "derive_seed",
    "episode_bank",
    "fetch",
    "get_protocol",
    "load_bank",
    "load_gmn_mnist",
    "load_gmn_omniglot",
    "load_mnist_idx",
    "load_omniglot",
    "load_one_shot_runs",
    "load_split",
    "make_loader",
    "original_classes",
    "read_idx",
    "read_omniglot_zip",
    "resolve_data_dir",
    "save_bank",
    "split_validation",
    "verify",
]
