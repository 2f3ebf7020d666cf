"""The EMG inlet: a resolved stream checked (numbers, not strings; 2 kHz or ``resample``; 32
channels or a channel map), then pulled in chunks with clock-corrected LSL timestamps.

Timestamps: liblsl's ``proc_clocksync`` adds the inlet's running clock-offset estimate
(``time_correction``) to each sample's timestamp, so a remote outlet's times are on this
machine's ``pylsl.local_clock``, the clock the decoded-key markers and the latency figures
use. No dejittering: it would smooth over the missing samples that ``emgtf.live.gaps`` looks
for. A lost outlet (its process ended, its host went away) raises ``StreamLost`` rather than
being recovered silently, so the gap it leaves restarts the decoder and is reported.
"""

from __future__ import annotations

import numpy as np

from emgtf.errors import EmgtfError
from emgtf.live.channels import ChannelMap
from emgtf.live.lsl import SAMPLE_RATE, describe, pylsl

__all__ = ["EMGInlet", "StreamLost", "check_emg_stream", "full_info"]


class StreamLost(Exception):
    """The outlet went away."""


def check_emg_stream(info, *, channels: str | None = None, resample: bool = False) -> ChannelMap:
    """Refuses (one line) a stream that cannot be decoded; returns its ``ChannelMap``."""
    lsl = pylsl()
    what = f"LSL stream {describe(info)}"
    if info.channel_format() == lsl.cf_string:
        raise EmgtfError(f"{what} is a stream of strings (markers?), not EMG samples")
    rate = info.nominal_srate()
    if rate <= 0:
        raise EmgtfError(f"{what} has an irregular rate; EMG needs a nominal rate ({SAMPLE_RATE:g} Hz)")
    if abs(rate - SAMPLE_RATE) > 1e-6 and not resample:
        raise EmgtfError(f"{what} runs at {rate:g} Hz, not {SAMPLE_RATE:g} Hz; resample=true resamples it "
                         f"(the model was trained at {SAMPLE_RATE:g} Hz)")
    labels = full_info(info).get_channel_labels() if channels is not None else None
    return ChannelMap.parse(channels, info.channel_count(), labels, stream=f"LSL stream '{info.name()}'")


def full_info(info, timeout: float = 5.0):
    """The stream's whole description (a resolve gives only its header: no channel labels)."""
    lsl = pylsl()
    try:
        return lsl.StreamInlet(info, recover=False).info(timeout)
    except (lsl.util.TimeoutError, lsl.util.LostError):
        raise EmgtfError(f"LSL stream {describe(info)} did not send its description within {timeout:g} s") from None


class EMGInlet:
    """Pulls a checked stream: ``pull(timeout)`` -> (samples (n, channels) float32, timestamps
    (n,) float64 on the local clock); raises ``StreamLost`` when its outlet goes away."""

    def __init__(self, info, *, buffer_seconds: float = 10.0, open_timeout: float = 5.0):
        self.buffer_seconds = buffer_seconds
        self.open_timeout = open_timeout
        self.max_samples = 1 << 14
        self.offset = 0.0
        self.open(info)

    def open(self, info) -> None:
        """(Re)connects to the outlet ``info`` describes (after a restart: its new instance)."""
        lsl = pylsl()
        self.info = info
        self.rate = info.nominal_srate()
        # The buffer bounds what waits while a decode step runs late; max_chunklen 0: the
        # outlet's own chunks.
        self._inlet = lsl.StreamInlet(info, max_buflen=max(1, round(self.buffer_seconds)), recover=False,
                                      processing_flags=lsl.proc_clocksync)
        try:
            self._inlet.open_stream(self.open_timeout)
            self.offset = self._inlet.time_correction(self.open_timeout)
        except lsl.util.TimeoutError:
            raise EmgtfError(f"LSL stream {describe(info)} did not answer within {self.open_timeout:g} s") from None
        except lsl.util.LostError:
            raise StreamLost() from None

    def pull(self, timeout: float) -> tuple[np.ndarray, np.ndarray]:
        lsl = pylsl()
        try:
            samples, timestamps = self._inlet.pull_chunk(timeout=timeout, max_samples=self.max_samples,
                                                         min_samples=1, as_numpy=True)
        except lsl.util.LostError:
            raise StreamLost() from None
        if samples is None or not len(timestamps):
            return np.zeros((0, self.info.channel_count()), np.float32), np.zeros(0)
        return samples.astype(np.float32, copy=False), np.asarray(timestamps, dtype=np.float64)

    def close(self) -> None:
        if getattr(self, "_inlet", None) is not None:
            self._inlet.close_stream()
            self._inlet = None
