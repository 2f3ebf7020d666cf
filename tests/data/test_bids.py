"""The BIDS release (NM000104) as a data root: real sidecars, a synthetic session in both forms
through the real pipeline, split files on a BIDS root, and every bad input as one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from emgtf.data import EMGSession, bids
from emgtf.data.convert import convert_session
from emgtf.data.splits import load_split
from emgtf.errors import EmgtfError
from tests.helpers import FIXTURES, run_command

NM = FIXTURES / "nm000104"
BARE_QUOTE = NM / "sub-94998811/ses-1626232810/emg/sub-94998811_ses-1626232810_task-typing_events.tsv"
needs_fixtures = pytest.mark.skipif(not NM.is_dir(), reason="needs ../shared/fixtures/nm000104")


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """One synthetic session (30 s) as HDF5 and, converted, as BIDS: (hdf5 path, bdf path)."""
    from emgtf.synth import generate_session

    root = tmp_path_factory.mktemp("twin")
    info = generate_session(root / "hdf5", seed=3, minutes=0.5)
    return info.path, convert_session(info.path, root / "bids")


def _batches(path, **kwargs):
    from emgtf.data import data_errors, make_dataset

    with data_errors():
        return list(make_dataset([path], **kwargs).as_numpy_iterator())


@pytest.mark.parametrize("mode", ["windows", "jittered", "whole"])
def test_same_session_as_hdf5_and_bids_gives_the_same_windows_and_labels(twin, mode):
    hdf5, bdf = twin
    kwargs = {"whole": dict(window_length=None, batch_size=1),
              "windows": dict(window_length=8000, padding=(1800, 200), stride=3000, batch_size=3),
              "jittered": dict(window_length=4000, padding=(900, 100), jitter=True, shuffle=True,
                               seed=7, batch_size=4)}[mode]
    want, got = _batches(hdf5, **kwargs), _batches(bdf, **kwargs)
    assert len(want) == len(got) > 0
    with EMGSession(hdf5) as s:
        step = bids.quantization_step(bids.physical_range(s.read()))
    labelled = 0
    for a, b in zip(want, got):
        for key in ("emg_lengths", "labels", "label_lengths", "start"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        # Equal within the BDF's quantisation (half a step, plus float32 rounding).
        assert np.max(np.abs(a["emg"] - b["emg"])) <= step / 2 + 1e-6 * np.max(np.abs(a["emg"]))
        labelled += int(a["label_lengths"].sum())
    assert labelled > 20


def test_bids_signal_is_in_the_hdf5_units(twin):
    """Mean log10 spectrogram ~0.5 as in the real release (a reader returning volts gives ~-11)."""
    from scipy.signal import get_window

    hdf5, bdf = twin

    def mean_log_spectrogram(emg):
        window = get_window("hann", 64, fftbins=True)
        frames = np.lib.stride_tricks.sliding_window_view(emg, 64, axis=0)[::16]  # (F, 2, 16, 64)
        power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 / np.sum(window**2)
        return float(np.mean(np.log10(power + 1e-6)))

    with EMGSession(hdf5) as h, EMGSession(bdf) as b:
        want, got = mean_log_spectrogram(h.read()), mean_log_spectrogram(b.read())
    assert 0.2 < got < 0.9
    assert abs(got - want) < 1e-3


def test_bids_session_has_the_session_interface(twin):
    hdf5, bdf = twin
    with EMGSession(hdf5) as h, EMGSession(bdf.parent.parent) as b:  # the ses- folder opens too
        assert isinstance(b, bids.BIDSSession) and b.path == bdf
        assert len(b) == len(h) and b.user == h.user and b.condition == "on_keyboard"
        assert b.session_name == f"sub-{h.user}_ses-{h.session_name.split('-')[3]}"
        assert b.ground_truth().text == h.ground_truth().text
        assert b.keys_outside() == h.keys_outside()
        assert [p["payload"] for p in b.prompts] == [p["payload"] for p in h.prompts]
        t0 = h.timestamps[0]
        np.testing.assert_allclose([k["start"] for k in b.keystrokes],
                                   [k["start"] - t0 for k in h.keystrokes], atol=1e-6)
        rows = b.slice(1.0, 1.01)
        assert rows.dtype.names == ("time", "emg_left", "emg_right") and len(rows) == 21
        np.testing.assert_array_equal(rows["emg_left"], b.read(2000, 2021)[:, 0])
        assert b.time_range() == (0.0, (len(b) - 1) / 2000)


def test_inspect_reads_a_bids_session(twin, capsys):
    _, bdf = twin
    result = run_command(capsys, "inspect", bdf)
    assert result.returncode == 0, result.stderr
    assert "sub-" in result.stdout


# --- the real sidecars ---------------------------------------------------------------------------
@needs_fixtures
@pytest.mark.parametrize("events", sorted(NM.glob("sub-*/ses-*/emg/*_events.tsv")), ids=lambda p: p.parts[-3])
def test_real_sidecars_parse(events):
    stem = events.name[: -len("_events.tsv")]
    duration, rate = bids.read_emg_json(events.with_name(f"{stem}_emg.json"))
    manifest = {r["path"]: r for r in _manifest()}
    assert duration == pytest.approx(float(manifest[str(events.relative_to(NM)).replace("_events.tsv", "_emg.bdf")]
                                           ["recording_duration_s"]))
    assert rate == 2000
    assert bids.read_channels(events.with_name(f"{stem}_channels.tsv")) == bids.default_channels()
    keystrokes, prompts = bids.read_events(events)
    lines = events.read_text().splitlines()[1:]
    assert len(keystrokes) + len(prompts) == len(lines)
    assert len(keystrokes) > 4000 and len(prompts) > 50
    assert all(p["payload"]["text"].endswith("\n") for p in prompts)
    assert all("\\n" not in p["payload"]["text"] for p in prompts)
    starts = [k["start"] for k in keystrokes]
    assert starts == sorted(starts) and 0 < starts[0] and starts[-1] < duration


def _manifest():
    import csv

    with open(NM / "manifest.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@needs_fixtures
def test_bare_quote_keys_are_read_as_keys():
    keystrokes, _ = bids.read_events(BARE_QUOTE)
    quotes = [k for k in keystrokes if k["key"] == '"']
    assert [round(k["start"], 4) for k in quotes] == [679.996, 682.8905]
    assert [round(k["end"] - k["start"], 4) for k in quotes] == [0.18, 0.166]
    # The rows between the quotes stay rows of their own (a quoting reader would merge them).
    lines = BARE_QUOTE.read_text().splitlines()
    assert len(keystrokes) == sum(1 for line in lines if "\tkeystroke_" in line)


@needs_fixtures
def test_a_real_session_layout_with_a_synthetic_signal_reads(tmp_path):
    """The bare-quote session's real sidecars beside a 1-s synthetic BDF (RecordingDuration
    shortened to match): the session opens, and its ground truth holds both quotes."""
    dst = tmp_path / "sub-94998811/ses-1626232810/emg"
    shutil.copytree(BARE_QUOTE.parent, dst)
    stem = "sub-94998811_ses-1626232810_task-typing"
    doc = json.loads((dst / f"{stem}_emg.json").read_text())
    doc["RecordingDuration"] = 0.75
    (dst / f"{stem}_emg.json").write_text(json.dumps(doc))
    emg = np.random.default_rng(0).normal(0, 2.5, (2000, 2, 16)).astype(np.float32)
    bids.write_bdf(dst / f"{stem}_emg.bdf", emg)
    with EMGSession(dst) as s:
        assert len(s) == 1500 and s.user == "94998811" and s.session_name == "sub-94998811_ses-1626232810"
        assert s.ground_truth().text.count('"') == 2
        assert s.keys_outside()[0] == 0
        np.testing.assert_allclose(s.read(1000, 1010), emg[1000:1010], atol=1e-4)


# --- split files on a BIDS root -------------------------------------------------------------------
def _write_short(root, user, name, seconds=1.0):
    emg = np.random.default_rng(len(name)).normal(0, 2.5, (int(seconds * 2000), 2, 16)).astype(np.float32)
    keys = [{"key": "a", "start": 0.25, "end": 0.3}]
    return bids.write_session(root, emg=emg, keystrokes=keys, prompts=[], t0=0.0, user=user, session_name=name)


@needs_fixtures
def test_metas_user0_split_resolves_on_a_bids_root(tmp_path):
    doc = yaml.safe_load((FIXTURES / "emg2qwerty-splits/user0.yaml").read_text())
    entries = [e for part in ("train", "val", "test") for e in doc["dataset"][part]]
    for e in entries:
        _write_short(tmp_path, e["user"], e["session"])
    split = load_split(FIXTURES / "emg2qwerty-splits/user0.yaml", tmp_path)
    assert [len(split.train), len(split.val), len(split.test)] == [len(doc["dataset"][p]) for p in ("train", "val", "test")]
    for e, path in zip(entries, split.train + split.val + split.test):
        assert path == bids.bdf_path(tmp_path, f"{e['user']:08d}", e["session"].split("-")[3])
        assert split.user_of(path) == str(e["user"])


def test_emgtf_user_89335547_split_resolves_on_a_bids_root(tmp_path):
    doc = yaml.safe_load(open("configs/splits/user_89335547.yaml"))
    names = doc["train"] + doc["val"] + doc["test"]
    for name in names:
        _write_short(tmp_path, "89335547", name, seconds=0.5)
    bids.write_dataset_files(tmp_path, ["89335547"])
    split = load_split("user_89335547", tmp_path)
    assert len(split.train) == 16 and len(split.val) == 1 and len(split.test) == 1
    assert split.test[0].name == "sub-89335547_ses-1622682789_task-typing_emg.bdf"
    with EMGSession(split.val[0]) as s:
        assert s.session_name == "sub-89335547_ses-1622862148" and s.ground_truth().text == "a"


def test_leading_zeros_and_splits_without_a_user(tmp_path):
    bdf = _write_short(tmp_path, "5775561", "2021-06-03-1622765527-keystrokes-dca-study@1-x")
    assert bdf.parts[-4] == "sub-05775561"
    split_file = tmp_path / "s.yaml"
    split_file.write_text(yaml.safe_dump({"train": ["2021-06-03-1622765527-keystrokes-dca-study@1-x"]}))
    assert load_split(split_file, tmp_path).train == [bdf]
    with EMGSession(bdf) as s:
        assert s.user == "5775561"


def test_root_with_both_forms_or_a_missing_session_is_one_line(tmp_path, twin):
    hdf5, _ = twin
    _write_short(tmp_path, "89335547", "2021-06-04-1622862148-x")
    split_file = tmp_path / "s.yaml"
    split_file.write_text(yaml.safe_dump({"user": "89335547", "train": ["2021-06-04-1622862148-x"],
                                          "test": ["2021-06-02-1622682789-x"]}))
    with pytest.raises(EmgtfError) as e:
        load_split(split_file, tmp_path)
    assert "2021-06-02-1622682789-x (test)" in str(e.value) and "sub-89335547/ses-1622682789" in str(e.value)
    assert "\n" not in str(e.value)
    shutil.copy(hdf5, tmp_path / hdf5.name)
    with pytest.raises(EmgtfError, match="both HDF5 session files") as e:
        load_split(split_file, tmp_path)
    assert "\n" not in str(e.value)


# --- bad input: one line naming the file ----------------------------------------------------------
def _bad_session(tmp_path, damage):
    """A 2-s BIDS session, damaged by ``damage(files)``; returns the error of opening it and
    of indexing it in the pipeline (each one line)."""
    bdf = _write_short(tmp_path, "1", "2021-01-01-1600000000-x", seconds=2.0)
    stem = bdf.name[: -len("_emg.bdf")]
    files = {"bdf": bdf, **{k: bdf.with_name(f"{stem}_{k}") for k in ("emg.json", "events.tsv", "channels.tsv")}}
    named = damage(files)
    with pytest.raises(EmgtfError) as e:
        EMGSession(bdf)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(named)), message
    return message


def _write_bdf_with(path, channels=32, rate=2000):
    import pyedflib

    path.unlink()
    w = pyedflib.EdfWriter(str(path), channels, file_type=pyedflib.FILETYPE_BDF)
    for i in range(channels):
        w.setSignalHeader(i, {"label": f"EMG{i}", "dimension": "uV", "sample_frequency": rate,
                              "physical_min": -100.0, "physical_max": 100.0, "digital_min": -8388608,
                              "digital_max": 8388607, "transducer": "", "prefilter": ""})
    for _ in range(2):
        w.writeSamples([np.zeros(rate) for _ in range(channels)])
    w.close()


def test_missing_events(tmp_path):
    def damage(f):
        f["events.tsv"].unlink()
        return f["events.tsv"]
    assert "no such file" in _bad_session(tmp_path, damage)


@pytest.mark.parametrize("text, problem", [
    ("onset\tduration\tsample\tvalue\tkey\n", "no column 'prompt_text'"),
    ("onset\tduration\tsample\tvalue\tkey\tprompt_text\n1.0\t0.1\t2000\tkeystroke_a\ta\n", "line 2 has 5 fields"),
    ("onset\tduration\tsample\tvalue\tkey\tprompt_text\n1.0\t0.1\tx\tkeystroke_a\ta\tn/a\n", "sample 'x' is not a number"),
    ("onset\tduration\tsample\tvalue\tkey\tprompt_text\n1.0\t0.1\t2000\tclick\ta\tn/a\n", "neither 'prompt'"),
    ("onset\tduration\tsample\tvalue\tkey\tprompt_text\n9.0\t0.1\t2000\tkeystroke_a\ta\tn/a\n", "not sample 2000"),
    ("", "is empty"),
])
def test_malformed_events(tmp_path, text, problem):
    def damage(f):
        f["events.tsv"].write_text(text)
        return f["events.tsv"]
    assert problem in _bad_session(tmp_path, damage)


def test_truncated_bdf(tmp_path):
    def damage(f):
        data = f["bdf"].read_bytes()
        f["bdf"].write_bytes(data[: len(data) - 5000])
        return f["bdf"]
    assert "truncated" in _bad_session(tmp_path, damage)


def test_bdf_shorter_than_recording_duration(tmp_path):
    def damage(f):
        doc = json.loads(f["emg.json"].read_text())
        doc["RecordingDuration"] = 5.0
        f["emg.json"].write_text(json.dumps(doc))
        return f["bdf"]
    assert "fewer than RecordingDuration" in _bad_session(tmp_path, damage)


def test_wrong_channel_count(tmp_path):
    def damage(f):
        _write_bdf_with(f["bdf"], channels=31)
        return f["bdf"]
    assert "has 31 channels, expected 32" in _bad_session(tmp_path, damage)


def test_wrong_rate(tmp_path):
    def damage(f):
        _write_bdf_with(f["bdf"], rate=1000)
        return f["bdf"]
    assert "1000 Hz, expected 2000" in _bad_session(tmp_path, damage)


def test_emg_json_without_recording_duration(tmp_path):
    def damage(f):
        doc = json.loads(f["emg.json"].read_text())
        del doc["RecordingDuration"]
        f["emg.json"].write_text(json.dumps(doc))
        return f["emg.json"]
    assert "has no RecordingDuration" in _bad_session(tmp_path, damage)


def test_bad_session_through_a_command_is_one_line(tmp_path, capsys):
    bdf = _write_short(tmp_path, "1", "2021-01-01-1600000000-x")
    bdf.with_name(bdf.name.replace("_emg.bdf", "_events.tsv")).write_text("onset\n")
    result = run_command(capsys, "inspect", bdf.parent)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "_events.tsv: header has no column 'duration'" in result.stderr


def test_index_cache_follows_the_sidecars_and_a_replaced_bdf_is_read_afresh(tmp_path, monkeypatch):
    """The window index of a BIDS session is cached like an HDF5 one's, keyed on its sidecars
    too: new events are new labels. A BDF rewritten in place is read anew, not from the old handle."""
    from emgtf.data import index_cache

    monkeypatch.setenv("EMGTF_CACHE", str(tmp_path / "cache"))
    bdf = _write_short(tmp_path / "root", "7", "2021-01-01-1600000000-x", seconds=2.0)
    kwargs = dict(window_length=None, batch_size=1)
    (first,) = _batches(bdf, **kwargs)
    assert index_cache.load(bdf) is not None
    events = bdf.with_name(bdf.name.replace("_emg.bdf", "_events.tsv"))
    events.write_text(events.read_text() + "1.5\t0.05\t3000\tkeystroke_b\tb\tn/a\n")
    (second,) = _batches(bdf, **kwargs)
    assert first["label_lengths"][0] == 1 and second["label_lengths"][0] == 2
    louder = np.full((4000, 2, 16), 7.0, np.float32)
    bids.write_bdf(bdf, louder)
    with EMGSession(bdf) as s:
        np.testing.assert_allclose(s.read(0, 3), louder[:3], atol=1e-5)
