"""Raw-signal augmentations of EMG batches, applied inside the tf.data pipeline (training only).

Every augmentation works on a batch ``emg`` float32 (B, T, 2, 16) (left band first) whose rows are
valid up to ``emg_lengths`` and zero after; each keeps the zero padding and returns lengths that
describe its output. They are TensorFlow graph ops (the pipeline is the one TensorFlow-specific
part of emgtf) driven by stateless random ops, so a batch seed fixes every draw: the same seed gives
the same augmented batch whatever the tf.data parallelism.

Scales: the EMG is used in the files' own units (white noise of std ~2.5 is the reference scale,
as in Meta's emg2qwerty recipe); ``gaussian_noise`` is relative to each channel's RMS in the window, so it does not
depend on that scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.signal
import tensorflow as tf

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError

_ELECTRODES = NUM_BANDS * NUM_CHANNELS


@dataclass(frozen=True)
class Augmentations:
    """Which raw-signal augmentations a training pipeline applies; the defaults switch all off.

    - ``band_rotation``: roll each band's 16 channels by one of -1, 0, +1 (uniform, drawn
      independently per band and window), as ``np.roll`` on the channel axis. The electrodes sit
      round the wrist, so this mimics the band worn rotated by one electrode.
    - ``alignment_jitter``: at most this many samples of temporal shift between the bands (uniform
      in [-n, n] per window; 120 in the reference recipe). The two bands are cropped to their
      overlap, so a window shifted by s is |s| samples shorter (``emg_lengths`` says so) and no
      made-up samples enter it.
    - ``gaussian_noise``: add white noise whose std is this fraction of each channel's RMS over the
      window's valid samples (0 = off). On per-channel normalised data this is the same as an
      absolute std of that value (0.01 in the course projects); on the raw reference scale (RMS ~2.5)
      0.01 is an absolute std of ~0.025.
    - ``down_up``: resampling factors, e.g. ``(2, 4)``. With probability ``down_up_prob`` a window
      is decimated by one of them (drawn uniformly) after an anti-aliasing low-pass FIR (Kaiser
      window, 32 x factor + 1 taps, cutoff at the new Nyquist), then interpolated back to its
      length with the same filter; this removes what lies above the new Nyquist frequency
      (1000/factor Hz). The course projects trained on original plus resampled windows, hence the
      probability (default 0.5).
    - ``time_stretch``: maximum relative duration change r (0 = off): the window is resampled
      (linear interpolation) to k times its duration, k uniform in [1 - r, 1 + r]. A stretched
      window is cropped back to its length keeping the centre of its labelled (un-padded) part in
      place, so only context padding is lost for r up to padding / window; a shrunk window keeps
      all its samples and gets the shorter length. Labels are kept.
    - ``channel_mask``: zero a uniformly drawn number 0..n of the 32 electrode channels, chosen
      uniformly per window (0 = off), like dead or lifted electrodes.

    Order of application: down_up, time_stretch, alignment_jitter, band_rotation, gaussian_noise,
    channel_mask (masked channels stay exactly zero).
    """

    band_rotation: bool = False
    alignment_jitter: int = 0
    gaussian_noise: float = 0.0
    down_up: tuple[int, ...] = field(default_factory=tuple)
    down_up_prob: float = 0.5
    time_stretch: float = 0.0
    channel_mask: int = 0

    def __post_init__(self) -> None:
        def bad(name, what):
            raise EmgtfError(f"augmentation '{name}' must be {what}, got {getattr(self, name)!r}")

        if not isinstance(self.band_rotation, (bool, np.bool_)):
            bad("band_rotation", "true or false")
        for name in ("alignment_jitter", "channel_mask"):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
                bad(name, "a non-negative integer")
        if self.channel_mask >= _ELECTRODES:
            bad("channel_mask", f"less than {_ELECTRODES} (the number of electrode channels)")
        for name, limit in (("gaussian_noise", ""), ("time_stretch", "< 1"), ("down_up_prob", "<= 1")):
            value = getattr(self, name)
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            ok = ok and bool(np.isfinite(value)) and value >= 0
            ok = ok and (limit != "< 1" or value < 1) and (limit != "<= 1" or value <= 1)
            if not ok:
                bad(name, "a number >= 0" + (f" and {limit}" if limit else ""))
        factors = () if self.down_up is None else self.down_up
        try:
            if isinstance(factors, (str, bytes)):
                raise TypeError
            factors = tuple(factors)
        except TypeError:
            bad("down_up", "a list of integer factors >= 2")
        if not all(isinstance(f, (int, np.integer)) and not isinstance(f, bool) and f >= 2 for f in factors):
            bad("down_up", "a list of integer factors >= 2")
        object.__setattr__(self, "down_up", tuple(int(f) for f in factors))

    @classmethod
    def from_config(cls, config: Mapping) -> "Augmentations":
        """From a mapping with some of the fields (a dict or an OmegaConf DictConfig); an unknown key
        is an ``EmgtfError`` naming it."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in config:
            if key not in known:
                hint = " (the data fraction is make_dataset's 'fraction' argument)" if key == "fraction" else ""
                raise EmgtfError(f"unknown augmentation '{key}'{hint}; known: {', '.join(known)}")
        return cls(**{key: config[key] for key in config})

    @classmethod
    def reference(cls) -> "Augmentations":
        """The reference recipe's transforms: band rotation and 120 samples of alignment jitter."""
        return cls(band_rotation=True, alignment_jitter=120)

    def to_config(self) -> dict:
        out = dataclasses.asdict(self)
        out["down_up"] = list(self.down_up)
        return out

    @property
    def active(self) -> bool:
        """Whether any augmentation is switched on."""
        return bool(
            self.band_rotation or self.alignment_jitter or self.gaussian_noise
            or (self.down_up and self.down_up_prob > 0) or self.time_stretch or self.channel_mask
        )


