"""Hyperparameter search with KerasTuner, over the same training loop as ``emgtf.fit``.

- :mod:`~emgtf.tuning.search`: :class:`Search` and :func:`run_search`, the search loop;
- :mod:`~emgtf.tuning.trials`: one trial as a fit run, its metrics and its table row;
- :mod:`~emgtf.tuning.tables`: the trials' table (``best_trials.csv`` / ``.json``, the printed one);
- :mod:`~emgtf.tuning.space`: the YAML search spaces of ``tuner/``;
- :mod:`~emgtf.tuning.distributed`: KerasTuner's chief/worker mode.
"""

from emgtf.tuning.search import SearchResult, run_search

__all__ = ["SearchResult", "run_search"]
