"""Synthetic wrist sEMG sessions of simulated typists, in the format of Meta's emg2qwerty release.

The generator simulates what makes the real task learnable and hard: each user has a fixed anatomy
(per key a spatial pattern over the 16 electrodes of the typing hand's band, shared by the keys of
one finger; the two bands mirror each other), each key press is a burst of band-limited noise
through that pattern, rising before the press and decaying after it, with a weaker release burst;
typing at a user's own speed makes bursts overlap; sensor noise, 60 Hz pick-up, motion artefacts
and the device's high-pass filter are added; and each session re-dons the bands (a rotation by
about one electrode, new gains and noise). Prompts are English words and sentences from a word
frequency list, typed with shift, typos corrected by backspace, and enter.

Public API:
    generate_dataset(out, *, users, sessions, minutes, eval_minutes, seed, overwrite, format) -> split file
    generate_session(out, *, seed, user, session, minutes, format) -> SessionInfo
    generate_from_events(out, events_tsv, *, seed, user, format) -> SessionInfo (a real timeline)
    default_dataset() -> (root, split file): the embedded default of ``python -m emgtf.fit``
    SynthConfig: the difficulty knobs.
Command line: ``python -m emgtf.synth out=DIR [users=N] [sessions=N] [minutes=M] [seed=S]
[format=hdf5|bids] [events=EVENTS_TSV]``.
"""

from emgtf.synth.dataset import (
    DEFAULT_EVAL_MINUTES,
    DEFAULT_NAME,
    DEFAULT_SEED,
    DEFAULT_SPLIT_NAME,
    DEFAULT_TRAIN_MINUTES,
    DEFAULT_TRAIN_SESSIONS,
    METADATA_FILE,
    SPLIT_FILE,
    SessionInfo,
    default_dataset,
    generate_dataset,
    generate_from_events,
    generate_session,
)
from emgtf.synth.knobs import SynthConfig

__all__ = [
    "DEFAULT_EVAL_MINUTES",
    "DEFAULT_NAME",
    "DEFAULT_SEED",
    "DEFAULT_SPLIT_NAME",
    "DEFAULT_TRAIN_MINUTES",
    "DEFAULT_TRAIN_SESSIONS",
    "METADATA_FILE",
    "SPLIT_FILE",
    "SessionInfo",
    "SynthConfig",
    "default_dataset",
    "generate_dataset",
    "generate_from_events",
    "generate_session",
]
