"""Rendering a session's sEMG from its keystrokes, the user's anatomy and the session's donning.

Why each part is there:

- A key press recruits the muscles of the pressing finger (see ``anatomy``): their motor units
  fire asynchronously, which on the skin looks like band-limited noise (~20-450 Hz) whose amplitude
  follows the muscle's activation. So each muscle is white noise, multiplied by its activation
  envelope, band-passed by its own tissue filter, and spread over the channels by its spatial
  pattern.
- The activation starts 50-100 ms before the key is registered (the finger must travel) and
  decays 100-150 ms after it; a weaker burst (mostly extensor) lifts the finger at release; a held
  key (shift) keeps a low activation. At 150-250 ms between keys the bursts of neighbouring keys
  overlap, as in the real recordings; the burst peak also scatters around the logged press time.
- Hands hovering over the keyboard keep a low, slowly wandering tonic activity, so that quiet
  stretches are not pure sensor noise.
- The recording adds amplifier/electrode noise (per channel, with the odd badly contacting
  electrode), a little 60 Hz mains pick-up and occasional motion artefacts (electrode-skin potential
  steps), and the device high-pass filters everything.

Rendering works in chunks of ``CHUNK`` samples, carrying filter states across chunks, so that
memory stays bounded however long the session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from emgtf import NUM_CHANNELS, SAMPLE_RATE
from emgtf.synth.anatomy import NUM_MUSCLES, Anatomy, Donning
from emgtf.synth.knobs import SynthConfig
from emgtf.synth.typist import Typing

CHUNK = 1 << 16  # samples per rendering chunk (33 s)
_MIX_BLOCK = 2048
_RELEASE_RISE_S, _RELEASE_DECAY_S = 0.03, 0.07


def _kernel(rise_s: float, decay_s: float) -> tuple[np.ndarray, int]:
    """Burst envelope (peak 1) and the index of its peak: a raised-cosine rise and decay."""
    rise = max(int(round(rise_s * SAMPLE_RATE)), 1)
    decay = max(int(round(decay_s * SAMPLE_RATE)), 1)
    up = 0.5 - 0.5 * np.cos(np.pi * np.arange(rise) / rise)
    down = 0.5 + 0.5 * np.cos(np.pi * np.arange(decay + 1) / decay)
    return np.concatenate([up, down]).astype(np.float32), rise


@dataclass(frozen=True)
class _Segments:
    """Envelope pieces to add: per piece a start sample, a kernel id, the activation (2*16)."""

    start: np.ndarray
    kernel: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class _Transients:
    start: np.ndarray  # sample
    band: np.ndarray  # 0, 1 or 2 (both)
    tau: np.ndarray  # samples
    amplitude: np.ndarray  # (n, 2, 16)


def _segments(anatomy: Anatomy, typing: Typing, t0: float, rng: np.random.Generator, cfg: SynthConfig):
    """All envelope pieces of a session: press bursts, release bursts and holds."""
    n = len(typing.keys)
    press_k, press_peak = _kernel(anatomy.rise_s, anatomy.decay_s)
    release_k, release_peak = _kernel(_RELEASE_RISE_S, _RELEASE_DECAY_S)
    amp = cfg.burst_gain * rng.lognormal(0.0, cfg.burst_jitter, n)
    jitter = rng.normal(0.0, cfg.onset_jitter_ms / 1000.0, n)
    press = np.round((typing.press - t0 + jitter) * SAMPLE_RATE).astype(np.int64)
    release = np.round((typing.release - t0 + jitter) * SAMPLE_RATE).astype(np.int64)
    pw = (anatomy.press[typing.keys] * amp[:, None, None]).reshape(n, 2 * NUM_MUSCLES)
    rw = (anatomy.release[typing.keys] * (amp * cfg.release_gain)[:, None, None]).reshape(n, 2 * NUM_MUSCLES)
    hold_len = np.maximum(release - press, 1)
    kernels = [press_k, release_k]
    # A held key keeps a low activation from press to release: a flat kernel of the hold's length
    # (kernel ids 2.., one per keystroke).
    hold_ids = []
    for length in hold_len:
        hold_ids.append(len(kernels))
        kernels.append(np.full(int(length), cfg.hold_level, dtype=np.float32))
    seg = _Segments(
        start=np.concatenate([press - press_peak, release - release_peak, press]),
        kernel=np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64), np.array(hold_ids, np.int64)]),
        weight=np.concatenate([pw, rw, pw]).astype(np.float32),
    )
    order = np.argsort(seg.start, kind="stable")
    return _Segments(seg.start[order], seg.kernel[order], seg.weight[order]), kernels


def _transients(num_samples: int, rng: np.random.Generator, cfg: SynthConfig) -> _Transients:
    """Motion artefacts: potential steps that relax over tens to hundreds of ms."""
    n = int(rng.poisson(cfg.transients_per_minute * num_samples / SAMPLE_RATE / 60.0))
    # Mostly one common deflection over the band (the band shifts), with channel variation.
    amp = cfg.transient_amplitude * rng.lognormal(0.0, 0.5, (n, 1, 1))
    amp = amp * rng.normal(1.0, 0.6, (n, 2, NUM_CHANNELS))
    amp *= rng.choice([-1.0, 1.0], (n, 1, 1))
    return _Transients(
        start=np.sort(rng.integers(0, max(num_samples, 1), n)),
        band=rng.integers(0, 3, n),
        tau=np.round(rng.uniform(0.02, 0.15, n) * SAMPLE_RATE).astype(np.int64),
        amplitude=amp,
    )


def render(
    anatomy: Anatomy,
    donning: Donning,
    typing: Typing,
    num_samples: int,
    t0: float,
    rng: np.random.Generator,
    cfg: SynthConfig,
) -> np.ndarray:
    """The session's sEMG, float32 (num_samples, 2, 16), left band first; sample i is at
    ``t0 + i / SAMPLE_RATE``."""
    bands = 2 * NUM_CHANNELS
    segs, kernels = _segments(anatomy, typing, t0, rng, cfg)
    seg_end = segs.start + np.array([len(kernels[k]) for k in segs.kernel], dtype=np.int64)
    trans = _transients(num_samples, rng, cfg)
    mixing = anatomy.mixing(donning.rotation, donning.channel_gain)  # (2, 16 ch, 16 muscles)
    tonic = (cfg.tonic_level * cfg.burst_gain * anatomy.tonic).reshape(-1, 1).astype(np.float32)
    # The hovering hands' tonic activity wanders slowly (seconds to tens of seconds).
    slow_f = rng.uniform(1 / 30, 1 / 4, 3)
    slow_phase = rng.uniform(0, 2 * np.pi, 3)
    mains_f = 60.0 + rng.normal(0.0, 0.01)
    mains_amp = donning.mains_amplitude.reshape(-1, 1).astype(np.float32)
    noise_std = donning.noise_std.reshape(-1, 1).astype(np.float32)
    # float32 throughout: it halves the memory traffic, and 24 bits are plenty for noise.
    highpass = sps.butter(4, cfg.highpass_hz, btype="highpass", fs=SAMPLE_RATE, output="sos")
    highpass = highpass.astype(np.float32)
    hp_state = np.zeros((highpass.shape[0], bands, 2), dtype=np.float32)
    sos = anatomy.sos.reshape(bands, -1, 6).astype(np.float32)
    # The drive below is uniform noise of variance 1/12: the filters' gain makes it unit variance.
    sos[:, 0, :3] *= np.float32(np.sqrt(12.0))
    muscle_state = np.zeros((bands, sos.shape[1], 2), dtype=np.float32)
    mixing = mixing.astype(np.float32)

    out = np.empty((num_samples, 2, NUM_CHANNELS), dtype=np.float32)
    first = 0
    for c0 in range(0, num_samples, CHUNK):
        c1 = min(c0 + CHUNK, num_samples)
        length = c1 - c0
        idx = np.arange(c0, c1, dtype=np.float64)
        slow_arg = 2 * np.pi * slow_f[:, None] * idx[None] / SAMPLE_RATE + slow_phase[:, None]
        slow = 1.0 + 0.25 * np.sin(slow_arg).sum(0)
        envelope = tonic * slow.astype(np.float32)[None, :]
        # Pieces overlapping this chunk (sorted by start; those that ended before it are skipped).
        while first < len(segs.start) and seg_end[first] <= c0:
            first += 1
        j = first
        while j < len(segs.start) and segs.start[j] < c1:
            a, b = segs.start[j], seg_end[j]
            if b > c0:
                lo, hi = max(a, c0), min(b, c1)
                kern = kernels[segs.kernel[j]][lo - a: hi - a]
                envelope[:, lo - c0: hi - c0] += segs.weight[j][:, None] * kern[None, :]
            j += 1
        # Uniform white noise: the muscle filter sums enough samples to make it Gaussian (as the
        # sum of many motor units is), and it is four times cheaper to draw than normal noise.
        drive = rng.random((bands, length), dtype=np.float32)
        drive -= np.float32(0.5)
        drive *= envelope
        muscles = np.empty((bands, length), dtype=np.float32)
        for m in range(bands):
            muscles[m], muscle_state[m] = sps.sosfilt(sos[m], drive[m], zi=muscle_state[m])
        x = np.empty((bands, length), dtype=np.float32)
        for band in range(2):
            rows = slice(band * NUM_CHANNELS, (band + 1) * NUM_CHANNELS)
            src = muscles[band * NUM_MUSCLES: (band + 1) * NUM_MUSCLES]
            # Small blocks keep OpenBLAS on one thread: threading a 16x16 product only costs.
            for i in range(0, length, _MIX_BLOCK):
                np.matmul(mixing[band], src[:, i: i + _MIX_BLOCK], out=x[rows, i: i + _MIX_BLOCK])
        noise = rng.standard_normal((bands, length), dtype=np.float32)
        noise *= noise_std
        x += noise
        # Mains pick-up is common to a band (one phase), with a weaker 3rd harmonic (rectifying
        # power supplies); its strength varies with each electrode's contact.
        for band in range(2):
            phase = 2 * np.pi * mains_f * idx / SAMPLE_RATE + donning.mains_phase[band]
            wave = (np.cos(phase) + np.cos(3 * phase + 1.0) / 3.0).astype(np.float32)
            rows = slice(band * NUM_CHANNELS, (band + 1) * NUM_CHANNELS)
            x[rows] += mains_amp[rows] * wave[None, :]
        for s, band, tau, amp in zip(trans.start, trans.band, trans.tau, trans.amplitude):
            a, b = max(s, c0), min(s + 8 * tau, c1)
            if a < b:
                t = np.arange(a - s, b - s, dtype=np.float64)
                wave = np.exp(-t / tau) * (1.0 - np.exp(-t / 4.0))  # ~2 ms step, slow relaxation
                hit = amp.copy()
                if band < 2:
                    hit[1 - band] = 0.0
                x[:, a - c0: b - c0] += (hit.reshape(-1, 1) * wave[None, :]).astype(np.float32)
        x, hp_state = sps.sosfilt(highpass, x, axis=1, zi=hp_state)
        out[c0:c1] = x.T.reshape(length, 2, NUM_CHANNELS)
    return out
