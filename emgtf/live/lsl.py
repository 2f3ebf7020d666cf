"""The pylsl import, and the conventions of emgtf's LSL streams.

An EMG stream has 32 float32 channels at 2 kHz, labelled ``left_1 .. left_16, right_1 ..
right_16`` in its description (``<channels><channel><label>``), left band first as
``emgtf.data.EMGSession.read`` gives them. Marker streams (ground-truth keystrokes, decoded
keys) are irregular-rate streams of one string channel, each marker a JSON object.
"""

from __future__ import annotations

import json

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError

EMG_TYPE = "EMG"
MARKER_TYPE = "Markers"
SAMPLE_RATE = 2000.0
BAND_NAMES = ("left", "right")


def pylsl():
    """The pylsl module, or one line saying how to install it."""
    try:
        import pylsl as module
    except ImportError:
        raise EmgtfError("live streams need pylsl: pip install 'emgtf[live]' (or pip install pylsl)") from None
    except RuntimeError as e:  # pylsl raises this when it finds no liblsl
        raise EmgtfError(f"pylsl cannot load liblsl: {e}") from None
    return module


def channel_labels() -> list[str]:
    """The 32 labels of an emgtf EMG stream, left band first."""
    return [f"{band}_{i}" for band in BAND_NAMES for i in range(1, NUM_CHANNELS + 1)]


def describe(info) -> str:
    """One stream for a message: name, type, channels, rate, format, source id, host."""
    formats = {1: "float32", 2: "double64", 3: "string", 4: "int32", 5: "int16", 6: "int8", 7: "int64"}
    rate = info.nominal_srate()
    return (f"'{info.name()}' (type {info.type() or '-'}, {info.channel_count()} ch, "
            f"{f'{rate:g} Hz' if rate else 'irregular'}, {formats.get(info.channel_format(), '?')}, "
            f"source id '{info.source_id()}', host {info.hostname()})")


def marker(**fields) -> str:
    """One marker's text: a JSON object (keys as the charset's characters, not escaped)."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def emg_info(name: str, source_id: str):
    """The StreamInfo of an emgtf EMG outlet (32 float32 channels at 2 kHz, labelled)."""
    lsl = pylsl()
    info = lsl.StreamInfo(name, EMG_TYPE, NUM_BANDS * NUM_CHANNELS, SAMPLE_RATE, lsl.cf_float32, source_id)
    info.set_channel_labels(channel_labels())
    info.set_channel_types("EMG")
    info.set_channel_units("raw")
    info.desc().append_child_value("manufacturer", "emgtf")
    return info


def marker_info(name: str, source_id: str, what: str):
    """The StreamInfo of a marker outlet (one string channel, irregular rate)."""
    lsl = pylsl()
    info = lsl.StreamInfo(name, MARKER_TYPE, 1, lsl.IRREGULAR_RATE, lsl.cf_string, source_id)
    info.desc().append_child_value("content", what)
    info.desc().append_child_value("manufacturer", "emgtf")
    return info
