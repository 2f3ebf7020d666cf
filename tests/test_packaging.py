"""Packaging: the wheel carries every package, the configs and the search spaces; the console
script and ``python -m emgtf`` dispatch to the commands; importing emgtf changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile

from tests.helpers import REPO


def _packages_on_disk() -> set[str]:
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "emgtf").rglob("__init__.py")}
    return found | {"emgtf.configs", "emgtf.tuner"}


def test_pyproject_lists_every_package():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert listed == _packages_on_disk()


def test_wheel_carries_configs_search_spaces_and_modules(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path), str(REPO)],
        check=True, capture_output=True, timeout=300, cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("emgtf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    yaml_files = {p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert {f"emgtf/{name}" for name in yaml_files} <= names
    assert {f"emgtf/tuner/{p.name}" for p in (REPO / "tuner").glob("*.yaml")} <= names
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "emgtf").rglob("*.py")}
    assert modules <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "emgtf = emgtf.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "EMGTF_"))}


def test_importing_emgtf_has_no_side_effects(tmp_path):
    code = (
        "import os, sys, emgtf, emgtf.config, emgtf.data, emgtf.charset\n"
        "assert 'tensorflow' not in sys.modules, 'importing emgtf imported TensorFlow'\n"
        "assert not [k for k in os.environ if k.startswith('TF_')], 'importing emgtf set TF_ variables'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=_clean_env(), timeout=300)


def test_command_modules_import_without_tensorflow(tmp_path):
    # The process settings of emgtf.cli.run (TensorFlow imported with stderr muted) must come
    # before TensorFlow loads, so no command module may load it at import.
    from emgtf.cli import COMMANDS

    code = (
        "import sys, importlib\n"
        f"for name in {sorted(COMMANDS)!r} + ['main']:\n"
        "    importlib.import_module(f'emgtf.cli.{name}')\n"
        "    heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "    assert not heavy, f'emgtf.cli.{name} imports {heavy}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=_clean_env(), timeout=300)


def test_console_script_and_python_m_emgtf_dispatch_to_the_commands(tmp_path):
    out = subprocess.run([sys.executable, "-m", "emgtf", "--help"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0
    from emgtf.cli import COMMANDS

    for command in COMMANDS:
        assert f"  {command} " in out.stdout
    dry = subprocess.run([sys.executable, "-m", "emgtf", "fit", "trainer.epochs=3", "--dry-run"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert dry.returncode == 0 and "epochs: 3" in dry.stdout
    bad = subprocess.run([sys.executable, "-m", "emgtf", "fitt"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("emgtf: error: unknown command 'fitt'")
    err = subprocess.run([sys.executable, "-m", "emgtf", "fit", "trainer.epochz=3"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert err.returncode == 2 and err.stderr.startswith("emgtf fit: error: ")
    assert len(err.stderr.strip().splitlines()) == 1
