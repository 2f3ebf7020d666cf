"""The synthetic sEMG generator: real file format, determinism, the signal's physiology, the CLI
and the embedded default data set."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from scipy import signal as sps

from emgtf import SAMPLE_RATE
from emgtf.charset import BACKSPACE, ENTER, SHIFT, charset
from emgtf.cli import run
from emgtf.data import EMGSession
from emgtf.data.session import REAL_FIELD_ORDER
from emgtf.data.splits import load_split, read_split_file, write_split_file
from emgtf.errors import EmgtfError
from emgtf.paths import splits_dir
from emgtf.synth import SynthConfig, dataset, generate_dataset, generate_session
from emgtf.cli.synth import PROG, main
from tests.helpers import REPO

NAME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})-(\d{10})-keystrokes-dca-study@1-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)
LEFT_LETTERS = set("qwertasdfgzxcvb")
RIGHT_LETTERS = set("yuiophjklnm")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A 30 s synthetic session: its SessionInfo."""
    return generate_session(tmp_path_factory.mktemp("synth"), seed=1, minutes=0.5)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(folder.iterdir())}


def _typed_text(keystrokes, start, end) -> str:
    """What the keys pressed in [start, end] leave on screen: shift dropped, backspace erases."""
    cs = charset()
    out = []
    for k in keystrokes:
        if start <= k["start"] <= end:
            c = cs.key_to_char(k["key"])
            if c == BACKSPACE:
                out.pop()
            elif c is not None and c != SHIFT:
                out.append(c)
    return "".join(out)


# --- the file format -------------------------------------------------------------------------
def test_session_file_is_in_the_real_format(session):
    with h5py.File(session.path, "r") as f:
        assert f["emg2qwerty/timeseries"].dtype.names == REAL_FIELD_ORDER
    with EMGSession(session.path) as s:
        m = NAME.match(s.session_name)
        assert m and s.session_name == session.path.stem == session.session
        assert re.fullmatch(r"\d{8}", s.user) and s.user == session.user
        assert s.condition == "on_keyboard"
        assert len(s) == 30 * SAMPLE_RATE
        t = s.timestamps
        assert np.allclose(np.diff(t), 1.0 / SAMPLE_RATE, rtol=0, atol=1e-6)  # float64 at 1.6e9 s
        assert s.duration_mins == pytest.approx((t[-1] - t[0]) / 60)
        # The name carries the start's unix time and its US Pacific (daylight) date, as the real ones.
        assert int(m.group(2)) == int(t[0])
        day = dt.datetime.fromtimestamp(int(t[0]), dt.timezone(dt.timedelta(hours=-7)))
        assert m.group(1) == f"{day:%Y-%m-%d}"
        emg = s.read()
        assert emg.dtype == np.float32 and emg.shape == (len(s), 2, 16) and np.isfinite(emg).all()
        keystrokes, prompts = s.keystrokes, s.prompts
    assert all(set(k) == {"key", "start", "end"} and k["start"] < k["end"] for k in keystrokes)
    assert [k["start"] for k in keystrokes] == sorted(k["start"] for k in keystrokes)
    assert all(t[0] <= k["start"] and k["end"] <= t[-1] for k in keystrokes)
    names = {k["key"] for k in keystrokes}
    assert {"Key.space", "Key.enter", "Key.shift"} <= names
    assert len(prompts) == session.num_prompts >= 2 and len(keystrokes) == session.num_keystrokes
    for p in prompts:
        assert set(p) == {"name", "start", "end", "payload"} and p["name"] == "text_prompt"
        assert isinstance(p["payload"]["text"], str) and p["payload"]["text"]
        assert t[0] <= p["start"] < p["end"] <= t[-1]
    assert all(a["end"] <= b["start"] for a, b in zip(prompts, prompts[1:]))


