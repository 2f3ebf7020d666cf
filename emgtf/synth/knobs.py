"""The difficulty knobs of the synthetic sEMG generator, in one place.

Every number that makes the synthetic task easier or harder lives in ``SynthConfig``, so the
difficulty can be tuned without reading the generator. Amplitudes are in the device units of the
real release, where the reference log10 spectrogram has a mean of about 0.5 (the defaults give
that).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the synthetic generator (defaults: the calibrated, default difficulty).

    Pattern similarity (what makes keys confusable):
        enslavement: activation of the neighbouring fingers' flexors when one finger presses,
            relative to its own (fingers share tendons and motor cortex; ~0.2-0.4 in people).
            Higher: keys of adjacent fingers look more alike.
        row_contrast: how much the row changes a finger's muscle mix (1 = the default
            physiological mix, 0 = every key of a finger has the same pattern).
        reach_gain: wrist-deviator activation when a finger reaches sideways (inner index
            column, outer pinky keys).
        key_jitter: per-user, per-key random variation of the muscle mix (log-normal sigma).
        anatomy_jitter: per-user scatter of each muscle's position under the band (electrodes).
        contralateral_gain: mirror co-activation of the other hand's muscles (other band).
    Bursts:
        burst_gain: scale of the muscle bursts: the drive of a key's muscles before their tissue
            filters and spatial spread (device units). With sensor_noise it sets the calibration
            (defaults: log10 spectrogram mean ~0.5, variance ~1.15, as the real data).
        release_gain: release burst relative to the press burst.
        hold_level: sustained activation while a key is held, relative to the press burst.
        burst_jitter: press-to-press amplitude variation (log-normal sigma).
        onset_jitter_ms: standard deviation of the burst peak around the logged press time.
        tonic_level: background activity of the hands hovering over the keys.
    Noise and device:
        sensor_noise: standard deviation of the electrode/amplifier noise per channel.
        mains_amplitude: amplitude of the 60 Hz pick-up (its 3rd harmonic is a third of it).
        transients_per_minute, transient_amplitude: motion/cable artefacts (steps that the
            high-pass turns into spikes).
        bad_channel_prob: chance per session and band that one electrode has poor contact
            (three times the noise).
        highpass_hz: corner of the device's high-pass filter (4th-order Butterworth).
    Re-donning (between sessions of one user):
        rotation_probs: probabilities of rotating a band by -1, 0, +1 electrodes; rotation_far is
            the probability of -2 or +2 instead; rotation_jitter the sub-electrode scatter.
        gain_drift: per-channel gain change (log-normal sigma), skin contact.
        noise_drift: per-channel noise change (log-normal sigma).
    Typing:
        iki_ms: range of the users' mean inter-key interval (ms); iki_jitter the keystroke-to-
            keystroke variation and digraph_jitter the per-user, per-key-pair variation
            (log-normal sigmas).
        hold_ms: range of the users' mean key hold time (ms); hold_jitter its keystroke-to-
            keystroke variation (log-normal sigma).
        hesitation_rate: chance of a hesitation before a word; hesitation_factor the range of
            its length in inter-key intervals.
        reading_s, reading_jitter: median time from a prompt appearing to its first key (s) and
            its variation (log-normal sigma).
        prompt_gap_s: range of the time between a prompt's end and the next prompt appearing
            (in the real data the next appears at once, ~3-6 ms).
        typo_rate: range of the users' chance per letter of hitting a neighbouring key (then
            corrected with backspace).
        stray_key_rate: chance per keystroke of a stray key outside the charset (tab, ctrl, cmd).
        shift_r_rate: chance that a shift is logged as Key.shift_r (outside the charset).
    """

    enslavement: float = 0.25
    row_contrast: float = 1.0
    reach_gain: float = 0.35
    key_jitter: float = 0.15
    anatomy_jitter: float = 0.35
    contralateral_gain: float = 0.1

    burst_gain: float = 90.0
    release_gain: float = 0.35
    hold_level: float = 0.2
    burst_jitter: float = 0.25
    onset_jitter_ms: float = 10.0
    tonic_level: float = 0.06

    sensor_noise: float = 0.9
    mains_amplitude: float = 0.5
    transients_per_minute: float = 1.5
    transient_amplitude: float = 30.0
    bad_channel_prob: float = 0.1
    highpass_hz: float = 20.0

    rotation_probs: tuple[float, float, float] = (0.25, 0.5, 0.25)
    rotation_far: float = 0.05
    rotation_jitter: float = 0.15
    gain_drift: float = 0.12
    noise_drift: float = 0.2

    # Typing: calibrated so that the default typists' timing matches the real data's (presses a
    # second, inter-press interval, hold, backspace share; docs/guides/bids.md has the table).
    iki_ms: tuple[float, float] = (118.0, 245.0)
    iki_jitter: float = 0.45
    digraph_jitter: float = 0.3
    hold_ms: tuple[float, float] = (70.0, 110.0)
    hold_jitter: float = 0.3
    hesitation_rate: float = 0.04
    hesitation_factor: tuple[float, float] = (3.0, 10.0)
    typo_rate: tuple[float, float] = (0.015, 0.05)
    reading_s: float = 0.7
    reading_jitter: float = 0.2
    prompt_gap_s: tuple[float, float] = (0.002, 0.006)
    stray_key_rate: float = 0.004
    shift_r_rate: float = 0.03


# The typing of emgtf's first generator (the default data set synthetic-default-v1): faster and
# more regular than real typists (5.1 presses a second, inter-press interval 0.094-0.272 s, 2.6 %
# backspace). ``SynthConfig(**V1_TYPING)`` types like it again (its key times, since v2, on the
# sample grid).
V1_TYPING = {
    "iki_ms": (150.0, 250.0), "iki_jitter": 0.3, "digraph_jitter": 0.12, "hold_ms": (75.0, 120.0), "hold_jitter": 0.2,
    "hesitation_rate": 0.03, "hesitation_factor": (3.0, 7.0), "typo_rate": (0.01, 0.03),
    "reading_s": 0.8, "reading_jitter": 0.3, "prompt_gap_s": (0.15, 0.5),
}
