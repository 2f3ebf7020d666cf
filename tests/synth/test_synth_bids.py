"""``python -m emgtf.synth format=bids`` and ``events=``: the BIDS form as the release has it, the
same session in both forms, a real keystroke timeline replayed, and the commands on a BIDS root."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emgtf.cli import run
from emgtf.cli.synth import PROG, main
from emgtf.data import EMGSession, bids
from emgtf.data.splits import load_split
from emgtf.synth import generate_session
from tests.helpers import FIXTURES, run_command, tiny_tcn_overrides

NM = FIXTURES / "nm000104"
REAL = NM / "sub-89335547/ses-1622682789/emg/sub-89335547_ses-1622682789_task-typing_events.tsv"
needs_fixtures = pytest.mark.skipif(not NM.is_dir(), reason="needs ../shared/fixtures/nm000104")


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("bids") / "data"
    assert run(main, PROG, ["--out", str(out), "--format", "bids", "--sessions", "3", "--minutes", "0.1",
                            "--seed", "5"]) == 0
    return out


def test_bids_dataset_is_laid_out_as_the_release(bids_root):
    top = {p.name for p in bids_root.iterdir()}
    assert {"dataset_description.json", "participants.tsv", "task-typing_events.json", ".bidsignore",
            "split.yaml", "metadata.csv"} <= top
    assert json.loads((bids_root / "dataset_description.json").read_text())["BIDSVersion"]
    bdfs = sorted(bids_root.glob("sub-*/ses-*/emg/*_task-typing_emg.bdf"))
    assert len(bdfs) == 3
    subjects = {p.parts[-4] for p in bdfs}
    assert (bids_root / "participants.tsv").read_text().splitlines()[1:] == [f"{s}\tn/a\tn/a" for s in sorted(subjects)]
    for bdf in bdfs:
        stem = bdf.name[: -len("_emg.bdf")]
        prefix = stem[: -len("_task-typing")]
        names = {p.name for p in bdf.parent.iterdir()}
        assert names == {bdf.name, f"{stem}_emg.json", f"{stem}_channels.tsv", f"{stem}_events.tsv",
                         f"{prefix}_electrodes.tsv"}
        # channels.tsv and electrodes.tsv are the release's, byte for byte.
        real = NM / "sub-89335547/ses-1622682789/emg"
        if real.is_dir():
            for suffix in ("_task-typing_channels.tsv", "_electrodes.tsv"):
                want = (real / f"sub-89335547_ses-1622682789{suffix}").read_text()
                assert (bdf.parent / f"{prefix}{suffix}").read_text() == want
        events = (bdf.parent / f"{stem}_events.tsv").read_text().splitlines()
        assert events[0] == "onset\tduration\tsample\tvalue\tkey\tprompt_text"
        duration, _ = bids.read_emg_json(bdf.parent / f"{stem}_emg.json")
        assert duration == 6.0
        with bids.open_bdf(bdf) as edf:
            # One physical range over all channels, 24-bit, 1-s records padded to whole seconds.
            assert {(edf.getPhysicalMinimum(i), edf.getPhysicalMaximum(i)) for i in range(32)} == \
                {(edf.getPhysicalMinimum(0), edf.getPhysicalMaximum(0))}
            assert edf.getDigitalMaximum(0) == 2**23 - 1 and edf.getPhysicalDimension(0) == "uV"
            assert edf.datarecord_duration == 1.0 and edf.getNSamples()[0] == 12_000
            assert edf.getSignalLabels() == [f"EMG{i}" for i in range(32)]


def test_split_of_a_bids_dataset_resolves(bids_root):
    split = load_split(bids_root / "split.yaml", bids_root)
    files = split.train + split.val + split.test
    assert len(files) == 3 and all(f.suffix == ".bdf" and f.is_file() for f in files)


def test_same_synthetic_session_in_both_forms(tmp_path):
    h = generate_session(tmp_path / "h5", seed=5, user=0, session=1, minutes=0.1)
    b = generate_session(tmp_path / "bids", seed=5, user=0, session=1, minutes=0.1, format="bids")
    assert (h.session, h.num_keystrokes) == (b.session, b.num_keystrokes)
    with EMGSession(h.path) as x, EMGSession(b.path) as y:
        emg = x.read()
        step = bids.quantization_step(bids.physical_range(emg))
        assert np.max(np.abs(y.read() - emg)) <= step / 2 + 1e-6 * np.max(np.abs(emg))
        assert y.ground_truth().text == x.ground_truth().text
        t0 = x.timestamps[0]
        # Presses lie on samples: the BIDS sample index gives back the HDF5 time exactly.
        assert [t0 + k["start"] for k in y.keystrokes] == [k["start"] for k in x.keystrokes]
        assert all(x.timestamps[round(k["start"] * 2000)] == t0 + k["start"] for k in y.keystrokes)


def test_one_form_per_folder(tmp_path, capsys):
    generate_session(tmp_path, seed=1, minutes=0.01)
    assert run(main, PROG, ["--out", str(tmp_path), "--format", "bids", "--sessions", "1", "--minutes", "0.01"]) == 2
    assert "holds sessions of the other form" in capsys.readouterr().err


# --- a real keystroke timeline ----------------------------------------------------------------------
@pytest.fixture
def real_start(tmp_path):
    """The first 40 s of the real test session's events.tsv (its own rows, its own file name)."""
    lines = REAL.read_text().splitlines(keepends=True)
    kept = [lines[0]] + [line for line in lines[1:] if float(line.split("\t")[0]) < 40.0]
    path = tmp_path / "in" / REAL.name
    path.parent.mkdir()
    path.write_text("".join(kept))
    return path


