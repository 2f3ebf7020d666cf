"""Every test here runs real liblsl on the loopback only: a loopback lsl_api.cfg (emgtf.live.
loopback) named by LSLAPICFG for this process and the processes it starts, set before the first
LSL call (liblsl reads its config once)."""

from __future__ import annotations

import os
import uuid

import pytest

from emgtf.live.loopback import write_loopback_config


@pytest.fixture(scope="session", autouse=True)
def loopback(tmp_path_factory):
    # level -3: liblsl's own "re-connecting" error lines (a lost outlet, as the tests make) unshown
    path = write_loopback_config(tmp_path_factory.mktemp("lsl") / "lsl_api.cfg", log_level=-3)
    previous = os.environ.get("LSLAPICFG")
    os.environ["LSLAPICFG"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("LSLAPICFG", None)
    else:
        os.environ["LSLAPICFG"] = previous


@pytest.fixture
def unique():
    """A stream name no other test (or test process) uses."""
    return f"emgtf-test-{uuid.uuid4().hex[:8]}"
