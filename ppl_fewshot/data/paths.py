"""Where the raw data lives, how it is checked, and how a missing file is fetched.

Search order for the data folder (:func:`resolve_data_dir`): the ``data_dir`` argument
(the CLI's ``--data-dir``), then the environment variable ``PPL_FEWSHOT_DATA``, then the
user cache ``$XDG_CACHE_HOME/ppl_fewshot/data`` (``~/.cache/ppl_fewshot/data``). The data
folder may be read-only: preprocessed tensors and the record of verified files go to
:func:`cache_dir` (``PPL_FEWSHOT_CACHE``, else ``$XDG_CACHE_HOME/ppl_fewshot``).

Every file the library reads is listed in :data:`KNOWN_FILES` with its official URL and
the checksums accepted for it (the official archive, and the repacked offline copies
described in the shared data README). :func:`fetch` finds a file, checks it once (the
result is remembered by path, size and modification time) and downloads it only when
it is missing and the network allows. Setting ``PPL_FEWSHOT_OFFLINE=1`` forbids downloads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ppl_fewshot.utils import atomic_write_text

logger = logging.getLogger(__name__)

ENV_DATA = "PPL_FEWSHOT_DATA"
ENV_CACHE = "PPL_FEWSHOT_CACHE"
ENV_OFFLINE = "PPL_FEWSHOT_OFFLINE"
DOWNLOAD_TIMEOUT_S = 60.0

_OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/{}"
_GMN_URL = "https://github.com/sbos/gmn/raw/master/data/{}"
_MNIST_URLS = (
    "http://yann.lecun.com/exdb/mnist/{}",
    "https://ossci-datasets.s3.amazonaws.com/mnist/{}",  # torchvision's mirror
)


class DataError(ValueError):
    """A data file exists but is not what it should be (checksum, format, corrupt archive)."""


class DataNotFoundError(FileNotFoundError):
    """A data file is missing and could not be downloaded."""


@dataclass(frozen=True)
class KnownFile:
    """One raw data file: where it comes from and which copies of it are accepted.

    Attributes:
        relpath: path inside the data folder, e.g. ``"omniglot/images_background.zip"``.
        urls: download locations, the official one first.
        sizes: accepted sizes in bytes (official archive and repacked copy).
        sha256: accepted sha256 hex digests.
        md5: accepted md5 hex digests (for official archives whose sha256 is not published).
    """

    relpath: str
    urls: tuple[str, ...]
    sizes: tuple[int, ...]
    sha256: tuple[str, ...] = ()
    md5: tuple[str, ...] = ()


def _omniglot(name: str, sizes, sha256=(), md5=()) -> KnownFile:
    return KnownFile(f"omniglot/{name}", (_OMNIGLOT_URL.format(name),), sizes, sha256, md5)


def _gmn(name: str, size: int, sha: str) -> KnownFile:
    return KnownFile(f"gmn/{name}", (_GMN_URL.format(name),), (size,), (sha,))


def _mnist(name: str, size: int, md5: str, sha: tuple[str, ...] = ()) -> KnownFile:
    return KnownFile(f"mnist/{name}", tuple(u.format(name) for u in _MNIST_URLS), (size,), sha,
                     (md5,))


KNOWN_FILES: dict[str, KnownFile] = {
    f.relpath: f
    for f in (
        # images_background / images_evaluation: the offline copies are repacked archives
        # (same PNG members, different zip bytes); the official archives are known by md5.
        _omniglot("images_background.zip", (8588032, 9464212),
                  ("9892d2170ed983d856e264844632d54814f01001b3731baa409c054caf292a5e",),
                  ("68d2efa1b9178cc56df9314c21c6e718",)),
        _omniglot("images_evaluation.zip", (5863926, 6462886),
                  ("d2dff634dba4546a89a69750392f44ee03fd80d7a3ab19a71f0bc8d643652ede",),
                  ("6b91aef0f799c5bb55b94e3f2daec811",)),
        _omniglot("images_background_small1.zip", (1319022,),
                  ("f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",),
                  ("e704a628b5459e08445c13499850abc4",)),
        _omniglot("images_background_small2.zip", (1580917,),
                  ("3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",),
                  ("b75a71a51d3b13f821f212756fe481fd",)),
        KnownFile("omniglot/all_runs.zip",
                  ("https://github.com/brendenlake/omniglot/raw/master/python/"
                   "one-shot-classification/all_runs.zip",),
                  (352787,),
                  ("437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",),
                  ("e8996daecdf12afeeb4a53a179f06b19",)),
        _omniglot("strokes_background_small1.zip", (3056274,),
                  ("8cb3960fb6cf4ccf5f064ad83169f828c36c36782a0f6e7faacb7ecfae4468a2",),
                  ("830eb54f8a9297820a4471fcc4f9d9bc",)),
        _omniglot("strokes_background_small2.zip", (4100947,),
                  ("345bf2141efbea062833dbb2828abbc23d9e07825e46f2afdd4daecddfed6e78",),
                  ("84d9defc54b809861ffd9886798dcffb",)),
        _gmn("train_small.npz", 903342,
             "136ac9970475ee96cb03275a4299233ef7d0f023380d2eff4ca73b31cc2f97da"),
        _gmn("test_small.npz", 642229,
             "5ac797844c90af132a423614c198f7b83ef8fad7cf8d32d6dc4f24483d317ac3"),
        _gmn("binmnist_train.npz", 3422381,
             "8457d814b7c8cf3ea3583a00ead4e5a4497a9b7fa1f59e682943a7a224c50e26"),
        _gmn("binmnist_test.npz", 570371,
             "ef8ee8b6b99c560e20776db966b763171ddc2b299c5307fc7b6724e3943ff202"),
        _mnist("t10k-images-idx3-ubyte.gz", 1648877, "9fb629c4189551a2d022fa330f9573f3",
               ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",)),
        _mnist("t10k-labels-idx1-ubyte.gz", 4542, "ec29112dd5afa0611ce80d1b7f02629c",
               ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",)),
        _mnist("train-images-idx3-ubyte.gz", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _mnist("train-labels-idx1-ubyte.gz", 28881, "d53e105ee54ea40749a09fcbcd1e9432",
               ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",)),
    )
}


def _xdg_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The raw-data folder: ``data_dir``, else ``$PPL_FEWSHOT_DATA``, else the user cache."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    return _xdg_cache() / "ppl_fewshot" / "data"


def cache_dir() -> Path:
    """Folder for preprocessed tensors: ``$PPL_FEWSHOT_CACHE``, else ``~/.cache/ppl_fewshot``.

    Never inside the data folder, which may be read-only. The folder is not created here.
    """
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else _xdg_cache() / "ppl_fewshot"


def _missing_message(relpath: str, root: Path, reason: str) -> str:
    known = KNOWN_FILES.get(relpath)
    url = f" from {known.urls[0]}" if known else ""
    return (f"data file {relpath!r} not found: put it{url} at {root / relpath} "
            f"(or point {ENV_DATA} / --data-dir at a folder holding {relpath}); {reason}")


def download_url(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` (plain write; :func:`fetch` handles temp files)."""
    req = urllib.request.Request(url, headers={"User-Agent": "ppl_fewshot"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)


def _hash_file(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def _check_digests(path: Path, known: KnownFile) -> str:
    """Hash ``path`` and compare with ``known``; return the sha256 or raise DataError."""
    size = path.stat().st_size
    if known.sizes and size not in known.sizes:
        raise DataError(f"{path} has {size} bytes, expected one of {known.sizes} for "
                        f"{known.relpath}: the file is truncated or not the right one")
    sha, md5 = _hash_file(path)
    if sha in known.sha256 or md5 in known.md5:
        return sha
    raise DataError(f"{path} has sha256 {sha}, which matches no accepted copy of "
                    f"{known.relpath}: the file is corrupt or not the right one")


def _memo_path() -> Path:
    return cache_dir() / "verified.json"


def _read_memo() -> dict[str, list]:
    try:
        with open(_memo_path()) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_memo(memo: dict[str, list]) -> None:
    path = _memo_path()
    try:
        atomic_write_text(path, json.dumps(memo, indent=0, sort_keys=True))
    except (OSError, ValueError) as err:  # a read-only cache only costs a re-hash next time
        logger.debug("could not record verified files in %s: %s", path, err)


def _locate(relpath: str, root: Path) -> Path | None:
    for cand in (root / relpath, root / Path(relpath).name):
        if cand.is_file():
            return cand
    return None


def verify(relpath: str, data_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Check the file ``relpath`` against :data:`KNOWN_FILES`; return its path.

    The file is hashed once; a success is remembered in ``cache_dir()/verified.json`` by
    (path, size, mtime), so later calls cost one ``stat``. ``force=True`` re-hashes.
    Raises :class:`DataNotFoundError` if absent and :class:`DataError` on a mismatch.
    """
    root = resolve_data_dir(data_dir)
    path = _locate(relpath, root)
    if path is None:
        raise DataNotFoundError(_missing_message(relpath, root, "it is not there"))
    known = KNOWN_FILES.get(relpath)
    if known is None:
        raise KeyError(f"{relpath!r} is not a known data file; known: {sorted(KNOWN_FILES)}")
    st = path.stat()
    key = str(path.resolve())
    stamp = [st.st_size, st.st_mtime_ns]
    memo = _read_memo()
    if not force and memo.get(key, [None, None])[:2] == stamp:
        return path
    sha = _check_digests(path, known)
    memo[key] = [*stamp, sha]
    _write_memo(memo)
    return path


def fetch(relpath: str, data_dir: str | os.PathLike | None = None, download: bool = True,
          check: bool = True) -> Path:
    """Return the local path of the data file ``relpath``, downloading it if missing.

    Looks for ``<data_dir>/<relpath>`` and ``<data_dir>/<basename>``. A found file of
    :data:`KNOWN_FILES` is verified (once, see :func:`verify`) unless ``check=False``.
    A missing file is downloaded into ``<data_dir>/<relpath>`` (temp file, checksum,
    then atomic rename) when ``download`` is true and ``PPL_FEWSHOT_OFFLINE`` is unset.

    Raises:
        DataNotFoundError: the file is missing and could not be downloaded; the message
            says which file to put where.
        DataError: the file is there but its size or checksum is wrong.
    """
    root = resolve_data_dir(data_dir)
    known = KNOWN_FILES.get(relpath)
    path = _locate(relpath, root)
    if path is not None:
        if check and known is not None:
            verify(relpath, root)
        return path
    if known is None:
        raise DataNotFoundError(_missing_message(relpath, root, "no download source is known"))
    if not download or os.environ.get(ENV_OFFLINE):
        raise DataNotFoundError(_missing_message(relpath, root, "downloads are disabled"))
    return _download_known(known, root)


def _download_known(known: KnownFile, root: Path) -> Path:
    dest = root / known.relpath
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataNotFoundError(_missing_message(known.relpath, root,
                                                 f"cannot write there to download: {err}")) from err
    errors = []
    for url in known.urls:
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            os.close(fd)
            logger.info("downloading %s to %s", url, dest)
            download_url(url, Path(tmp), timeout=DOWNLOAD_TIMEOUT_S)
            _check_digests(Path(tmp), known)
            os.replace(tmp, dest)
            tmp = None
            return dest
        except (OSError, DataError) as err:  # URLError and timeouts are OSErrors
            errors.append(f"{url}: {err}")
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
    reason = "download failed (" + "; ".join(errors) + ")"
    raise DataNotFoundError(_missing_message(known.relpath, root, reason))


def open_zip(path: str | os.PathLike) -> zipfile.ZipFile:
    """Open a zip archive, turning a corrupt or non-zip file into a :class:`DataError`."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise DataError(f"{path} is not a readable zip archive ({err}); delete it and "
                        f"fetch it again") from err
