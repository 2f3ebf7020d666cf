"""The front page and the documentation site: the README stays a short front page with the
quickstart CI runs, and the site's generated pages come from the commands themselves."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from emgtf.cli import COMMANDS
from tests.helpers import REPO

QUICKSTART = 'pip install -e ".[dev]" && python -m emgtf.fit'


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "scripts" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_a_short_front_page_with_the_quickstart_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 12 * 1024
    assert QUICKSTART in readme and "python -m pytest" in readme and "-m slow" in readme
    # CI installs and tests exactly as the quickstart says.
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -q -e ".[dev]"' in ci and "\npython -m pytest\n" in ci
    assert "mkdocs build --strict" in ci
    for name in COMMANDS:  # the command table names every command
        assert f"`python -m emgtf.{name}" in readme, name


def test_every_local_link_of_the_readme_exists():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert "docs/results.md" in links
    for link in links:
        assert (REPO / link).exists(), link


def test_every_page_of_the_nav_exists():
    import yaml

    class Loader(yaml.SafeLoader):  # mkdocs.yml may hold !!python tags; the nav is plain
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    config = yaml.load((REPO / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)

    def pages(nav):
        for entry in nav:
            for value in entry.values():
                yield from pages(value) if isinstance(value, list) else [value]

    generated = {"reference/cli.md", "reference/layout.md"}
    found = list(pages(config["nav"]))
    assert generated <= set(found) and "results.md" in found
    for page in set(found) - generated:
        assert (REPO / "docs" / page).exists(), page


def test_the_cli_reference_is_each_commands_own_help():
    text = _hooks().cli_reference()
    for name in COMMANDS:
        assert f"## {name}\n" in text
        assert re.search(rf"usage: python -m emgtf\.{name} \[-h\] \[--verbose\]", text), name
    assert "--chunk-ms CHUNK_MS" in text and "key=value" in text


def test_the_layout_page_lists_every_package_and_module():
    text = _hooks().layout()
    for init in (REPO / "emgtf").rglob("__init__.py"):
        package = ".".join(init.parent.relative_to(REPO).parts)
        assert f"## `{package}`" in text
    assert "| `startup` |" in text and "| `streaming` |" in text and "``" not in text


@pytest.mark.slow  # about 15 s: the whole site, API reference included
def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "reference" / "cli" / "index.html").exists()
    assert "emgtf.data" in (tmp_path / "reference" / "api" / "index.html").read_text(encoding="utf-8")


def test_the_readmes_command_table_is_the_getting_started_pages():
    def table(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("| `python -m emgtf.")]

    readme = table((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(readme) >= len(COMMANDS)
    assert readme == table((REPO / "docs" / "index.md").read_text(encoding="utf-8"))
