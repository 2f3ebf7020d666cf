"""LSL on one machine without a network.

liblsl finds streams by UDP multicast on the network's interfaces. On a machine with no network
(a laptop offline, a container, CI) that finds nothing, or waits on interfaces that go nowhere.
Its config file (``lsl_api.cfg``, read from the path in the ``LSLAPICFG`` environment variable
before the working directory, ``~/lsl_api/`` and ``/etc/lsl_api/``) can keep it on the loopback:
``ResolveScope = machine`` multicasts only to this host, and ``KnownPeers = {127.0.0.1}`` also
asks the loopback address by unicast, which answers even where multicast is not routed. IPv6 is
turned off because a container often has no IPv6 loopback. liblsl reads the file once, when the
process first uses LSL, so ``LSLAPICFG`` must be set before that.
"""

from __future__ import annotations

import os
from pathlib import Path

from emgtf.files import atomic_write_text

LOOPBACK_CONFIG = """\
; liblsl on this machine only (written by emgtf.live.loopback)
[ports]
IPv6 = disable

[multicast]
ResolveScope = machine

[lab]
KnownPeers = {127.0.0.1}

[log]
; liblsl's own log lines: -2 errors (a lost stream's "re-connecting"), -3 fatal only
level = %(level)d
"""


def write_loopback_config(path, *, log_level: int = -2) -> Path:
    """Writes a loopback-only ``lsl_api.cfg`` at ``path``; returns the path."""
    path = Path(path)
    atomic_write_text(path, LOOPBACK_CONFIG % {"level": log_level})
    return path


def loopback_environment(path, *, log_level: int = -2) -> dict[str, str]:
    """``os.environ`` plus ``LSLAPICFG`` naming a loopback config written at ``path``: for a child
    process (``subprocess.Popen(env=...)``)."""
    return {**os.environ, "LSLAPICFG": str(write_loopback_config(path, log_level=log_level))}
