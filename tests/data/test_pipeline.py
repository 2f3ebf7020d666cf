"""The tf.data input pipeline on real session files written by emgtf's writer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import CLOCKS, REPO, T0, make_session_file, sample_times
from emgtf.charset import charset
from emgtf.data import EMGSession, make_dataset
from emgtf.data.pipeline import data_errors
from emgtf.errors import EmgtfError

RATE = 2000.0


def key(k: str, sample: float) -> dict:
    """A keystroke pressed at the time of (fractional) sample index ``sample``."""
    return {"key": k, "start": T0 + sample / RATE, "end": T0 + sample / RATE + 0.05}


def text(labels: np.ndarray) -> str:
    return charset().labels_to_str(labels[labels >= 0])


def batches(dataset) -> list[dict]:
    return [{k: v.numpy() for k, v in b.items()} for b in dataset]


def elements(dataset) -> list[dict]:
    """The batches split into per-element dicts, EMG and labels cut to their lengths."""
    out = []
    for b in batches(dataset):
        for i in range(len(b["emg_lengths"])):
            out.append({
                "emg": b["emg"][i, : b["emg_lengths"][i]],
                "pad": b["emg"][i, b["emg_lengths"][i]:],
                "labels": b["labels"][i, : b["label_lengths"][i]],
                "label_pad": b["labels"][i, b["label_lengths"][i]:],
                "session": b["session"][i].decode(),
                "start": int(b["start"][i]),
            })
    return out


# Keys on and next to the edges of the windows [0, 2000), [2000, 4000), ... of 10000 samples.
EDGE_KEYS = [
    key("a", 0),  # first sample of window 0
    key("b", 1999),  # last sample of window 0
    key("c", 2000),  # first sample of window 1
    key("Key.shift", 2500),  # in the charset: shift
    key("Key.tab", 2600),  # outside the charset: dropped
    key("d", 3999.5),  # between the last sample of window 1 and the first of window 2: in neither
    key("e", 5999),  # last sample of window 2
    key("f", -10),  # before the session
    key("g", 9999),  # last sample of the session, in the last window
    key("Key.space", 8000),
]


@pytest.fixture
def edge_file(tmp_path):
    path, time = make_session_file(tmp_path / "edges.hdf5", num_samples=10_000, keystrokes=EDGE_KEYS)
    return path, time


def test_window_labels_and_context_on_hand_computed_edges(edge_file):
    path, time = edge_file
    ds = make_dataset([path], window_length=2000, padding=(300, 100), batch_size=2)
    els = elements(ds)
    # Labels: keys pressed between the times of the first and last un-padded sample, inclusive.
    assert [charset().labels_to_str(e["labels"]) for e in els] == ["ab", "c\u21e7", "e", "", " g"]
    # Context: 300 samples before and 100 after, clamped at the session's ends.
    assert [e["start"] for e in els] == [0, 1700, 3700, 5700, 7700]
    assert [len(e["emg"]) for e in els] == [2100, 2400, 2400, 2400, 2300]
    with EMGSession(path) as s:
        for e, offset in zip(els, range(0, 10_000, 2000)):
            np.testing.assert_array_equal(e["emg"], s.read(e["start"], e["start"] + len(e["emg"])))
            truth = s.ground_truth(time[offset], time[offset + 1999])
            np.testing.assert_array_equal(e["labels"], truth.labels)
            assert not e["pad"].any()
            assert (e["label_pad"] == -1).all()
    assert {e["session"] for e in els} == {"edges"}


def test_batch_shapes_dtypes_and_padding(edge_file):
    path, _ = edge_file
    ds = make_dataset([path], window_length=2000, padding=(300, 100), batch_size=2)
    spec = ds.element_spec
    assert spec["emg"].shape.as_list() == [None, 2400, 2, 16]  # static time axis in windowed mode
    assert spec["emg"].dtype == tf.float32 and spec["labels"].dtype == tf.int32
    assert spec["emg_lengths"].dtype == tf.int32 and spec["label_lengths"].dtype == tf.int32
    assert spec["session"].dtype == tf.string and spec["start"].dtype == tf.int64
    first, second, last = batches(ds)
    assert first["emg"].shape == (2, 2400, 2, 16)
    np.testing.assert_array_equal(first["emg_lengths"], [2100, 2400])
    np.testing.assert_array_equal(first["label_lengths"], [2, 2])
    # Window 3 has no key: an empty label, padded to the batch's longest.
    np.testing.assert_array_equal(second["label_lengths"], [1, 0])
    np.testing.assert_array_equal(second["labels"][1], [-1])
    assert last["emg"].shape == (1, 2400, 2, 16)  # the remainder batch is kept
    assert not last["emg"][0, 2300:].any()


def test_stride_and_remainder(tmp_path):
    path, _ = make_session_file(tmp_path / "s.hdf5", num_samples=5000)
    ds = make_dataset([path], window_length=2000, padding=(0, 0), stride=1500, batch_size=8)
    assert [e["start"] for e in elements(ds)] == [0, 1500, 3000]  # 4500 would end past 5000
    dropped = make_dataset([path], window_length=2000, padding=(0, 0), stride=1500, batch_size=2,
                           drop_remainder=True)
    assert [len(b["start"]) for b in batches(dropped)] == [2]


def test_whole_sessions_in_test_mode(tmp_path):
    a, _ = make_session_file(tmp_path / "a.hdf5", num_samples=3000, seed=1)
    keys = [key("x", 10), key("y", 4999), key("z", 6000)]  # z is after the session's last sample
    b, _ = make_session_file(tmp_path / "b.hdf5", num_samples=5000, seed=2, keystrokes=keys)
    ds = make_dataset([a, b], window_length=None, batch_size=2)
    assert ds.element_spec["emg"].shape.as_list() == [None, None, 2, 16]
    (batch,) = batches(ds)
    assert batch["emg"].shape == (2, 5000, 2, 16)
    np.testing.assert_array_equal(batch["emg_lengths"], [3000, 5000])
    np.testing.assert_array_equal(batch["start"], [0, 0])
    assert [text(x) for x in batch["labels"]] == ["hello", "xy"]
    np.testing.assert_array_equal(batch["labels"][1], list(charset().str_to_labels("xy")) + [-1] * 3)
    with EMGSession(a) as s:
        np.testing.assert_array_equal(batch["emg"][0, :3000], s.read())
    assert not batch["emg"][0, 3000:].any()
    with pytest.raises(EmgtfError, match="jitter"):
        make_dataset([a], window_length=None, batch_size=1, jitter=True)


def test_jittered_windows_stay_inside_and_match_ground_truth(tmp_path):
    keys = [key(k, i) for k, i in zip("abcdefghij", range(100, 12_000, 1190))]
    path, time = make_session_file(tmp_path / "j.hdf5", num_samples=12_000, keystrokes=keys)
    ds = make_dataset([path], window_length=3000, padding=(0, 0), stride=2500, jitter=True,
                      batch_size=4, seed=7)
    starts = set()
    with EMGSession(path) as s:
        for epoch in range(3):
            els = elements(ds)
            assert len(els) == 4  # (12000 - 3000) // 2500 + 1
            for i, e in enumerate(els):
                o = e["start"]
                # A fresh draw inside the stride, never past the end of the session.
                assert i * 2500 <= o < (i + 1) * 2500 and o + 3000 <= 12_000
                np.testing.assert_array_equal(e["emg"], s.read(o, o + 3000))
                np.testing.assert_array_equal(e["labels"], s.ground_truth(time[o], time[o + 2999]).labels)
                starts.add(o)
    assert len(starts) > 4  # the jitter changes from epoch to epoch


@pytest.mark.parametrize("clock", CLOCKS)
def test_windows_are_labelled_as_by_the_full_time_column_on_any_clock(tmp_path, clock):
    time = sample_times(30_000, clock, seed=3)
    rng = np.random.default_rng(4)
    edges = np.arange(0, len(time) - 3000 + 1, 2500)  # the unjittered windows' first samples
    presses = np.sort(np.concatenate([
        rng.uniform(time[0] - 0.5, time[-1] + 0.5, 120),
        time[rng.integers(0, len(time), 40)],  # on a sample's time
        time[edges], time[edges + 2999], time[edges[1:] - 1],  # on, on, just before a window
    ]))
    keys = [{"key": str(rng.choice(list("abcdefgh"))), "start": float(p), "end": float(p) + 0.05}
            for p in presses]
    path, _ = make_session_file(tmp_path / "s.hdf5", time=time, keystrokes=keys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keys outside the recording
        datasets = [make_dataset([path], window_length=3000, padding=(0, 0), stride=2500, jitter=jitter,
                                 batch_size=8, seed=5) for jitter in (False, True, True)]
    with EMGSession(path) as s:
        truth = s.ground_truth()
    # The index emgtf built before, from every timestamp: each key's first sample at or after
    # its press and first sample after it; window [o, o + n) held the keys with after > o and
    # first <= o + n - 1.
    first = np.searchsorted(time, truth.timestamps, "left")
    after = np.searchsorted(time, truth.timestamps, "right")
    for ds in datasets:
        els = elements(ds)
        assert len(els) == (len(time) - 3000) // 2500 + 1
        for e in els:
            o = e["start"]
            want = truth.labels[(after > o) & (first <= o + 2999)]
            np.testing.assert_array_equal(e["labels"], want)


def test_a_clock_going_back_fails_when_its_window_is_read_not_before(tmp_path):
    time = T0 + np.arange(20_000) / RATE
    time[15_000] = time[14_000]  # building the dataset does not read it
    path, _ = make_session_file(tmp_path / "back.hdf5", time=time, keystrokes=[key("a", 1000), key("b", 3000)])
    ds = make_dataset([path], window_length=2000, padding=(0, 0), batch_size=1)
    with pytest.raises(EmgtfError) as e, data_errors():
        for _ in ds:
            pass
    assert str(e.value) == f"{path}: timestamps are not monotonic (sample 15000 goes back in time)"


def _files(tmp_path, count=3, num_samples=6000):
    return [make_session_file(tmp_path / f"s{i}.hdf5", num_samples=num_samples, seed=i)[0] for i in range(count)]


def _signature(dataset):
    return [(b["session"].tolist(), b["start"].tolist(), float(b["emg"].sum())) for b in batches(dataset)]


def test_same_seed_same_batches_fresh_draws_each_epoch(tmp_path):
    files = _files(tmp_path)
    options = dict(window_length=1000, padding=(200, 100), jitter=True, shuffle=True, batch_size=4,
                   augment={"band_rotation": True, "alignment_jitter": 50, "gaussian_noise": 0.1})
    one = make_dataset(files, seed=3, **options)
    two = make_dataset(files, seed=3, **options)
    one_epochs = [_signature(one) for _ in range(2)]
    two_epochs = [_signature(two) for _ in range(2)]
    assert one_epochs == two_epochs
    assert one_epochs[0] != one_epochs[1]  # reshuffled, rejittered, re-augmented each epoch
    assert _signature(make_dataset(files, seed=4, **options)) != one_epochs[0]


def test_shuffle_interleaves_sessions_and_keeps_every_window(tmp_path):
    files = _files(tmp_path)
    plain = elements(make_dataset(files, window_length=1000, padding=(0, 0), batch_size=6))
    assert [e["session"] for e in plain[:6]] == ["s0"] * 6  # in order without shuffle
    shuffled_ds = make_dataset(files, window_length=1000, padding=(0, 0), batch_size=6, shuffle=True, seed=1)
    shuffled = elements(shuffled_ds)
    key_of = lambda e: (e["session"], e["start"])  # noqa: E731
    assert sorted(map(key_of, shuffled)) == sorted(map(key_of, plain))
    assert any(len({e["session"] for e in shuffled[i : i + 6]}) > 1 for i in range(0, 18, 6))
    assert list(map(key_of, shuffled)) != list(map(key_of, plain))


def test_fraction_is_a_fixed_seeded_subset(tmp_path):
    files = _files(tmp_path)  # 3 x 6 windows
    full = {(e["session"], e["start"]) for e in elements(
        make_dataset(files, window_length=1000, padding=(0, 0), batch_size=32))}
    half = make_dataset(files, window_length=1000, padding=(0, 0), batch_size=32, fraction=0.5, seed=5)
    subset = [(e["session"], e["start"]) for e in elements(half)]
    assert len(subset) == 9 and set(subset) < full
    assert subset == [(e["session"], e["start"]) for e in elements(half)]  # same subset every epoch
    again = make_dataset(files, window_length=1000, padding=(0, 0), batch_size=32, fraction=0.5, seed=5)
    assert [(e["session"], e["start"]) for e in elements(again)] == subset
    other = make_dataset(files, window_length=1000, padding=(0, 0), batch_size=32, fraction=0.5, seed=6)
    assert [(e["session"], e["start"]) for e in elements(other)] != subset
    tiny = make_dataset(files, window_length=1000, padding=(0, 0), batch_size=32, fraction=0.01, seed=5)
    assert len(elements(tiny)) == 1
    with pytest.raises(EmgtfError, match="fraction"):
        make_dataset(files, window_length=1000, batch_size=2, fraction=0)


def test_mixed_field_orders_read_the_same_emg(tmp_path):
    a, _ = make_session_file(tmp_path / "a.hdf5", num_samples=3000, seed=1)
    b, _ = make_session_file(tmp_path / "b.hdf5", num_samples=3000, seed=2,
                             field_order=("time", "emg_left", "emg_right"))
    els = elements(make_dataset([a, b], window_length=1000, padding=(100, 100), batch_size=3))
    for path, e in zip([a] * 3 + [b] * 3, els):
        with EMGSession(path) as s:
            np.testing.assert_array_equal(e["emg"], s.read(e["start"], e["start"] + len(e["emg"])))


def test_non_finite_emg_names_file_and_sample(tmp_path):
    emg = np.random.default_rng(0).normal(0, 2.5, size=(6000, 2, 16)).astype(np.float32)
    emg[4321, 1, 5] = np.nan
    path, _ = make_session_file(tmp_path / "nan.hdf5", num_samples=6000, emg=emg)
    ds = make_dataset([path], window_length=1000, padding=(0, 0), batch_size=1)
    seen = []
    with pytest.raises(tf.errors.OpError) as raw:
        for b in ds:
            seen.append(int(b["start"][0]))
    assert seen == [0, 1000, 2000, 3000]  # windows before the bad one are fine
    assert str(path) in raw.value.message and "sample 4321" in raw.value.message
    with pytest.raises(EmgtfError) as clean:
        with data_errors():
            for _ in ds:
                pass
    message = str(clean.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and "sample 4321 (right band, channel 5)" in message
    emg[4321, 1, 5] = np.inf
    inf_path, _ = make_session_file(tmp_path / "inf.hdf5", num_samples=6000, emg=emg)
    with pytest.raises(EmgtfError, match="inf at sample 4321"):
        with data_errors():
            for _ in make_dataset([inf_path], window_length=None, batch_size=1):
                pass


def test_session_shorter_than_window_warns_once(tmp_path):
    short, _ = make_session_file(tmp_path / "short.hdf5", num_samples=500)
    long_, _ = make_session_file(tmp_path / "long.hdf5", num_samples=3000)
    with pytest.warns(UserWarning) as caught:
        ds = make_dataset([short, long_], window_length=1000, batch_size=4)
    relevant = [w for w in caught if "window_length" in str(w.message)]
    assert len(relevant) == 1 and str(short) in str(relevant[0].message)
    assert {e["session"] for e in elements(ds)} == {"long"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(EmgtfError, match="no session is at least window_length 1000"):
            make_dataset([short], window_length=1000, batch_size=4)


def test_bad_arguments(tmp_path, session_file):
    path, _ = session_file
    with pytest.raises(EmgtfError, match="no session files"):
        make_dataset([], window_length=1000, batch_size=2)
    with pytest.raises(EmgtfError, match="single path"):
        make_dataset(str(path), window_length=1000, batch_size=2)
    with pytest.raises(EmgtfError, match="batch_size"):
        make_dataset([path], window_length=1000, batch_size=0)
    with pytest.raises(EmgtfError, match="window_length"):
        make_dataset([path], window_length=-5, batch_size=2)
    with pytest.raises(EmgtfError, match="padding"):
        make_dataset([path], window_length=1000, padding=(10, -1), batch_size=2)
    with pytest.raises(EmgtfError, match="stride"):
        make_dataset([path], window_length=1000, stride=0, batch_size=2)
    with pytest.raises(EmgtfError, match="no such file"):
        make_dataset([tmp_path / "missing.hdf5"], window_length=1000, batch_size=2)
    with pytest.raises(EmgtfError, match="unknown augmentation 'band_rotations'"):
        make_dataset([path], window_length=1000, batch_size=2, augment={"band_rotations": True})


EXIT_SCRIPT = """
import sys
from emgtf.data import make_dataset
dataset = make_dataset(sys.argv[1:], window_length=1000, padding=(100, 100), batch_size=4, shuffle=True,
                       jitter=True, seed=0)
iterator = iter(dataset)  # still alive, mid-epoch, when the interpreter shuts down
next(iterator)
print("read one batch", flush=True)
"""


def test_process_exits_with_a_live_iterator(tmp_path):
    # Without the pipeline's exit hook, TF 2.21 hangs at interpreter exit here most of the time: a
    # reader call in flight waits for a GIL that is no longer handed out.
    import os
    import subprocess
    import sys

    files = [str(make_session_file(tmp_path / f"e{i}.hdf5", num_samples=40_000, seed=i)[0]) for i in range(2)]
    root = str(REPO)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, *files], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "read one batch" in done.stdout
