"""Every tutorial notebook has a SMOKE_TEST switch and runs without error in smoke mode.

Notebooks are executed with nbclient in the kernelspec named ``python3`` (ipykernel's own
spec; jupyter_client launches it with the interpreter running the tests, so the package
under test is the one imported), with ``CI=1`` in the kernel's environment so that
``SMOKE_TEST = "CI" in os.environ`` is on, from a temporary working directory. Outputs
are kept in memory only: nothing is written back into the repository.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT_S = 180
SMOKE_SWITCH = 'SMOKE_TEST = "CI" in os.environ'


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _code_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _defines_smoke_switch(source: str) -> bool:
    """True when a top-level statement of ``source`` is exactly the smoke switch."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return False
    want = ast.dump(ast.parse(SMOKE_SWITCH).body[0])
    return any(ast.dump(node) == want for node in tree.body)


def _run(nb, workdir: Path, env: dict[str, str]):
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(workdir)}},
        allow_errors=False,
    )
    return client.execute(env=env)


@pytest.fixture
def kernel_env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)  # includes the offline/cache settings of conftest
    env["CI"] = "1"
    env.pop("MPLBACKEND", None)  # let ipykernel pick its inline backend, as for a reader
    return env


def test_there_are_tutorials():
    assert NOTEBOOKS, f"no notebooks in {TUTORIALS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_defines_smoke_switch(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert any(_defines_smoke_switch(src) for src in _code_cells(nb)), (
        f"{path.name} must define `{SMOKE_SWITCH}` in a code cell"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


def test_switch_detection():
    assert _defines_smoke_switch('import os\nSMOKE_TEST = "CI" in os.environ\n')
    assert _defines_smoke_switch('%matplotlib inline\nimport os\nSMOKE_TEST = "CI" in os.environ')
    assert not _defines_smoke_switch('SMOKE_TEST = True')
    assert not _defines_smoke_switch('# SMOKE_TEST = "CI" in os.environ')
    assert not _defines_smoke_switch('if x:\n    SMOKE_TEST = "CI" in os.environ')


def test_kernel_is_this_interpreter(tmp_path, kernel_env):
    """The kernel nbclient starts runs the tests' Python (so it imports the package under test)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'import os, sys, ppl_fewshot\nprint(sys.executable)\nprint(os.environ.get("CI"))'
    )])
    out = _run(nb, tmp_path, kernel_env)
    text = "".join(o.get("text", "") for o in out.cells[0].outputs).split()
    assert Path(text[0]).resolve() == Path(sys.executable).resolve()
    assert text[1] == "1"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_smoke_mode(path: Path, tmp_path, kernel_env):
    nb = nbformat.read(path, as_version=4)  # in memory: the repository copy is never rewritten
    before = path.read_bytes()
    out = _run(nb, tmp_path, kernel_env)
    errors = [o for c in out.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
    assert path.read_bytes() == before
