"""CTC decoding speed: characters per second of greedy and beam-search decoding.

    python scripts/benchmark.py decode [--chars 400] [--repeats 3] [--seed 0] [--lm PATH]

Emissions are synthetic but shaped like a trained CTC model's at 125 Hz: English text (words drawn
from wordfreq by frequency, sentences capitalised), 4-6 frames per character, one or two frames
peaked on the key (with a frequent confusion with another key and some blank mass), the others
blank-dominated with a spread of confidence, plus Gaussian noise on every logit. Beam search runs
without an LM and with one: --lm, else the default LM if it was built, else the Reuters fixture.
The CER of each decoder against the text is reported as a sanity check of the emissions.
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emgtf.charset import SHIFT, charset  # noqa: E402
from emgtf.decoding import BeamSearchDecoder, GreedyDecoder  # noqa: E402
from emgtf.decoding.lm import CharLM, default_lm_path  # noqa: E402
from emgtf.metrics import error_rates  # noqa: E402

# shared/ lies beside the repository (as in CI).
FIXTURE_LM = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reuters-3-gram-char-lm.arpa"
)


def english_keys(num_chars: int, rng: np.random.Generator) -> str:
    """Key sequence of roughly ``num_chars`` keys of English-like text (shift before capitals)."""
    import wordfreq

    words = wordfreq.top_n_list("en", 5000)
    weights = np.array([wordfreq.word_frequency(w, "en") for w in words])
    weights /= weights.sum()
    keys, sentence_start = [], True
    while len(keys) < num_chars:
        word = words[rng.choice(len(words), p=weights)]
        word = "".join(c for c in word if c in charset())
        if not word:
            continue
        if sentence_start:
            keys += [SHIFT, word[0].upper()] + list(word[1:])
        else:
            keys += list(word)
        sentence_start = rng.random() < 0.1
        keys.append("." if sentence_start else " ")
        if sentence_start:
            keys.append(" ")
    return "".join(keys[:num_chars])


def synthetic_emissions(keys: str, rng: np.random.Generator) -> np.ndarray:
    """(frames, 99) log-probabilities of a plausible CTC model for the key sequence."""
    cs = charset()
    frames = []
    for label in cs.str_to_labels(keys):
        n = int(rng.integers(4, 7))
        peak = int(rng.integers(1, 3))
        logits = rng.normal(0.0, 1.0, size=(n, cs.num_classes))
        logits[:peak, label] += rng.uniform(5.0, 10.0, size=peak)
        if rng.random() < 0.3:  # confused with another key
            logits[:peak, rng.integers(cs.num_keys)] += rng.uniform(4.0, 8.0)
        logits[:peak, cs.blank] += rng.uniform(2.0, 5.0, size=peak)
        logits[peak:, cs.blank] += rng.uniform(6.0, 16.0, size=n - peak)
        frames.append(logits)
    logits = np.concatenate(frames)
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def chars_per_second(decoder, log_probs, num_chars: int, repeats: int) -> tuple[float, str]:
    lengths = np.array([log_probs.shape[1]])
    decoder.decode_batch(log_probs, lengths)  # warm-up: caches, imports
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        text = decoder.decode_batch(log_probs, lengths)[0]
        best = min(best, time.perf_counter() - start)
    return num_chars / best, text


def main(argv: list[str]) -> int:
    from emgtf.cli.parsing import ArgumentParser

    parser = ArgumentParser(
        prog="benchmark.py decode", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--chars", type=int, default=400, help="keys of text (default 400)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm", type=Path, default=None, help="LM for the fused run")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    keys = english_keys(args.chars, rng)
    log_probs = synthetic_emissions(keys, rng)[None]
    lm_path = args.lm or (default_lm_path() if default_lm_path().is_file() else FIXTURE_LM)

    result = {"benchmark": "decode", "cpu_count": os.cpu_count(), "chars": len(keys),
              "frames": log_probs.shape[1],
              "blank_skipped_frames": float(np.mean(np.exp(log_probs[0, :, -1]) > 0.999))}
    runs = {
        "greedy": GreedyDecoder(),
        "beam": BeamSearchDecoder(),
        "beam_exact": BeamSearchDecoder(blank_skip_threshold=None),
    }
    if lm_path.is_file():
        lm = CharLM(lm_path)
        runs["beam_lm"] = BeamSearchDecoder(lm=lm)
        runs["beam_lm_exact"] = BeamSearchDecoder(lm=lm, blank_skip_threshold=None)
        result["lm"] = str(lm_path)
    for name, decoder in runs.items():
        speed, text = chars_per_second(decoder, log_probs, len(keys), args.repeats)
        result[f"{name}_chars_per_s"] = round(speed, 1)
        result[f"{name}_cer"] = round(error_rates([text], [keys])["CER"], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
