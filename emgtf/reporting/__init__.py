"""Figures, tables and an HTML page from emgtf's run folders and evaluation reports.

Nothing here imports TensorFlow or Keras: a report of finished runs takes seconds, on any machine.
Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so they never need a display.

- ``runs``: read run folders (``config.yaml``, ``history.csv``, the test report) and label each
  run by what differs between their configs;
- ``error_analysis``: substitutions, insertions and deletions per key from (prediction, target) pairs;
- ``keyboard_groups``: the 98 keys ordered and grouped by hand and finger of the touch-typing map;
- ``figures``: training curves and the best-CER bar chart;
- ``sweep``: a one-hyperparameter tune folder: val and test CER against the swept value;
- ``error_figures``: confusion matrix, top substitutions, per-key insertion and deletion rates;
- ``alignment``: one session's spectrogram, keystrokes, per-frame key probabilities, decoding;
- ``html``: the self-contained report page;
- ``build``: writes a report folder (PNG, SVG, summary.csv, index.html).

Command line: ``python -m emgtf.report RUN_DIR [RUN_DIR ...] [--out DIR]`` (see ``emgtf.report``).
"""
