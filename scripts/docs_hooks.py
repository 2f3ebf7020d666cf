"""MkDocs hooks (mkdocs.yml ``hooks:``): the pages generated at build time, so they cannot go stale.

- ``reference/cli.md``: every command's own ``--help``, in the order of ``emgtf.cli.COMMANDS``;
- ``reference/layout.md``: the package map, from each package's and module's docstring.

Both import only emgtf's command modules and read docstrings, never TensorFlow.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import re
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]


def _help(name: str) -> str:
    module = importlib.import_module(f"emgtf.cli.{name}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main(["--help"])
    text = out.getvalue().strip()
    if not text:
        raise RuntimeError(f"emgtf.cli.{name}: --help printed nothing")
    return text


def cli_reference() -> str:
    os.environ.setdefault("EMGTF_CONFIG_DIR", str(REPO / "configs"))
    os.environ.setdefault("EMGTF_TUNER_DIR", str(REPO / "tuner"))
    from emgtf.cli import COMMANDS

    lines = [
        "# CLI reference",
        "",
        "Generated at build time from each command's own `--help` (`python -m emgtf.<command> --help`).",
        "Every command is also `emgtf <command>` and `python -m emgtf <command>`; how `key=value`",
        "arguments work is in [Getting started](../index.md#commands).",
        "",
    ]
    for name, (about, _) in COMMANDS.items():
        lines += [f"## {name}", "", f"{about[0].upper()}{about[1:]}.", "", "```text", _help(name), "```", ""]
    return "\n".join(lines)


def _first_paragraph(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    # reStructuredText roles and literals, as the docstrings write them, in Markdown
    return re.sub(r"(?::[a-z]+:)?``?([^`]+)``?", r"`\1`", text)


def layout() -> str:
    lines = [
        "# Package layout",
        "",
        "Generated at build time from the docstrings of emgtf's packages and modules (the first",
        "paragraph of each). The API of each is in the [API reference](api.md).",
        "",
    ]
    for package in sorted((REPO / "emgtf").rglob("__init__.py")):
        folder = package.parent
        dotted = ".".join(folder.relative_to(REPO).parts)
        lines += [f"## `{dotted}`", "", _first_paragraph(package).replace("|", "\\|"), "",
                  "| module | what it is |", "|---|---|"]
        for module in sorted(folder.glob("*.py")):
            if module.name == "__init__.py":
                continue
            lines.append(f"| `{module.stem}` | {_first_paragraph(module).replace('|', chr(92) + '|')} |")
        lines.append("")
    return "\n".join(lines)


def on_files(files, config):
    for path, content in (("reference/cli.md", cli_reference()), ("reference/layout.md", layout())):
        files.append(File.generated(config, path, content=content))
    return files
