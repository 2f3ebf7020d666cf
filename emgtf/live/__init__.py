"""Live decoding over Lab Streaming Layer (LSL), through pylsl (``pip install emgtf[live]``).

- :mod:`emgtf.live.lsl`: the pylsl import and the stream conventions (types, channel labels);
- :mod:`emgtf.live.loopback`: the liblsl config that keeps LSL on one machine (``LSLAPICFG``);
- :mod:`emgtf.live.resolve`: finding the EMG stream a user names, or saying what was seen;
- :mod:`emgtf.live.channels`: which stream channels are the two bands of 16;
- :mod:`emgtf.live.resample`: another nominal rate to 2 kHz, chunk by chunk;
- :mod:`emgtf.live.gaps`: splitting what an inlet gives into contiguous runs of finite samples;
- :mod:`emgtf.live.inlet`: the EMG inlet (checks, clock-corrected chunks, a lost outlet);
- :mod:`emgtf.live.keys`: decoded keys as marker events (LSL marker outlet, JSON lines);
- :mod:`emgtf.live.truth`: the ground-truth keystroke markers of a replay;
- :mod:`emgtf.live.decode`: the loop: inlet -> :class:`~emgtf.inference.streaming.StreamingDecoder`
  -> keys, with the gap policy, and its latency and CPU figures;
- :mod:`emgtf.live.wristband`: a session file published as LSL streams (``emgtf replay``).
"""