def as_augmentations(value) -> Augmentations | None:
    """None, an ``Augmentations`` or a mapping of its fields -> Augmentations (or None)."""
    if value is None or isinstance(value, Augmentations):
        return value
    if isinstance(value, Mapping) or (hasattr(value, "keys") and hasattr(value, "__getitem__")):
        return Augmentations.from_config(value)
    raise EmgtfError(f"augment must be an Augmentations or a mapping of its fields, got {type(value).__name__}")


# --- the ops ---------------------------------------------------------------------------------


def _seed(seed, k: int) -> tf.Tensor:
    """An independent stateless seed for augmentation number k of a batch seed."""
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), k)


def _valid(lengths, time_steps) -> tf.Tensor:
    """float32 (B, T, 1, 1): 1 on the valid samples, 0 on the padding."""
    mask = tf.sequence_mask(lengths, time_steps, dtype=tf.float32)
    return mask[:, :, None, None]


def band_rotation(emg, seed):
    """Rolls each band's channels by -1, 0 or +1 (as ``np.roll``), drawn per window and band.
    (B, T, 2, 16) -> same."""
    shape = tf.shape(emg)
    shifts = tf.random.stateless_uniform((shape[0], NUM_BANDS), seed, minval=-1, maxval=2, dtype=tf.int32)
    # Output channel c of band k reads channel (c - shift) mod 16 of band k. As a per-window
    # permutation matrix this is one batched matmul: exact (products with 0 and 1 only) and ten
    # times faster on CPU than rolls and selects or a gather on the channel axis.
    channel = tf.range(NUM_CHANNELS)[None, None, :]
    source = tf.math.floormod(channel - shifts[:, :, None], NUM_CHANNELS)
    source += NUM_CHANNELS * tf.range(NUM_BANDS)[None, :, None]
    permutation = tf.one_hot(tf.reshape(source, (shape[0], _ELECTRODES)), _ELECTRODES, dtype=emg.dtype)
    flat = tf.reshape(emg, (shape[0], shape[1], _ELECTRODES))
    return tf.reshape(tf.linalg.matmul(flat, permutation, transpose_b=True), shape)


def _gather_time(x, index):
    """``out[b, t] = x[b, index[b, t]]`` for x (B, T, ...) and index (B, T') int32."""
    shape = tf.shape(x)
    flat = tf.reshape(x, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))
    # One gather over the flattened batch: twice as fast as tf.gather with batch_dims on CPU.
    return tf.gather(flat, index + (tf.range(shape[0]) * shape[1])[:, None])


