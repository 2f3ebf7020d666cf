import json
import math

import h5py
import numpy as np
import pytest
from tests.helpers import T0, make_session_file

from emgtf.charset import SHIFT
from emgtf.data import EMGSession, write_session
from emgtf.errors import SessionFileError


def keystroke(key, t, dur=0.05):
    return {"key": key, "start": t, "end": t + dur}


@pytest.mark.parametrize(
    "order", [("emg_right", "time", "emg_left"), ("time", "emg_left", "emg_right"), ("emg_left", "emg_right", "time")]
)
def test_reads_any_field_order(tmp_path, order):
    rng = np.random.default_rng(1)
    emg = rng.normal(size=(500, 2, 16)).astype(np.float32)
    path, time = make_session_file(tmp_path / "s.hdf5", num_samples=500, emg=emg, field_order=order)
    with h5py.File(path) as f:
        assert f["emg2qwerty/timeseries"].dtype.names == order
    with EMGSession(path) as s:
        assert len(s) == 500
        np.testing.assert_array_equal(s.timestamps, time)
        np.testing.assert_array_equal(s.read(), emg)  # left band first, whatever the field order
        np.testing.assert_array_equal(s.read(10, 20), emg[10:20])
        rows = s.slice(time[100], time[199])
        assert len(rows) == 100
        np.testing.assert_array_equal(rows["emg_left"], emg[100:200, 0])
        np.testing.assert_array_equal(rows["emg_right"], emg[100:200, 1])


def test_metadata_attributes(tmp_path):
    ks = [keystroke("a", T0 + 0.1)]
    prompts = [{"name": "text_prompt", "start": T0, "end": T0 + 1, "payload": None}]
    path, _ = make_session_file(tmp_path / "m.hdf5", num_samples=2000, keystrokes=ks, prompts=prompts,
                                session_name="sess-1", user="89335547")
    with EMGSession(path) as s:
        assert s.session_name == "sess-1"
        assert s.user == "89335547"
        assert s.condition == "on_keyboard"
        assert math.isclose(s.duration_mins, 1999 / 2000 / 60, rel_tol=1e-5)
        assert s.keystrokes == ks
        assert s.prompts == prompts


def test_ground_truth_windows_include_edges(tmp_path):
    t = [T0 + 0.5, T0 + 1.0, T0 + 1.5, T0 + 2.0, T0 + 2.5]
    ks = [keystroke("Key.shift", t[0]), keystroke("H", t[1]), keystroke("Key.tab", t[2]),
          keystroke("i", t[3]), keystroke("Key.enter", t[4])]
    path, _ = make_session_file(tmp_path / "g.hdf5", num_samples=8000, keystrokes=ks)
    with EMGSession(path) as s:
        whole = s.ground_truth()
        assert whole.text == f"{SHIFT}Hi\u23ce"  # Key.tab is outside the charset: dropped
        assert whole.labels.tolist() == [97, 33, 8, 95]
        np.testing.assert_array_equal(whole.timestamps, [t[0], t[1], t[3], t[4]])
        assert s.ground_truth(t[1], t[3]).text == "Hi"  # both edges inclusive
        assert s.ground_truth(t[1] + 1e-4, t[3] - 1e-4).text == ""
        assert s.ground_truth(t[3], math.inf).text == "i\u23ce"
        empty = s.ground_truth(T0 + 3.0, T0 + 3.5)
        assert empty.text == "" and empty.labels.dtype == np.int32 and empty.labels.shape == (0,)


def test_ground_truth_sorts_by_press_time(tmp_path):
    ks = [keystroke("b", T0 + 1.0), keystroke("a", T0 + 0.5)]
    path, _ = make_session_file(tmp_path / "o.hdf5", keystrokes=ks)
    with EMGSession(path) as s:
        assert s.ground_truth().text == "ab"


def test_writer_is_deterministic_and_refuses_to_overwrite(tmp_path):
    a, _ = make_session_file(tmp_path / "a.hdf5", seed=3)
    b, _ = make_session_file(tmp_path / "b.hdf5", seed=3, session_name="a")
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(SessionFileError, match="already exists"):
        make_session_file(a)


def test_session_closes(session_file):
    path, _ = session_file
    with EMGSession(path) as s:
        pass
    assert not s._file.id.valid


# --- bad input: every case is one line naming the file and what is wrong ------------------------

def _assert_one_line_naming(excinfo, path, fragment):
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert fragment in msg


def test_missing_file(tmp_path):
    p = tmp_path / "nope.hdf5"
    with pytest.raises(SessionFileError) as e:
        EMGSession(p)
    _assert_one_line_naming(e, p, "no such file")


