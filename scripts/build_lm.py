#!/usr/bin/env python
"""Builds the word-internal character n-gram LM used by beam-search decoding (offline).

    python scripts/build_lm.py                       # 6-gram of wordfreq's top English words
    python scripts/build_lm.py --words 50000 --order 5 --out my.arpa
    python scripts/build_lm.py --word-counts counts.tsv --out my.arpa

The model matches the emg2qwerty reference LM's design (a character 6-gram in which every word is
a sentence, over the letters a-z) but is estimated from the word frequencies the ``wordfreq``
package ships instead of WikiText-103, with interpolated modified Kneser-Ney smoothing written as
an ARPA backoff model that KenLM loads. The default output is emgtf's cache
(``emgtf.decoding.lm.default_lm_path()``), where ``lm_path="default"`` finds it; an existing file is kept
unless --overwrite is given.

``--word-counts`` reads one word per line, optionally followed by a tab and its count (default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emgtf.cli import run  # noqa: E402
from emgtf.errors import EmgtfError  # noqa: E402
from emgtf.decoding.lm import CharLM, default_lm_path  # noqa: E402
from emgtf.decoding.lm_build import build_word_internal_arpa, letter_runs, wordfreq_counts  # noqa: E402


def read_word_counts(path: Path) -> Counter:
    counts: Counter = Counter()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise EmgtfError(f"{path}: cannot read word counts ({e.strerror})") from e
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        word, _, count = line.partition("\t")
        try:
            value = int(count) if count.strip() else 1
        except ValueError:
            raise EmgtfError(f"{path}:{number}: count {count!r} is not an integer") from None
        for run_ in letter_runs(word.strip()):
            counts[run_] += value
    if not counts:
        raise EmgtfError(f"{path}: no words with letters a-z")
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="build_lm.py", description=__doc__.split("\n\n")[0].strip()
    )
    parser.add_argument("--out", type=Path, default=None, help="ARPA file to write "
                        f"(default: {default_lm_path()})")
    parser.add_argument("--order", type=int, default=6, help="n-gram order (default 6)")
    parser.add_argument("--words", type=int, default=200_000,
                        help="most frequent wordfreq words to use (default 200000)")
    parser.add_argument("--lang", default="en", help="wordfreq language (default en)")
    parser.add_argument("--word-counts", type=Path, default=None,
                        help="use this word list (word[TAB count] per line) instead of wordfreq")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)

    if args.order < 1:
        raise EmgtfError(f"--order: must be at least 1, got {args.order}")
    if args.words < 1:
        raise EmgtfError(f"--words: must be at least 1, got {args.words}")
    out = args.out if args.out is not None else default_lm_path()
    if out.exists() and not args.overwrite:
        raise EmgtfError(f"{out}: exists; pass --overwrite to replace it")

    start = time.perf_counter()
    if args.word_counts is not None:
        counts = read_word_counts(args.word_counts)
        source = str(args.word_counts)
    else:
        counts = wordfreq_counts(args.words, args.lang)
        source = f"wordfreq {args.lang} top {args.words}"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so an interrupted build leaves no truncated model.
    partial = out.with_name(out.name + ".partial")
    try:
        ngrams = build_word_internal_arpa(counts, partial, order=args.order)
        CharLM(partial)  # refuse to install a file KenLM cannot load
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    summary = {
        "out": str(out),
        "source": source,
        "words": len(counts),
        "order": args.order,
        "ngrams": ngrams,
        "bytes": out.stat().st_size,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(run(main, "build_lm.py"))