def alignment_jitter(emg, lengths, max_shift: int, seed):
    """Shifts the bands against each other by s in [-max_shift, max_shift] samples per window and
    crops both to their overlap: for s > 0 the left band starts s samples later than the right one.
    Returns (emg, lengths) with lengths reduced by |s|. (B, T, 2, 16) -> same shape."""
    batch, steps = tf.shape(emg)[0], tf.shape(emg)[1]
    shift = tf.random.stateless_uniform((batch,), seed, minval=-max_shift, maxval=max_shift + 1, dtype=tf.int32)
    longest = tf.maximum(lengths - 1, 0)
    shift = tf.clip_by_value(shift, -longest, longest)
    new_lengths = lengths - tf.abs(shift)
    # Sample t of band k comes from sample t + start[b, k]; one gather over (batch x time x band)
    # rows of 16 channels builds both bands at once.
    start = tf.stack([tf.maximum(shift, 0), tf.maximum(-shift, 0)], axis=1)  # (B, 2)
    t = tf.range(steps)[None, :, None]
    source = tf.minimum(t + start[:, None, :], steps - 1)  # (B, T, 2)
    row = (tf.range(batch)[:, None, None] * steps + source) * NUM_BANDS + tf.range(NUM_BANDS)[None, None, :]
    out = tf.gather(tf.reshape(emg, (-1, NUM_CHANNELS)), row) * _valid(new_lengths, steps)
    return out, new_lengths


def gaussian_noise(emg, lengths, relative_std: float, seed):
    """Adds white noise of std ``relative_std`` x the channel's RMS over the valid samples."""
    steps = tf.shape(emg)[1]
    valid = _valid(lengths, steps)
    count = tf.maximum(tf.cast(lengths, tf.float32), 1.0)[:, None, None, None]
    rms = tf.sqrt(tf.reduce_sum(tf.square(emg), axis=1, keepdims=True) / count)
    noise = tf.random.stateless_normal(tf.shape(emg), seed, dtype=emg.dtype)
    return emg + noise * (relative_std * rms) * valid


def channel_mask(emg, max_channels: int, seed):
    """Zeros 0..max_channels (uniform) of the 32 electrode channels, a uniform choice per window."""
    batch = tf.shape(emg)[0]
    count_seed, pick_seed = _seed(seed, 0), _seed(seed, 1)
    count = tf.random.stateless_uniform((batch, 1), count_seed, minval=0, maxval=max_channels + 1, dtype=tf.int32)
    scores = tf.random.stateless_uniform((batch, _ELECTRODES), pick_seed)
    rank = tf.argsort(tf.argsort(scores, axis=1), axis=1)  # a uniformly random permutation
    keep = tf.cast(rank >= count, emg.dtype)
    return emg * tf.reshape(keep, (batch, 1, NUM_BANDS, NUM_CHANNELS))


def lowpass_filter(factor: int) -> np.ndarray:
    """The anti-aliasing FIR of ``down_up`` for one factor (unit DC gain, linear phase)."""
    return scipy.signal.firwin(32 * factor + 1, 1.0 / factor, window=("kaiser", 6.0)).astype(np.float32)


def _down_up_all(emg, factor: int):
    """Decimates every window by ``factor`` and interpolates back (B, T, 2, 16) -> same."""
    shape = tf.shape(emg)
    # Every electrode gets the same filter, so one 1-D convolution over (B * 32, T, 1) does them
    # all. (A depthwise convolution with a time stride only runs on oneDNN: TensorFlow's Eigen
    # kernels, its default on CPUs without AVX-512, reject unequal strides.)
    x = tf.transpose(tf.reshape(emg, (shape[0], shape[1], _ELECTRODES)), (0, 2, 1))
    x = tf.reshape(x, (-1, shape[1], 1))
    kernel = tf.constant(lowpass_filter(factor)[:, None, None])
    low = tf.nn.conv1d(x, kernel, factor, "SAME")
    # The transposed strided convolution zero-stuffs and filters with the same taps; composing a
    # convolution with its transpose has zero phase, so the result is not delayed. Zero-stuffing
    # divides the level by the factor, hence the gain.
    back = tf.nn.conv1d_transpose(low, kernel * float(factor), tf.shape(x), factor, "SAME")
    back = tf.transpose(tf.reshape(back, (shape[0], _ELECTRODES, shape[1])), (0, 2, 1))
    return tf.reshape(back, shape)


