"""A simulated user's forearm anatomy under the two bands, and how a session's donning changes it.

Why it is modelled this way (what makes the real signal learnable, and hard):

- The fingers are moved by forearm muscles that lie side by side around the forearm: the
  superficial flexor (FDS) and the deep flexor (FDP) compartments of each finger on the palm side,
  ordered index to pinky, the finger extensor (EDC) compartments on the back, the thumb's flexor
  and extensors on the radial side, and the wrist flexors and extensors. Each of the 16 electrodes
  around the band picks up the muscles nearest to it, so each finger has its own *spatial pattern*
  over the channels. We model a muscle as a source whose amplitude falls off with the angular
  distance to each electrode (a von Mises bump around the band).
- Deep muscles (FDP, thumb flexor) look wider and more low-pass than superficial ones: the tissue
  between muscle and skin spreads the field and filters high frequencies. That is why the row of a
  key (which changes the mix of superficial and deep flexor, and of extensor) shows both in the
  spatial pattern and in the spectrum.
- Keys of one finger share that finger's muscles, so their patterns differ only by the mix (the
  row: reaching up takes more extensor and superficial flexor, curling down more deep flexor) and
  by sideways reaches (wrist deviators). Fingers are also not independent ("enslavement"):
  pressing with one finger co-activates its neighbours' muscles. This is the hard part of the real
  task: confusions within a finger and between neighbouring fingers.
- The bands are mirror images: left band channel i sits where right band channel 15 - i sits, so
  a left-hand muscle appears at the mirrored channel of its right-hand twin.
- Every person differs: muscle positions relative to where the band sits, their sizes, spectra and
  the exact mix per key are drawn per user. Each time the bands are put on again (a new session)
  they sit rotated by about one electrode, with other contact gains and noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from emgtf import NUM_CHANNELS, SAMPLE_RATE
from emgtf.synth import keyboard as kb
from emgtf.synth.knobs import SynthConfig

# Muscle sources of one hand; the same index on both hands is the homologous muscle.
FDS, FDP, EDC = 0, 4, 8  # + finger - 1 (index, middle, ring, pinky)
FPL, THUMB_EXT, WRIST_FLEX, WRIST_EXT = 12, 13, 14, 15
NUM_MUSCLES = 16

# Template, in right-band electrode coordinates (0..16 around the band): position, spread (sd in
# electrodes), gain and pass band (Hz) of each muscle. Superficial muscles: narrow, broadband;
# deep ones: wide, low-pass.
_POSITION = np.array([3.4, 4.4, 5.4, 6.4, 3.0, 4.0, 5.0, 6.0, 13.0, 12.0, 11.0, 10.0, 2.0, 14.8, 7.6, 0.2])
_SPREAD = np.array([1.1] * 4 + [1.8] * 4 + [1.2] * 4 + [1.5, 1.2, 1.5, 1.5])
_GAIN = np.array([1.0, 1.0, 0.9, 0.8, 0.7, 0.7, 0.65, 0.6, 0.9, 0.9, 0.85, 0.8, 0.7, 0.8, 0.8, 0.8])
_SUPERFICIAL, _DEEP, _WRIST = (40.0, 350.0), (20.0, 160.0), (30.0, 250.0)
_BAND = [_SUPERFICIAL] * 4 + [_DEEP] * 4 + [_SUPERFICIAL] * 4 + [_DEEP, _SUPERFICIAL, _WRIST, _WRIST]
# Holding the hands over the keys: extensors hold fingers and wrist up, flexors barely work.
_TONIC = np.array([0.3] * 8 + [0.8] * 4 + [0.3, 0.5, 0.6, 1.0])
# Press mix of a finger's (FDS, FDP, EDC) by row: reaching up to the number and top rows takes
# extensor and the superficial flexor; curling down to the bottom row takes the deep flexor.
_ROW_MIX = {
    kb.NUMBER: (0.9, 0.3, 0.8),
    kb.TOP: (1.0, 0.45, 0.5),
    kb.HOME: (0.8, 0.7, 0.22),
    kb.BOTTOM: (0.45, 1.0, 0.12),
}


def _mix(key: kb.PhysicalKey, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Template press and release activation (16 muscles of the pressing hand) of a key."""
    press, release = np.zeros(NUM_MUSCLES), np.zeros(NUM_MUSCLES)
    if key.finger == kb.THUMB:
        # Space: thumb flexion/adduction, lifted again by the thumb extensors.
        press[[FPL, THUMB_EXT, WRIST_FLEX]] = (1.0, 0.5, 0.1)
        release[[THUMB_EXT, FPL]] = (1.0, 0.2)
        return press, release
    row = kb.BOTTOM if key.row == kb.THUMB_ROW else key.row
    home = np.array(_ROW_MIX[kb.HOME])
    fds, fdp, edc = home + cfg.row_contrast * (np.array(_ROW_MIX[row]) - home)
    j = key.finger - 1
    for other in range(4):
        share = cfg.enslavement ** abs(other - j)  # 1 for the finger itself
        press[[FDS + other, FDP + other, EDC + other]] += share * np.array([fds, fdp, edc])
        # Lifting the finger off the key is the extensor's job.
        release[[EDC + other, FDS + other]] += share * np.array([1.0, 0.2])
    # Sideways reaches deviate the wrist: radially for the index's inner column, ulnarly for the
    # pinky's outer keys; the number row also extends the wrist, the bottom row flexes it.
    if key.reach < 0:
        press[WRIST_EXT] += cfg.reach_gain
    elif key.reach > 0:
        press[WRIST_FLEX] += cfg.reach_gain * np.sqrt(key.reach)
    press[WRIST_EXT] += 0.15 * cfg.row_contrast * (row == kb.NUMBER)
    press[WRIST_FLEX] += 0.1 * cfg.row_contrast * (row == kb.BOTTOM)
    return press, release


