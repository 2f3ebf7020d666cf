"""CTC decoding: per-frame log-probabilities (batch, frames, 99) to typed key sequences.

- ``greedy``: ``ctc_greedy``, ``GreedyDecoder``;
- ``beam``: ``BeamSearchDecoder``, CTC prefix beam search with LM fusion;
- ``lm``: the word-internal character n-gram LM (KenLM files);
  ``lm_build``: its builder;
- ``onsets``: each decoded key's onset frame, one definition for all decoders.

Every decoder has ``decode_batch(log_probs, lengths) -> list[str]``, and
``decode_batch(..., onsets=True) -> list[Decoding]`` (keys and onset frames); ``make_decoder``
builds one from a ``decoder`` config or from keyword options.
"""

from __future__ import annotations

import inspect

from emgtf.decoding.beam import BeamSearchDecoder
from emgtf.decoding.greedy import GreedyDecoder, ctc_greedy
from emgtf.decoding.lm import default_lm_path
from emgtf.decoding.onsets import Decoding
from emgtf.errors import EmgtfError

__all__ = [
    "BeamSearchDecoder",
    "Decoding",
    "GreedyDecoder",
    "ctc_greedy",
    "decoder_name",
    "default_lm_path",
    "make_decoder",
]


def make_decoder(kind_or_config=None, /, **options):
    """A decoder from a kind and keyword options (``make_decoder("beam", lm_path="default")``)
    or from a ``decoder`` config (a mapping with ``kind`` and options, as in ``configs/decoder/``).

    ``kind`` is "greedy" (no options) or "beam" (the options of ``BeamSearchDecoder``).
    """
    if isinstance(kind_or_config, str):
        options = {"kind": kind_or_config, **options}
    elif kind_or_config is not None:
        from emgtf.config import to_container

        options = {**to_container(kind_or_config), **options}
    kind = options.pop("kind", "greedy")
    if kind == "greedy":
        if options:
            raise EmgtfError(f"decoder: greedy decoding takes no options, got {sorted(options)}")
        return GreedyDecoder()
    if kind == "beam":
        allowed = set(inspect.signature(BeamSearchDecoder).parameters)
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise EmgtfError(
                f"decoder: unknown beam-search option(s) {unknown}; known: {sorted(allowed)}"
            )
        return BeamSearchDecoder(**options)
    raise EmgtfError(f"decoder: unknown kind {kind!r}; expected 'greedy' or 'beam'")


def decoder_name(config) -> str:
    """``greedy``, ``beam`` or ``beam_lm``: how reports and file names call a decoder config."""
    kind = str(config.get("kind", "greedy"))
    return f"{kind}_lm" if kind == "beam" and config.get("lm_path") else kind