@needs_fixtures
def test_events_replays_a_real_timeline_as_bids(real_start, tmp_path):
    out = tmp_path / "out"
    assert run(main, PROG, ["--out", str(out), "--events", str(real_start), "--format", "bids"]) == 0
    written = out / "sub-89335547/ses-1622682789/emg" / REAL.name
    assert (out / "participants.tsv").read_text().splitlines()[1] == "sub-89335547\tn/a\tn/a"
    # Row for row the real file: keys, samples, onsets, durations and prompts.
    assert written.read_text() == real_start.read_text()
    with EMGSession(written.parent) as s:
        keys, _ = bids.read_events(real_start)
        assert len(s) == round((keys[-1]["end"] + 1.0) * 2000)
        assert s.ground_truth().text.startswith("the quick brown fox")
        emg = s.read()
    # The EMG bursts where the real keys were pressed.
    power = (emg.astype(np.float64) ** 2).sum(axis=(1, 2))
    presses = np.array([round(k["start"] * 2000) for k in keys])
    near = np.mean([power[max(i - 100, 0): i + 40].mean() for i in presses])
    assert near > 3 * np.median(power[: presses[0] - 1000])


@needs_fixtures
def test_events_replays_a_real_timeline_as_hdf5(real_start, tmp_path):
    out = tmp_path / "out"
    assert run(main, PROG, ["--out", str(out), "--events", str(real_start)]) == 0
    (path,) = out.glob("*.hdf5")
    assert path.name.startswith("2021-06-02-1622682789-keystrokes-dca-study@1-")
    keys, prompts = bids.read_events(real_start)
    with EMGSession(path) as s:
        assert s.user == "89335547"
        t = s.timestamps
        assert t[0] == 1622682789.0
        assert [k["key"] for k in s.keystrokes] == [k["key"] for k in keys]
        assert [k["start"] for k in s.keystrokes] == [t[round(k["start"] * 2000)] for k in keys]
        assert [p["payload"] for p in s.prompts] == [p["payload"] for p in prompts]


def test_events_file_must_name_the_session(tmp_path, capsys):
    bad = tmp_path / "events.tsv"
    bad.write_text("onset\tduration\tsample\tvalue\tkey\tprompt_text\n1.0\t0.1\t2000\tkeystroke_a\ta\tn/a\n")
    assert run(main, PROG, ["--out", str(tmp_path / "o"), "--events", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sub-<user>" in err and str(bad) in err


# --- the commands on a BIDS root ---------------------------------------------------------------------
@pytest.mark.slow
def test_fit_evaluate_transcribe_and_stream_on_a_bids_root(bids_root, tmp_path, capsys):
    from emgtf.cli import fit

    run_dir = tmp_path / "run"
    assert fit.main(tiny_tcn_overrides((bids_root, bids_root / "split.yaml"), run_dir)) == 0
    report = json.loads(next(run_dir.glob("*test*.json")).read_text())
    assert report["sessions"][0]["session"].startswith("sub-")
    checkpoint = run_dir / "best.keras"
    result = run_command(capsys, "evaluate", f"checkpoint={checkpoint}", "split=val")
    assert result.returncode == 0, result.stderr
    session = load_split(bids_root / "split.yaml", bids_root).test[0]
    for command in ("transcribe", "stream"):
        result = run_command(capsys, command, "--model", checkpoint, session.parent.parent)
        assert result.returncode == 0, result.stderr