def test_capitals_are_typed_with_shift_held_around_them(session):
    with EMGSession(session.path) as s:
        keystrokes = s.keystrokes
    capitals = [k for k in keystrokes if len(k["key"]) == 1 and k["key"].isupper()]
    assert capitals
    for cap in capitals:
        shifts = [k for k in keystrokes if k["key"] == "Key.shift" and k["start"] < cap["start"] < k["end"]]
        assert shifts and shifts[-1]["end"] > cap["end"]


def test_keystrokes_type_each_prompt_with_corrections_and_enter(tmp_path):
    # Frequent typos and stray keys outside the charset (tab, ctrl, cmd, right shift) must still
    # leave exactly the prompt on screen: backspace erases, stray keys drop out of the ground truth.
    cfg = SynthConfig(typo_rate=(0.15, 0.15), stray_key_rate=0.1, shift_r_rate=0.5)
    info = generate_session(tmp_path, seed=2, minutes=0.5, config=cfg)
    with EMGSession(info.path) as s:
        keystrokes, prompts = s.keystrokes, s.prompts
        truth = s.ground_truth()
    names = {k["key"] for k in keystrokes}
    assert "Key.backspace" in names and names & {"Key.tab", "Key.ctrl", "Key.cmd", "Key.shift_r"}
    assert BACKSPACE in truth.text and "\t" not in truth.text
    for p in prompts:
        assert _typed_text(keystrokes, p["start"], p["end"]) == p["payload"]["text"] + ENTER


