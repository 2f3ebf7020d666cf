"""Hyperparameter search with KerasTuner, over the same training loop as ``emgtf.fit``.

- ``search``: ``Search`` and ``run_search``, the search loop;
- ``trials``: one trial as a fit run, its metrics and its table row;
- ``tables``: the trials' table (``best_trials.csv`` / ``.json``, the printed one);
- ``space``: the YAML search spaces of ``tuner/``;
- ``distributed``: KerasTuner's chief/worker mode.
"""

from emgtf.tuning.search import SearchResult, run_search

__all__ = ["SearchResult", "run_search"]
