"""Tiny real inputs for the report tests: session files written by emgtf's own writer, the fit
overrides of a seconds-long training run, and a reader of the report page's tables."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
T0 = 1_622_765_527.0  # a unix time in the range of the real sessions


def write_tiny_split(root: Path, *, samples: int = 8000, text: str = "hello") -> tuple[Path, Path]:
    """Train, val and test sessions of white noise (std 2.5) with ``text`` typed evenly across
    each, and their split file; returns (root, split file)."""
    from emgtf.data import write_session
    from emgtf.data.splits import write_split_file

    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(["train", "val", "test"]):
        rng = np.random.default_rng(i)
        time = T0 + np.arange(samples) / 2000.0
        emg = rng.normal(0.0, 2.5, size=(samples, 2, 16)).astype(np.float32)
        starts = np.linspace(500, samples - 200, len(text)).astype(int)
        keystrokes = [{"key": k, "start": float(time[s]), "end": float(time[s + 100])} for k, s in zip(text, starts)]
        write_session(root / f"{name}.hdf5", time=time, emg_left=emg[:, 0], emg_right=emg[:, 1],
                      keystrokes=keystrokes, prompts=[], session_name=name, user="test_user")
    return root, write_split_file(root / "split.yaml", name="tiny", train=["train"], val=["val"], test=["test"])


def tiny_fit_overrides(data: tuple[Path, Path], run_dir: Path, *extra: str, epochs: int = 2) -> list[str]:
    """fit overrides for a tiny TCN on :func:`write_tiny_split` data: one batch per epoch."""
    root, split = data
    return [
        f"data.root={root}", f"data.split={split}", f"run_dir={run_dir}", "logger=none",
        "model=tcn", "model.mlp_features=[16]", "model.hidden_size=8", "model.num_layers=1",
        "model.spec_augment=false", "augment=none", f"trainer.epochs={epochs}", "trainer.batch_size=4",
        "trainer.window_length=2000", "trainer.padding=[200,100]", "trainer.val_batch_size=8",
        "trainer.verbose=0", *extra,
    ]


def subprocess_env(**changes) -> dict:
    """The environment for a child Python that imports this checkout's emgtf; a value of None
    removes the variable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class Tables(HTMLParser):
    """The <table> elements of a page by id: ``{id: {"columns": [...], "rows": [[(text, value)]]}}``
    where ``value`` is the cell's ``data-value`` (None for a text cell)."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self._table = self._cell = None
        self._row = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", f"table-{len(self.tables)}"),
                                                 {"columns": [], "rows": []})
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = [tag, "", attrs.get("data-value")]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if all(c[0] == "th" for c in self._row):
                self._table["columns"] = [c[1] for c in self._row]
            else:
                self._table["rows"].append([(c[1], c[2]) for c in self._row])
            self._row = None
        elif tag == "table":
            self._table = None

    def column(self, table: str, name: str) -> list:
        """The cells of one column: the data-value as a number where there is one, else the text."""
        t = self.tables[table]
        i = t["columns"].index(name)
        return [float(v) if v is not None else text for text, v in (row[i] for row in t["rows"])]
