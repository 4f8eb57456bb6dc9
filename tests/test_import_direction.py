"""Imports flow one way: cli -> diagnostics/inference -> models -> nn -> data/utils."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ppl_fewshot"

# layer -> layers of ppl_fewshot it must never import
FORBIDDEN = {
    "data": {"nn", "models", "inference", "diagnostics", "cli", "cli_commands", "cli_quickstart"},
    "nn": {"models", "inference", "diagnostics", "cli", "cli_commands", "cli_quickstart"},
    "models": {"inference", "diagnostics", "cli", "cli_commands", "cli_quickstart"},
    "inference": {"diagnostics", "cli", "cli_commands", "cli_quickstart"},
    "diagnostics": {"cli", "cli_commands", "cli_quickstart"},
    "utils": {"data", "nn", "models", "inference", "diagnostics", "cli"},
}
THIRD_PARTY_FORBIDDEN = {
    "data": {"pyro.infer"},
    "nn": {"pyro.infer"},
    "inference": {"matplotlib", "arviz"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


FILES = sorted(PKG.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PKG)) for p in FILES])
def test_no_upward_imports(path: Path) -> None:
    layer = _layer(path)
    for name in _imports(path):
        if name.startswith("ppl_fewshot."):
            target = name.split(".")[1]
            assert target not in FORBIDDEN.get(layer, set()), f"{path}: {layer} imports {name}"
        for bad in THIRD_PARTY_FORBIDDEN.get(layer, set()):
            assert not (name == bad or name.startswith(bad + ".")), f"{path}: imports {name}"


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from ppl_fewshot.inference import train\nimport pyro.infer\n")
    assert "ppl_fewshot.inference" in _imports(f) and "pyro.infer" in _imports(f)


def test_files_stay_small() -> None:
    big = [(str(p.relative_to(PKG)), n) for p in FILES
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450]
    assert not big, f"files over ~400 lines (split them): {big}"