def test_not_hdf5(tmp_path):
    p = tmp_path / "text.hdf5"
    p.write_text("this is not HDF5\n")
    with pytest.raises(SessionFileError) as e:
        EMGSession(p)
    _assert_one_line_naming(e, p, "not an HDF5 file")


def test_truncated_file(session_file):
    path, _ = session_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SessionFileError) as e:
        with EMGSession(path) as s:
            s.read()
    _assert_one_line_naming(e, path, "truncated")


def test_missing_group(tmp_path):
    p = tmp_path / "nogroup.hdf5"
    with h5py.File(p, "w") as f:
        f.create_group("something_else")
    with pytest.raises(SessionFileError) as e:
        EMGSession(p)
    _assert_one_line_naming(e, p, "no 'emg2qwerty' group")


@pytest.mark.parametrize("missing", ["time", "emg_left", "emg_right"])
def test_missing_field(tmp_path, missing):
    p = tmp_path / f"no_{missing}.hdf5"
    fields = [(f, np.float64) if f == "time" else (f, np.float32, (16,))
              for f in ("emg_right", "time", "emg_left") if f != missing]
    with h5py.File(p, "w") as f:
        g = f.create_group("emg2qwerty")
        g.create_dataset("timeseries", data=np.zeros(10, dtype=fields))
        g.attrs["keystrokes"] = "[]"
        g.attrs["prompts"] = "[]"
    with pytest.raises(SessionFileError) as e:
        EMGSession(p)
    _assert_one_line_naming(e, p, f"no '{missing}' field")


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("[{\"key\": \"a\", \"start\": 1.0", "'keystrokes' is not valid JSON"),
        ("{\"key\": \"a\"}", "must be a JSON list"),
        ("[{\"key\": \"a\", \"start\": \"soon\", \"end\": 2.0}]", "keystroke 0"),
        ("[{\"start\": 1.0, \"end\": 2.0}]", "keystroke 0"),
    ],
)
def test_malformed_keystrokes(session_file, raw, fragment):
    path, _ = session_file
    with h5py.File(path, "a") as f:
        f["emg2qwerty"].attrs["keystrokes"] = raw
    with pytest.raises(SessionFileError) as e:
        EMGSession(path)
    _assert_one_line_naming(e, path, fragment)


def test_non_monotonic_timestamps(tmp_path):
    time = T0 + np.arange(100) / 2000.0
    time[60] = time[10]
    p = tmp_path / "backwards.hdf5"
    write_session(p, time=time, emg_left=np.zeros((100, 16)), emg_right=np.zeros((100, 16)),
                  keystrokes=[], prompts=[], session_name="b", user="u")
    with EMGSession(p) as s, pytest.raises(SessionFileError) as e:
        s.timestamps
    _assert_one_line_naming(e, p, "not monotonic (sample 60")


def test_non_finite_timestamps(tmp_path):
    # NaN compares false both ways, so a monotonic check alone would let it through.
    p = tmp_path / "nan_time.hdf5"
    write_session(p, time=T0 + np.arange(100) / 2000.0, emg_left=np.zeros((100, 16)),
                  emg_right=np.zeros((100, 16)), keystrokes=[], prompts=[], session_name="n", user="u")
    with h5py.File(p, "a") as f:
        rows = f["emg2qwerty"]["timeseries"][:]
        rows["time"][42] = np.nan
        f["emg2qwerty"]["timeseries"][:] = rows
    with EMGSession(p) as s, pytest.raises(SessionFileError) as e:
        s.timestamps
    _assert_one_line_naming(e, p, "timestamp nan at sample 42 is not finite")


def test_the_time_range_reads_and_checks_the_first_and_last_timestamp(tmp_path):
    time = T0 + np.arange(100) / 2000.0
    path, _ = make_session_file(tmp_path / "s.hdf5", time=time)
    with EMGSession(path) as s:
        assert s.time_range() == (time[0], time[-1])
    time[-1] = time[0] - 1.0
    path, _ = make_session_file(tmp_path / "back.hdf5", time=time)
    with EMGSession(path) as s, pytest.raises(SessionFileError) as e:
        s.time_range()
    _assert_one_line_naming(e, path, "not monotonic (the time goes back between samples 0 and 99)")


def test_keystrokes_attribute_is_plain_json_text(session_file):
    path, _ = session_file
    with h5py.File(path) as f:
        raw = f["emg2qwerty"].attrs["keystrokes"]
    assert [k["key"] for k in json.loads(raw)] == list("hello")
