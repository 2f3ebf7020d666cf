"""emgtf stream source=lsl refuses what it cannot decode, with one line each, before the model
loads: real outlets of this process on the loopback (conftest's lsl_api.cfg)."""

from __future__ import annotations

import pylsl
import pytest

from emgtf.live.inlet import check_emg_stream, full_info
from emgtf.live.lsl import emg_info
from emgtf.live.resolve import find_stream
from tests.helpers import run_command


def outlet(name, channels=32, rate=2000.0, fmt="float32", source_id="", labels=None):
    info = pylsl.StreamInfo(name, "EMG", channels, rate, fmt, source_id)
    if labels:
        info.set_channel_labels(labels)
    return pylsl.StreamOutlet(info)


def stream_error(capsys, *args) -> str:
    done = run_command(capsys, "stream", "source=lsl", "model=no-such-model.keras", "resolve_timeout=2", *args)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_liblsl_ships_with_pylsl_and_resolves_on_the_loopback(unique):
    assert pylsl.library_version() >= 116 and "git:" in pylsl.library_info()
    emg = pylsl.StreamOutlet(emg_info(unique, "src-1"))
    info = find_stream(name=unique, timeout=5)
    assert (info.name(), info.type(), info.channel_count(), info.nominal_srate()) == (unique, "EMG", 32, 2000.0)
    labels = full_info(info).get_channel_labels()
    assert labels[:2] == ["left_1", "left_2"] and labels[-1] == "right_16" and len(labels) == 32
    assert check_emg_stream(info).identity
    del emg


def test_no_such_stream_lists_the_streams_seen(capsys, unique):
    other = outlet(unique + "-other")
    line = stream_error(capsys, f"name={unique}")
    assert line.startswith(f"emgtf.stream: error: no LSL stream with name={unique} within 2 s; streams seen: ")
    assert f"'{unique}-other' (type EMG, 32 ch, 2000 Hz, float32" in line
    del other


def test_streams_that_cannot_be_decoded_are_refused(capsys, unique):
    outlets = [outlet(unique + "-34", channels=34), outlet(unique + "-1k", rate=1000.0),
               outlet(unique + "-str", channels=1, rate=0.0, fmt="string"),
               outlet(unique + "-irr", rate=0.0)]
    assert "has 34 channels, not 32 (two bands of 16); give channels=" in stream_error(capsys, f"name={unique}-34")
    assert "runs at 1000 Hz, not 2000 Hz; resample=true resamples it" in stream_error(capsys, f"name={unique}-1k")
    assert "is a stream of strings (markers?), not EMG samples" in stream_error(capsys, f"name={unique}-str")
    assert "has an irregular rate" in stream_error(capsys, f"name={unique}-irr")
    # A map of 32 of the 34 channels, and resampling, make them acceptable.
    assert not check_emg_stream(find_stream(name=unique + "-34"), channels="1-16,18-33").identity
    labelled = outlet(unique + "-lab", channels=34, labels=[f"ch{i}" for i in range(34)])
    picked = check_emg_stream(find_stream(name=unique + "-lab"), channels="ch2,3-17,ch18,19-33")
    assert list(picked.indices) == list(range(2, 34))
    assert check_emg_stream(find_stream(name=unique + "-1k"), resample=True).identity
    del outlets, labelled


def test_two_streams_of_one_name_are_told_apart_by_source_id(capsys, unique):
    first, second = outlet(unique, source_id="band-a"), outlet(unique, source_id="band-b")
    line = stream_error(capsys, f"name={unique}")
    assert f"2 LSL streams match name={unique}: " in line and line.endswith("pick one with source_id=ID")
    assert "source id 'band-a'" in line and "source id 'band-b'" in line
    assert find_stream(name=unique, source_id="band-b").source_id() == "band-b"
    del first, second


@pytest.mark.parametrize("args, message", [
    ((), "source=lsl needs name=NAME, type=TYPE or source_id=ID"),
    (("name=x", "session=a.hdf5"), "give a session file or source=lsl with a stream, not both"),
])
def test_source_arguments(capsys, args, message):
    assert stream_error(capsys, *args) == f"emgtf.stream: error: {message}"


def test_lsl_arguments_without_source_lsl_are_refused(capsys):
    done = run_command(capsys, "stream", "model=m.keras", "session=s.hdf5", "name=x")
    assert done.returncode == 2
    assert done.stderr == ("emgtf.stream: error: name=, type=, source_id=, truth= and channels= are for "
                           "source=lsl; a session file is replayed without them\n")


def test_replay_refuses_bad_input_in_one_line(capsys, tmp_path):
    from tests.helpers import make_session_file

    done = run_command(capsys, "replay", f"session={tmp_path / 'none.hdf5'}")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "none.hdf5" in done.stderr
    path, _ = make_session_file(tmp_path / "s.hdf5", num_samples=400)
    for arg, message in (("speed=0", "speed must be > 0, got 0.0"), ("wait=-1", "wait must be >= 0, got -1.0")):
        done = run_command(capsys, "replay", f"session={path}", arg)
        assert done.returncode == 2 and done.stderr == f"emgtf.replay: error: {message}\n", done.stderr
