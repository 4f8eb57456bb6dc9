"""Small helpers shared by every layer: device resolution, seeding, versions.

This module sits at the bottom of the import graph (it imports only torch,
numpy and the standard library) and holds no state but one per-process cache, filled on first
use, not at import: :func:`source_commit`'s answer.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import random
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import torch

logger = logging.getLogger(__name__)


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:i"`` into a :class:`torch.device`.

    ``"auto"`` (or ``None``) picks the first CUDA device when one is present and the
    CPU otherwise. Asking for CUDA on a machine without it raises ``ValueError``
    with a one-line message instead of failing later inside a kernel.
    """
    if isinstance(spec, torch.device):
        return spec
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:i") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} asked for, but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {spec!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy, torch and Pyro's RNGs; return a fresh seeded CPU generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:  # pyro is a runtime dependency, but keep this module importable without it
        import pyro

        pyro.set_rng_seed(seed)
    except ImportError:  # pragma: no cover
        pass
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


@contextlib.contextmanager
def private_rng(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Within the block, torch's RNG (the CPU's, and ``device``'s when it is a GPU) is a private
    copy seeded with ``seed``; the global state is restored after. ``seed=None`` uses and
    advances the global RNG as usual."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def versions() -> dict[str, str]:
    """What decides numerical results bit for bit, for checkpoints and JSON: the versions of
    the packages, the library's git commit (:func:`source_commit`, when it runs from a
    checkout), the processor (:func:`cpu_model`), torch's CPU instruction set and its thread
    count. A rounding difference of one part in a million, from another thread count, kernel
    or machine, grows over a training run into another run: other weights, losses and NLLs
    (docs/findings.md sections 45-46)."""
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    try:
        import pyro

        out["pyro"] = pyro.__version__
    except ImportError:  # pragma: no cover
        pass
    from ppl_fewshot import __version__

    out["ppl_fewshot"] = __version__
    commit = source_commit()
    if commit is not None:
        out["ppl_fewshot_commit"] = commit
    out["cpu"] = cpu_model()
    out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    out["threads"] = str(torch.get_num_threads())
    return out


def cpu_model() -> str:
    """The processor's model name (Linux: ``/proc/cpuinfo``; elsewhere ``platform``), or
    ``"unknown"``. Two machines with one instruction set can still round differently (other
    BLAS and convolution kernels), so a run records the machine too (docs/findings.md
    section 46)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def source_commit() -> str | None:
    """The git commit of the checkout the library runs from (an editable install), with
    ``+dirty`` when tracked files of the package differ from it; None when the package is not
    in a git checkout of its own or git is missing.

    Read once per process, at the first call: the trainer and ``ppl-fewshot evaluate`` call it
    when they start, so a run records the code it imported even when the checkout moves on
    while it runs (an hour-long run once recorded the commit made during it)."""
    pkg = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(pkg), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() / pkg.name != pkg:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
        return git("rev-parse", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def logmeanexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``log(mean(exp(x)))`` along ``dim``, computed stably."""
    return torch.logsumexp(x, dim=dim) - torch.log(torch.tensor(float(x.shape[dim])))


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, then rename it over ``path``.

    Refuses to replace anything but a regular file (a rename over ``/dev/null`` or a
    folder would destroy it).
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} exists and is not a regular file; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


class RunInProgressError(RuntimeError):
    """Another live process holds the folder's lock (it is training into it)."""


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if missing) for the ``with`` block.

    The lock is ``flock`` on ``folder/.lock``, which records the holder's pid. The kernel
    drops it when the holder exits, crashed or not, so a stale file never blocks. A second
    holder is refused at once with :class:`RunInProgressError`, which is what keeps two
    trainers (a run and a premature ``--resume`` of it) from writing into one folder. Where
    ``fcntl`` does not exist (Windows) the block runs unlocked. Folders this call created
    and the block left empty (it failed before writing) are removed again on exit.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        fcntl = None
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # leaf first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(folder / ".lock", "a+", encoding="utf-8") as fh:
            try:
                if fcntl is not None:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                raise RunInProgressError(
                    f"{folder} is in use by another process (pid {fh.read().strip() or '?'}); "
                    "wait for it to finish or stop it first"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield  # closing the file releases the lock
    finally:
        if created and {p.name for p in folder.iterdir()} <= {".lock"}:
            (folder / ".lock").unlink(missing_ok=True)
            for p in created:
                if any(p.iterdir()):
                    break
                p.rmdir()