def down_up(emg, lengths, factors: Sequence[int], probability: float, seed):
    """Down- then up-samples a random subset of the windows (each with probability
    ``probability``) by a factor drawn from ``factors``. (B, T, 2, 16) -> same."""
    batch, steps = tf.shape(emg)[0], tf.shape(emg)[1]
    chosen = tf.random.stateless_uniform((batch,), _seed(seed, 0)) < probability
    which = tf.random.stateless_uniform((batch,), _seed(seed, 1), minval=0, maxval=len(factors), dtype=tf.int32)
    out = emg
    for i, factor in enumerate(factors):
        # Only the chosen windows go through the filters: the cost follows the probability.
        index = tf.where(chosen & (which == i))
        resampled = _down_up_all(tf.gather(out, index[:, 0]), factor)
        out = tf.tensor_scatter_nd_update(out, index, resampled)
    # The filters smear signal into the zero padding of short windows; keep the padding zero.
    return out * _valid(lengths, steps)


def time_stretch(emg, lengths, max_change: float, seed, centres=None):
    """Resamples each window to k times its duration, k uniform in [1 - max_change, 1 + max_change]
    (linear interpolation). A stretched window is cropped to its length with ``centres`` (float, in
    samples; default the middle of the window) kept in place; a shrunk one gets the shorter length.
    Returns (emg, lengths). (B, T, 2, 16) -> same shape."""
    batch, steps = tf.shape(emg)[0], tf.shape(emg)[1]
    k = tf.random.stateless_uniform((batch,), seed, minval=1.0 - max_change, maxval=1.0 + max_change)
    n = tf.cast(lengths, tf.float32)
    if centres is None:
        centres = n / 2.0
    centres = tf.cast(centres, tf.float32)
    # Output sample t reads input position (t + start) / k. A shrunk window keeps all its samples:
    # floor((n - 1) k) + 1 of them, the last reading at most position n - 1.
    last_input = tf.maximum(n - 1.0, 0.0)
    new_lengths = tf.cast(tf.minimum(tf.floor(last_input * k) + 1.0, n), tf.int32)
    # A stretched one (k > 1) is cropped: start where the centre c (at c*k after stretching) stays
    # at c, but never so late that the last output sample would read past position n - 1.
    start = tf.where(k > 1.0, tf.clip_by_value(centres * (k - 1.0), 0.0, last_input * (k - 1.0)), 0.0)
    t = tf.cast(tf.range(steps), tf.float32)[None, :]
    source = (t + start[:, None]) / k[:, None]
    last = tf.maximum(lengths - 1, 0)[:, None]
    i0 = tf.minimum(tf.cast(tf.floor(source), tf.int32), last)
    i1 = tf.minimum(i0 + 1, last)
    w = tf.clip_by_value(source - tf.cast(i0, tf.float32), 0.0, 1.0)[:, :, None, None]
    x0 = _gather_time(emg, i0)
    x1 = _gather_time(emg, i1)
    out = (x0 * (1.0 - w) + x1 * w) * _valid(new_lengths, steps)
    return out, new_lengths


def augment_batch(batch: dict, augmentations: Augmentations, seed) -> dict:
    """Applies the switched-on augmentations to a batch dict ("emg", "emg_lengths", and optionally
    "_core": (B, 2) int32 start and end of each window's labelled part inside "emg").

    ``seed``: a scalar or a shape-(2,) integer tensor; the same seed gives the same result.
    Returns a new dict; keys other than "emg" and "emg_lengths" pass through.
    """
    aug = augmentations
    emg, lengths = batch["emg"], batch["emg_lengths"]
    if aug.down_up and aug.down_up_prob > 0:
        emg = down_up(emg, lengths, aug.down_up, float(aug.down_up_prob), _seed(seed, 1))
    if aug.time_stretch:
        centres = None
        if "_core" in batch:
            centres = tf.reduce_mean(tf.cast(batch["_core"], tf.float32), axis=1)
        emg, lengths = time_stretch(emg, lengths, float(aug.time_stretch), _seed(seed, 2), centres)
    if aug.alignment_jitter:
        emg, lengths = alignment_jitter(emg, lengths, int(aug.alignment_jitter), _seed(seed, 3))
    if aug.band_rotation:
        emg = band_rotation(emg, _seed(seed, 4))
    if aug.gaussian_noise:
        emg = gaussian_noise(emg, lengths, float(aug.gaussian_noise), _seed(seed, 5))
    if aug.channel_mask:
        emg = channel_mask(emg, int(aug.channel_mask), _seed(seed, 6))
    out = dict(batch)
    out["emg"], out["emg_lengths"] = emg, lengths
    return out
