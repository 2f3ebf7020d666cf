"""Checking an export: run it on a probe signal and compare with the model it came from."""

from __future__ import annotations

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError
from emgtf.inference.export_folder import STEP_SIGNATURE, read_metadata
from emgtf.inference.runners import check_finite, forward, load_runner, run_step_stream
from emgtf.models import emission_lengths
from emgtf.models.emission import EmissionRule

# The export check guards against real mismatches (a missing weight, a training-mode branch),
# which move log-probabilities by far more than this; float32 re-association moves them ~1e-6.
VERIFY_TOLERANCE = 1e-3


def probe_signal(rule: EmissionRule, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A batch of two white-noise signals (std 2.5, the scale of real EMG) and their lengths; the
    second is zero-padded, its length between frame boundaries."""
    samples = max(rule.samples_for(80), 2 * rule.sample_rate) + 7
    emg = np.random.default_rng(seed).normal(0.0, 2.5, (2, samples, NUM_BANDS, NUM_CHANNELS))
    emg = emg.astype(np.float32)
    lengths = np.array([samples, samples - 41 * rule.hop_length - 5], dtype=np.int32)
    emg[1, lengths[1]:] = 0.0
    return emg, lengths


def verify_export(model, directory, rule: EmissionRule, checkpoint=None) -> float:
    """Runs the export on ``probe_signal`` and returns the largest log-probability difference
    from ``model``; raises EmgtfError if it exceeds VERIFY_TOLERANCE or a length is off."""
    emg, lengths = probe_signal(rule)
    fmt = read_metadata(directory)["format"]
    runner = load_runner(directory)
    expected = forward(model, emg)
    source = f"checkpoint {checkpoint}" if checkpoint is not None else f"model {model.name}"
    # A NaN difference would pass any tolerance check (max(0.0, nan) is 0.0): refuse it first.
    check_finite(expected, f"export check: {source}", ["probe signal"] * len(emg))
    checks = [(None, np.full(len(emg), emg.shape[1]))]
    if fmt != "onnx":
        checks.append((lengths, lengths))
    worst = 0.0
    for given, true_lengths in checks:
        log_probs, emitted = runner(emg, given)
        got = {"log_probs": log_probs, "emission_lengths": emitted}
        if got["log_probs"].shape != expected.shape:
            raise EmgtfError(
                f"export check failed: log_probs of shape {got['log_probs'].shape}, the checkpoint "
                f"gives {expected.shape}"
            )
        want = np.asarray(emission_lengths(model, true_lengths), dtype=np.int64)
        got_lengths = np.asarray(got["emission_lengths"], np.int64)
        consistent = np.array_equal(want, rule.emissions(true_lengths))
        if not consistent or not np.array_equal(got_lengths, want):
            raise EmgtfError(
                f"export check failed: emission lengths {got['emission_lengths'].tolist()}, expected "
                f"{want.tolist()}"
            )
        check_finite(log_probs, f"export check: the {fmt} export in {directory}", ["probe signal"] * len(emg))
        difference = float(np.max(np.abs(got["log_probs"] - expected)))
        worst = difference if not difference <= worst else worst  # keeps a NaN, unlike max()
    if not worst <= VERIFY_TOLERANCE:
        raise EmgtfError(
            f"export check failed: the {fmt} export differs from the checkpoint by {worst:.3g} "
            f"(tolerance {VERIFY_TOLERANCE})"
        )
    return worst


def verify_step(model, directory, layout, rule: EmissionRule) -> float:
    """Streams the first probe signal through the SavedModel's ``stream_step`` signature and
    returns the largest log-probability difference from ``model`` on the whole signal; raises
    EmgtfError beyond VERIFY_TOLERANCE."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(directory)).signatures[STEP_SIGNATURE]

    def step(state, chunk):
        out = signature(state=tf.constant(state), chunk=tf.constant(chunk))
        return out["next_state"].numpy(), out["log_probs"].numpy()

    emg = probe_signal(rule)[0][:1]
    expected = forward(model, emg)[0]
    streamed = run_step_stream(step, layout, emg[0], len(expected))
    difference = float(np.max(np.abs(streamed - expected)))
    if not difference <= VERIFY_TOLERANCE:
        raise EmgtfError(
            f"export check failed: the stream_step signature differs from the checkpoint by "
            f"{difference:.3g} (tolerance {VERIFY_TOLERANCE})"
        )
    return difference
