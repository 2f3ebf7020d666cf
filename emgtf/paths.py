"""Where emgtf finds its shipped configs and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

# The configs live beside the package in the source tree (installed with ``pip install -e``).
# EMGTF_CONFIG_DIR points elsewhere, e.g. at a copy of configs/ edited for a lab's cluster.
CONFIG_DIR = Path(os.environ.get("EMGTF_CONFIG_DIR", Path(__file__).resolve().parent.parent / "configs"))
SPLITS_DIR = CONFIG_DIR / "splits"
TUNER_DIR = Path(os.environ.get("EMGTF_TUNER_DIR", Path(__file__).resolve().parent.parent / "tuner"))


def cache_dir() -> Path:
    """emgtf's cache folder: $EMGTF_CACHE, else $XDG_CACHE_HOME/emgtf, else ~/.cache/emgtf."""
    if "EMGTF_CACHE" in os.environ:
        return Path(os.environ["EMGTF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emgtf"
