"""The package layering written in pyproject.toml ([tool.importlinter]): no import circle and no
upward import between emgtf's packages and root modules, imports inside functions included."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")


def lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the emgtf package under ``root`` with ``root``'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_emgtf_keeps_its_layers_and_has_no_import_circle():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(REPO / "emgtf", root / "emgtf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root)
    return root


@pytest.mark.parametrize("module, added, broken", [
    # an upward import hidden inside a function: the data pipeline reaching for the training loop
    ("data/splits.py", "def _upward():\n    from emgtf.training import loop\n",
     "emgtf.data is not allowed to import emgtf.training"),
    # the export <-> inference circle back: a runner reading the writer's module
    ("inference/runners.py", "def _circle():\n    from emgtf.export import metadata\n",
     "emgtf.inference is not allowed to import emgtf.export"),
    # a library package importing the commands
    ("reporting/runs.py", "from emgtf.cli import parsing\n",
     "emgtf.reporting is not allowed to import emgtf.cli"),
    # a circle inside one package (stream_step imports formats)
    ("export/formats.py", "def _circle():\n    from emgtf.export import stream_step\n",
     "No cycles are allowed in emgtf.export"),
])
def test_the_contract_fails_on_an_upward_import_or_a_circle(copy, module, added, broken):
    path = copy / "emgtf" / module
    original = path.read_text()
    path.write_text(f"{original}\n\n{added}")
    try:
        result = lint(copy)
    finally:
        path.write_text(original)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout  # found only in the copy: the copy is what was analysed

