"""Live decoding over Lab Streaming Layer (LSL), through pylsl (``pip install emgtf[live]``).

- ``emgtf.live.lsl``: the pylsl import and the stream conventions (types, channel labels);
- ``emgtf.live.loopback``: the liblsl config that keeps LSL on one machine (``LSLAPICFG``);
- ``emgtf.live.resolve``: finding the EMG stream a user names, or saying what was seen;
- ``emgtf.live.channels``: which stream channels are the two bands of 16;
- ``emgtf.live.resample``: another nominal rate to 2 kHz, chunk by chunk;
- ``emgtf.live.gaps``: splitting what an inlet gives into contiguous runs of finite samples;
- ``emgtf.live.inlet``: the EMG inlet (checks, clock-corrected chunks, a lost outlet);
- ``emgtf.live.keys``: decoded keys as marker events (LSL marker outlet, JSON lines);
- ``emgtf.live.truth``: the ground-truth keystroke markers of a replay;
- ``emgtf.live.decode``: the loop: inlet -> ``StreamingDecoder``
  -> keys, with the gap policy, and its latency and CPU figures;
- ``emgtf.live.wristband``: a session file published as LSL streams (``emgtf replay``).
"""