def _von_mises(distance: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Amplitude at ``distance`` electrodes (around the band) from a source of sd ``spread``."""
    kappa = 1.0 / (2 * np.pi * spread / NUM_CHANNELS) ** 2
    return np.exp(kappa * (np.cos(2 * np.pi * distance / NUM_CHANNELS) - 1.0))


@dataclass(frozen=True)
class Anatomy:
    """One user's muscles under each band and the activation each key causes.

    ``position``/``spread``/``gain`` are (2, 16): per band (left, right) and muscle, in the band's
    own electrode coordinates before re-donning. ``press``/``release`` are (num_keys, 2, 16):
    activation of each band's muscles for each physical key of ``keyboard.layout``.
    ``sos`` (2, 16, 2, 6) holds each muscle's band-pass filter; ``tonic`` (2, 16) the background
    activation; ``channel_noise`` (2, 16) each electrode's relative noise level (it stays with
    the device); ``rise_s``/``decay_s`` the user's burst envelope.
    """

    position: np.ndarray
    spread: np.ndarray
    gain: np.ndarray
    sos: np.ndarray
    press: np.ndarray
    release: np.ndarray
    tonic: np.ndarray
    channel_noise: np.ndarray
    rise_s: float
    decay_s: float
    space_hand: int

    @classmethod
    def sample(cls, rng: np.random.Generator, cfg: SynthConfig) -> "Anatomy":
        # Where the band sits on this user's forearm relative to the muscles (a user-level
        # rotation, unlike the session-level re-donning offset), then each muscle's own scatter.
        offset = rng.uniform(-1.5, 1.5)
        right = _POSITION + offset + rng.normal(0.0, cfg.anatomy_jitter, NUM_MUSCLES)
        left_canonical = right + rng.normal(0.0, 0.15, NUM_MUSCLES)  # hands are not exact twins
        position = np.stack([15.0 - left_canonical, right])  # left band channel i ~ right 15 - i
        spread = _SPREAD * np.exp(rng.normal(0.0, 0.15, (2, NUM_MUSCLES)))
        # Muscle sizes differ between people, and a little between the two arms.
        gain = _GAIN * np.exp(rng.normal(0.0, 0.2, NUM_MUSCLES) + rng.normal(0.0, 0.05, (2, NUM_MUSCLES)))
        edges = np.array(_BAND) * np.exp(rng.normal(0.0, 0.1, (NUM_MUSCLES, 1)))
        sos = np.stack([sps.butter(2, e, btype="bandpass", fs=SAMPLE_RATE, output="sos") for e in edges])
        sos = np.stack([sos, sos])

        space_hand = kb.RIGHT if rng.random() < 0.75 else kb.LEFT
        keys = kb.layout(space_hand)
        press = np.zeros((len(keys), 2, NUM_MUSCLES))
        release = np.zeros((len(keys), 2, NUM_MUSCLES))
        for i, key in enumerate(keys):
            p, r = _mix(key, cfg)
            # Each person presses each key a little differently (and a little of everything).
            p = p * np.exp(rng.normal(0.0, cfg.key_jitter, NUM_MUSCLES))
            p += cfg.key_jitter * 0.2 * rng.random(NUM_MUSCLES)
            r = r * np.exp(rng.normal(0.0, cfg.key_jitter, NUM_MUSCLES))
            p, r = p / np.linalg.norm(p), r / np.linalg.norm(r)
            other = 1 - key.hand
            press[i, key.hand], release[i, key.hand] = p, r
            # Mirror co-activation: the other hand's homologous muscles fire weakly too.
            press[i, other] = cfg.contralateral_gain * p
        return cls(
            position=position,
            spread=spread,
            gain=gain,
            sos=sos,
            press=press,
            release=release,
            tonic=_TONIC * np.exp(rng.normal(0.0, 0.3, (2, NUM_MUSCLES))),
            channel_noise=np.exp(rng.normal(0.0, 0.1, (2, NUM_CHANNELS))),
            # EMG leads the key press by 50-100 ms and outlasts it by 100-150 ms.
            rise_s=float(rng.uniform(0.05, 0.10)),
            decay_s=float(rng.uniform(0.10, 0.15)),
            space_hand=space_hand,
        )

    def mixing(self, rotation: np.ndarray, channel_gain: np.ndarray) -> np.ndarray:
        """(2, 16 channels, 16 muscles) amplitude of each muscle on each channel for a donning
        with per-band ``rotation`` (electrodes) and per-channel ``channel_gain`` (2, 16)."""
        channels = np.arange(NUM_CHANNELS, dtype=np.float64)
        out = np.empty((2, NUM_CHANNELS, NUM_MUSCLES))
        for band in range(2):
            distance = channels[:, None] + rotation[band] - self.position[band][None, :]
            # A little volume conduction reaches every electrode.
            shape = _von_mises(distance, self.spread[band][None, :]) + 0.03
            out[band] = channel_gain[band][:, None] * shape * self.gain[band][None, :]
        return out


@dataclass(frozen=True)
class Donning:
    """How the bands sit in one session: rotation (2,) in electrodes, channel gains (2, 16), noise
    standard deviation (2, 16), 60 Hz pick-up amplitude (2, 16) and phase (2,) per band."""

    rotation: np.ndarray
    channel_gain: np.ndarray
    noise_std: np.ndarray
    mains_amplitude: np.ndarray
    mains_phase: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator, cfg: SynthConfig, anatomy: Anatomy) -> "Donning":
        shape = (2, NUM_CHANNELS)
        steps = rng.choice([-1, 0, 1], size=2, p=cfg.rotation_probs)
        far = rng.random(2) < cfg.rotation_far
        steps = np.where(far, rng.choice([-2, 2], size=2), steps)
        rotation = steps + rng.normal(0.0, cfg.rotation_jitter, 2)
        noise = cfg.sensor_noise * anatomy.channel_noise * np.exp(rng.normal(0.0, cfg.noise_drift, shape))
        bad = rng.random(2) < cfg.bad_channel_prob
        bad_channel = rng.integers(0, NUM_CHANNELS, 2)
        noise[bad, bad_channel[bad]] *= 3.0
        mains = cfg.mains_amplitude * rng.uniform(0.3, 1.5, (2, 1)) * rng.uniform(0.5, 1.5, shape)
        phase = rng.uniform(0, 2 * np.pi, 2)
        return cls(
            rotation=rotation,
            channel_gain=np.exp(rng.normal(0.0, cfg.gain_drift, shape)),
            noise_std=noise,
            mains_amplitude=mains,
            mains_phase=phase,
        )