# --- the signal ------------------------------------------------------------------------------
def _band_power(path):
    """Per-sample 20-450 Hz power of each band (T, 2), timestamps and keystrokes."""
    with EMGSession(path) as s:
        emg, t, keystrokes = s.read().astype(np.float64), s.timestamps, s.keystrokes
    sos = sps.butter(4, [20, 450], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return (sps.sosfiltfilt(sos, emg, axis=0) ** 2).sum(axis=2), t, keystrokes


def test_bursts_sit_at_the_key_presses(session):
    power, t, keystrokes = _band_power(session.path)
    press = np.searchsorted(t, [k["start"] for k in keystrokes])
    near = np.mean([power[i - 100: i + 40].mean() for i in press])  # -50 ms .. +20 ms
    # Quiet: more than 0.3 s from any press or release (reading a prompt, between prompts).
    events = np.concatenate([press, np.searchsorted(t, [k["end"] for k in keystrokes])])
    far = np.ones(len(t), bool)
    for i in events:
        far[max(i - 600, 0): i + 600] = False
    assert far.sum() > SAMPLE_RATE  # at least a second of quiet
    assert near > 10 * power[far].mean()


def test_each_hand_shows_on_its_own_band(session):
    power, t, keystrokes = _band_power(session.path)
    ratio = {"left": [], "right": []}
    for k in keystrokes:
        key = k["key"].lower()
        hand = "left" if key in LEFT_LETTERS else "right" if key in RIGHT_LETTERS else None
        if hand:
            i = int(np.searchsorted(t, k["start"]))
            window = power[i - 100: i + 40]
            ratio[hand].append(window[:, 0].mean() / window[:, 1].mean())  # left band / right band
    assert len(ratio["left"]) > 20 and len(ratio["right"]) > 20
    assert np.median(ratio["left"]) > 3.0
    assert np.median(ratio["right"]) < 1 / 3.0


def _log_spectrogram(x: np.ndarray, n_fft: int = 64, hop: int = 16) -> np.ndarray:
    """DATA.md's log spectrogram, written independently of emgtf.models.layers: periodic Hann, no
    centring, power over the window energy, log10(power + 1e-6). x: (T, C) -> (frames, bins, C)."""
    frames = 1 + (len(x) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.fft.rfft(x[idx] * window[None, :, None], axis=1)
    return np.log10(np.abs(spec) ** 2 / np.sum(window**2) + 1e-6)


def test_amplitude_is_calibrated_to_the_real_log_spectrogram(session):
    with EMGSession(session.path) as s:
        x = s.read().reshape(len(s), 32).astype(np.float64)
    logspec = _log_spectrogram(x)
    assert logspec.shape[1:] == (33, 32)
    assert 0.3 < logspec.mean() < 0.7  # real: ~0.5
    assert 0.6 < logspec.var() < 2.0  # real: ~1.15
    # Muscle bursts live in the low bins, above the flat noise floor of the high ones.
    per_bin = logspec.mean(axis=(0, 2))
    assert per_bin[2:8].mean() > per_bin[24:32].mean() + 0.5


# --- data sets, metadata and splits ------------------------------------------------------------
def test_dataset_metadata_and_split(tmp_path):
    split_file = generate_dataset(tmp_path, users=2, sessions=3, minutes=0.1, eval_minutes=0.05, seed=4)
    assert split_file == tmp_path / "split.yaml"
    doc = yaml.safe_load(split_file.read_text())
    assert doc == yaml.safe_load(
        write_split_file(tmp_path / "expected.yaml", **dataset.split_contents(
            users=2, sessions=3, minutes=0.1, eval_minutes=0.05, seed=4)).read_text()
    )
    split = load_split(split_file, tmp_path)
    assert (len(split.train), len(split.val), len(split.test)) == (2, 2, 2)
    with open(tmp_path / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:8] == ["user", "session", "condition", "split", "start", "end", "duration_mins",
                                 "num_keystrokes"]
    assert "num_prompts" in rows[0]
    assert len(rows) == 6 and len({r["user"] for r in rows}) == 2
    parts = {p: {f.stem for f in split.part(p)} for p in ("train", "val", "test")}
    for r in rows:
        with EMGSession(tmp_path / f"{r['session']}.hdf5") as s:
            assert r["user"] == s.user and r["condition"] == s.condition
            assert int(r["num_keystrokes"]) == len(s.keystrokes)
            assert int(r["num_prompts"]) == len(s.prompts)
            assert float(r["duration_mins"]) == pytest.approx(s.duration_mins, abs=1e-5)
            minutes = 0.1 if r["split"] == "train" else 0.05
            assert float(r["duration_mins"]) == pytest.approx(minutes, abs=1e-3)
        assert r["session"] in parts[r["split"]]
    # Each user has one val and one test session.
    for part in ("val", "test"):
        assert sorted(r["user"] for r in rows if r["split"] == part) == sorted({r["user"] for r in rows})


@pytest.mark.parametrize("sessions, expected", [(1, (1, 0, 0)), (2, (1, 1, 0))])
def test_few_sessions_fill_train_first(tmp_path, sessions, expected):
    doc = read_split_file(generate_dataset(tmp_path, sessions=sessions, minutes=0.05, seed=3))
    assert tuple(len(doc[p]) for p in ("train", "val", "test")) == expected


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = _digest(generate_dataset(tmp_path / "a", sessions=2, minutes=0.1, seed=7).parent)
    b = _digest(generate_dataset(tmp_path / "b", sessions=2, minutes=0.1, seed=7).parent)
    c = _digest(generate_dataset(tmp_path / "c", sessions=2, minutes=0.1, seed=8).parent)
    assert a == b
    assert len(a) == 4  # 2 sessions, metadata.csv, split.yaml
    assert not set(a) & set(c) - {"metadata.csv", "split.yaml"}  # other names
    assert set(a.values()).isdisjoint(c.values())


def test_a_session_does_not_depend_on_the_rest_of_the_data_set(tmp_path):
    generate_dataset(tmp_path / "set", users=2, sessions=3, minutes=0.05, seed=9)
    alone = generate_session(tmp_path / "alone", seed=9, user=1, session=1, minutes=0.05)
    assert dataset.split_roles(9, 1, 3)[1] == "train"  # so the data set used minutes=0.05 too
    assert _sha(alone.path) == _sha(tmp_path / "set" / alone.path.name)


def test_refuses_to_overwrite_unless_asked(tmp_path):
    generate_dataset(tmp_path, sessions=1, minutes=0.05, seed=1)
    before = _digest(tmp_path)
    with pytest.raises(EmgtfError, match="overwrite"):
        generate_dataset(tmp_path, sessions=1, minutes=0.05, seed=2)
    assert _digest(tmp_path) == before
    generate_dataset(tmp_path, sessions=1, minutes=0.05, seed=1, overwrite=True)
    assert _digest(tmp_path) == before


def test_shipped_synthetic_split_is_the_default_data_set(tmp_path):
    # What generate_dataset writes as the default data set's split.yaml (the same function and
    # writer), compared with the shipped file.
    expected = dataset.default_split_contents()
    written = write_split_file(tmp_path / "split.yaml", **expected)
    assert yaml.safe_load((splits_dir() / "synthetic.yaml").read_text()) == yaml.safe_load(written.read_text())
    assert read_split_file("synthetic")["train"] == expected["train"]
    assert (len(expected["train"]), len(expected["val"]), len(expected["test"])) == (
        dataset.DEFAULT_TRAIN_SESSIONS, 1, 1)


# --- the embedded default data set -------------------------------------------------------------
@pytest.fixture
def tiny_default(monkeypatch, tmp_path):
    """The default data set shrunk to seconds, in a private cache."""
    monkeypatch.setenv("EMGTF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dataset, "DEFAULT_TRAIN_SESSIONS", 1)
    monkeypatch.setattr(dataset, "DEFAULT_TRAIN_MINUTES", 0.05)
    monkeypatch.setattr(dataset, "DEFAULT_EVAL_MINUTES", 0.05)
    return tmp_path / "cache"


def test_default_dataset_is_generated_once_then_reused(tiny_default, capsys):
    root, split_file = dataset.default_dataset()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(root) in err and "generating" in err
    assert root == tiny_default / dataset.DEFAULT_NAME
    split = load_split(split_file, root)
    assert (len(split.train), len(split.val), len(split.test)) == (1, 1, 1)
    stamp = _digest(root)
    assert dataset.default_dataset() == (root, split_file)
    assert capsys.readouterr().err == ""
    assert _digest(root) == stamp
    assert sorted(p.name for p in tiny_default.iterdir()) == [dataset.DEFAULT_NAME]


def test_interrupted_default_generation_leaves_nothing(tiny_default, monkeypatch):
    real = dataset.generate_session
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset, "generate_session", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dataset.default_dataset()
    assert list(tiny_default.iterdir()) == []
    monkeypatch.setattr(dataset, "generate_session", real)
    root, split_file = dataset.default_dataset()
    assert split_file.is_file()


# --- the command line --------------------------------------------------------------------------
def _cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "emgtf.synth", *args], capture_output=True, text=True,
                          cwd=REPO, env=env)


def test_cli_writes_a_dataset_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "data"
    done = _cli("--out", str(out), "--sessions", "1", "--minutes", "0.05", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert sorted(p.suffix for p in out.iterdir()) == [".csv", ".hdf5", ".yaml"]
    before = _digest(out)
    again = _cli("--out", str(out), "--sessions", "1", "--minutes", "0.05", "--seed", "4")
    assert again.returncode == 2
    assert again.stderr.startswith("emgtf.synth: error: ") and len(again.stderr.strip().splitlines()) == 1
    assert "--overwrite" in again.stderr and _digest(out) == before
    # (in-process from here: one interpreter start-up per test is enough)
    assert run(main, PROG, ["--out", str(out), "--sessions", "1", "--minutes", "0.05", "--seed", "4",
                            "--overwrite"]) == 0
    assert _digest(out) != before


@pytest.mark.parametrize("args, message", [
    (["--minutes", "0"], "--minutes"),
    (["--minutes", "soon"], "--minutes"),
    (["--users", "-1"], "--users"),
    (["--sessions", "1.5"], "--sessions"),
    (["--seed", "-3"], "--seed"),
    ([], "--out"),
])
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    argv = (["--out", str(tmp_path / "x")] if message != "--out" else []) + args
    assert run(main, PROG, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{PROG}: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
