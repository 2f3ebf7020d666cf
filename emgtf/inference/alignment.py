"""The arrays of the alignment view of one session (``python -m emgtf.evaluate ... report=true``).

``session_alignment`` runs a model over a whole session (its emissions are the ones the
evaluation decoded) and cuts out a few seconds: the log spectrogram of both bands (the model's own
``LogSpectrogram`` layer, before normalisation), the keystrokes, the per-frame log-probabilities
and the decoded keys, on one clock: seconds from the session's first sample. Drawing them is
``emgtf.reporting.alignment``'s (no TensorFlow there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emgtf.errors import EmgtfError
from emgtf.reporting.alignment import AlignmentView

LEAD_SECONDS = 0.5  # a default view starts this long before the session's first keystroke


def session_alignment(model, path, decoder=None, *, seconds: float, start: float | None = None,
                      source: str | None = None) -> AlignmentView:
    """The alignment view of ``seconds`` seconds of session file ``path`` from ``start`` (seconds
    from its first sample; None: ``LEAD_SECONDS`` before its first keystroke).

    ``decoder``: the evaluation's decoder; each decoded key is shown at its onset (the emission
    that starts it, ``emgtf.decoding.onsets``), greedy decoding's read off the argmax path,
    another decoder's from its own search of the shown emissions.
    """
    from emgtf import SAMPLE_RATE
    from emgtf.data import EMGSession
    from emgtf.decoding import GreedyDecoder
    from emgtf.inference.runners import check_finite, forward
    from emgtf.models.emission import EmissionRule, emitted_frames
    from emgtf.models.layers import LogSpectrogram

    rule = EmissionRule.from_model(model)
    spectrogram_layer = next(layer for layer in model.layers if isinstance(layer, LogSpectrogram))
    with EMGSession(path) as session:
        name = session.session_name
        times = session.timestamps
        emg = session.read()
        t0 = float(times[0]) if len(times) else 0.0
        duration = len(emg) / SAMPLE_RATE
        if start is None:
            truth = session.ground_truth(float(times[0]), float(times[-1])) if len(times) else None
            first_key = float(truth.timestamps[0]) - t0 if truth is not None and len(truth.timestamps) else 0.0
            start = max(0.0, first_key - LEAD_SECONDS)
        if not 0 <= start < duration:
            raise EmgtfError(f"report_start={start:g}: session {name} is {duration:.2f} s long")
        end = min(duration, start + seconds)
        truth = session.ground_truth(t0 + start, t0 + end)
    # The whole session, as the evaluation saw it (a model's emissions may depend on all of it).
    log_probs = forward(model, emg[None])
    emitted = int(emitted_frames(model, np.asarray([len(emg)]), log_probs.shape[1])[0])
    log_probs = log_probs[0, :emitted]
    check_finite(log_probs[None], source or f"model {model.name}", [name])
    hop, n_fft = rule.hop_length, rule.n_fft
    emission_t = ((np.arange(emitted) * rule.subsampling + rule.center_offset_frames) * hop + n_fft / 2) / SAMPLE_RATE
    shown = np.flatnonzero((emission_t >= start) & (emission_t <= end))
    if not len(shown):
        raise EmgtfError(f"session {name}: no emission of {model.name} lies in {start:g}-{end:g} s; "
                         "choose a longer report_seconds or another report_start")
    i0, i1 = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
    if i1 - i0 < n_fft:
        raise EmgtfError(f"session {name}: {start:g}-{end:g} s is shorter than one spectrogram frame")
    spec = np.asarray(spectrogram_layer(emg[None, i0:i1]))[0]
    window = log_probs[shown[0]:shown[-1] + 1]
    decoded = decoded_times = None
    if decoder is not None and not isinstance(decoder, GreedyDecoder):
        # Each key at its onset: the emission that starts it (the greedy row's definition).
        decoded, onsets = decoder.decode_batch(window[None], np.asarray([len(window)]), onsets=True)[0]
        decoded_times = emission_t[shown[0] + onsets]
    return AlignmentView(
        session=name,
        spectrogram=spec,
        log_probs=window,
        key_times=truth.timestamps - t0,
        keys=truth.text,
        decoded=decoded,
        decoded_times=decoded_times,
        frame_rate=SAMPLE_RATE / hop,
        emission_rate=rule.emission_rate,
        emission_start=float(emission_t[shown[0]]),
        # Frame k of the cut-out covers samples i0 + k * hop ... + n_fft: its centre at the middle
        # of the k-th column of the image.
        start=(i0 + n_fft / 2 - hop / 2) / SAMPLE_RATE,
        path=Path(path),
        window=(float(start), float(end)),
    )
