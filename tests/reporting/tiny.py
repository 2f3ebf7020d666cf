"""For the report tests: the environment of a child Python, and a reader of the report page's
tables. (Tiny data and fit configs come from tests/helpers.py.)"""

from __future__ import annotations

import os
from html.parser import HTMLParser

from tests.helpers import REPO


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
