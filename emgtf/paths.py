"""Where emgtf finds its shipped configs and search spaces, and keeps its caches.

The top-level ``configs/`` and ``tuner/`` folders of the source tree are installed as the packages
``emgtf.configs`` and ``emgtf.tuner`` (see pyproject.toml), so wheels and editable installs find
them the same way, through ``importlib.resources``. ``EMGTF_CONFIG_DIR`` and ``EMGTF_TUNER_DIR``
point elsewhere, e.g. at a copy of ``configs/`` edited for a lab's cluster.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path


def _shipped(package: str, variable: str) -> Path:
    if os.environ.get(variable):
        return Path(os.environ[variable])
    # Installed from a wheel or in editable mode, these are real folders, not zip members.
    return Path(str(importlib.resources.files(package)))


def config_dir() -> Path:
    """The Hydra config folder: ``$EMGTF_CONFIG_DIR``, else the shipped ``configs/``."""
    return _shipped("emgtf.configs", "EMGTF_CONFIG_DIR")


def splits_dir() -> Path:
    """The shipped split files (``configs/splits``), chosen by name with ``data.split=NAME``."""
    return config_dir() / "splits"


def tuner_dir() -> Path:
    """The search-space folder: ``$EMGTF_TUNER_DIR``, else the shipped ``tuner/``."""
    return _shipped("emgtf.tuner", "EMGTF_TUNER_DIR")


def cache_dir() -> Path:
    """emgtf's cache folder: $EMGTF_CACHE, else $XDG_CACHE_HOME/emgtf, else ~/.cache/emgtf."""
    if "EMGTF_CACHE" in os.environ:
        return Path(os.environ["EMGTF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emgtf"
