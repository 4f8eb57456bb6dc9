"""The ``ppl-fewshot`` command line: data, train, evaluate, sample, quickstart.

This is the only module that configures logging. Every known failure (bad input, missing
data, damaged checkpoint, diverged training) ends in one ``ppl-fewshot: error: ...`` line
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import Any

logger = logging.getLogger("ppl_fewshot.cli")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        sys.stderr.write(f"ppl-fewshot: error: {message} (see --help)\n")
        sys.exit(2)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return v


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return v


def nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"{text} must be a number >= 0")
    return v


def positive_float(text: str) -> float:
    v = nonneg_float(text)
    if v == 0:
        raise argparse.ArgumentTypeError(f"{text} must be a number > 0")
    return v


def int_or_range(text: str) -> int | tuple[int, int]:
    """``"10"`` -> 10, ``"2-20"`` -> (2, 20); every number positive."""
    parts = text.split("-")
    if len(parts) == 1:
        return positive_int(text)
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not N or LO-HI")
    lo, hi = positive_int(parts[0]), positive_int(parts[1])
    if lo > hi:
        raise argparse.ArgumentTypeError(f"range {text!r} has LO > HI")
    return (lo, hi)


def int_list(text: str) -> tuple[int, ...]:
    return tuple(nonneg_int(t) for t in text.split(",") if t)


def float_list(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(t) for t in text.split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from None
    if not vals or any(not (math.isfinite(v) and v > 0) for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: the values must be positive numbers")
    return vals


def name_list(text: str, known: tuple[str, ...], what: str, keyword: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each checked against ``known``; ``keyword`` alone (e.g.
    ``"none"``, ``"auto"``) -> ``()``, which the caller reads as its default."""
    if text == keyword:
        return ()
    vals = tuple(t for t in text.split(",") if t)
    bad = [v for v in vals if v not in known]
    if bad or not vals:
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {bad or text!r}; available: "
                                          f"{', '.join(known)} or {keyword}")
    return vals


def augmentation_list(text: str) -> tuple[str, ...]:
    """``"rot90,flip,dilate"`` -> the names, checked; ``"none"`` -> ``()`` (no augmentation)."""
    from ppl_fewshot.data.protocols import AUGMENTATIONS

    return name_list(text, AUGMENTATIONS, "augmentation", "none")


def key_value(text: str) -> tuple[str, Any]:
    """``key=value``, the value parsed as JSON when possible (``z_dim=16``, ``pooling=mean``)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def build_parser() -> argparse.ArgumentParser:
    from ppl_fewshot.cli_commands import register_all

    p = _Parser(prog="ppl-fewshot", description="Few-shot generative models in Pyro.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch (default: torch's choice)",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    register_all(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ppl-fewshot`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from ppl_fewshot.cli_commands import known_errors

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    try:
        return int(args.func(args) or 0)
    except known_errors() as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        sys.stderr.write(f"ppl-fewshot: error: {msg}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("ppl-fewshot: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
