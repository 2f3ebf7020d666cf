"""``python -m emgtf.report`` on real run folders of tiny training runs: the files it writes are
valid PNG / SVG / HTML whose numbers are those of the runs' history.csv and test reports; runs
are labelled by their config differences; bad input is one line and exit status 2."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import matplotlib.image
import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from emgtf import config, training
from emgtf.cli import fit
from emgtf.run_folder import read_history
from emgtf.cli import run
from emgtf.cli.report import main
from tests.helpers import make_session_file, make_tiny_split, tiny_tcn_overrides
from tests.reporting.tiny import Tables, subprocess_env

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two 2-epoch runs differing in model.dropout: ``a`` by ``python -m emgtf.fit`` (with its
    test report), ``b`` by the training loop alone (no test report)."""
    data = make_tiny_split(tmp_path_factory.mktemp("data"))
    base = tmp_path_factory.mktemp("runs")
    assert fit.main(tiny_tcn_overrides(data, base / "a", epochs=2)) == 0
    training.train(config.compose("fit", tiny_tcn_overrides(data, base / "b", "model.dropout=0.2", epochs=2)))
    return base / "a", base / "b"


def check_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def check_svg(path):
    root = ElementTree.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", path


def check_figures(out, *stems):
    for stem in stems:
        check_png(out / f"{stem}.png")
        check_svg(out / f"{stem}.svg")


def history_numbers(tables: Tables, table: str, run_dir) -> None:
    """The history table holds exactly history.csv's numbers (as emgtf's training reads them)."""
    history = read_history(run_dir / "history.csv")
    assert tables.column(table, "epoch") == [r["epoch"] for r in history]
    for column in ("train/loss", "val/loss", "val/CER", "val/IER", "val/DER", "val/SER", "lr", "seconds"):
        assert tables.column(table, column) == [r[column] for r in history], column
    rows = tables.tables[table]["rows"]
    cer = tables.tables[table]["columns"].index("val/CER")
    for row, r in zip(rows, history):  # the shown text is the value rounded
        assert float(row[cer][0]) == pytest.approx(r["val/CER"], abs=0.005)


def test_report_of_one_finished_run(runs):
    a, _ = runs
    assert main([str(a)]) == 0
    out = a / "report"  # the default for one run
    check_figures(out, "curves", "test_confusion", "test_substitutions", "test_key_rates")
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    tables = Tables(page)
    history_numbers(tables, "history-1", a)

    history = read_history(a / "history.csv")
    best = min(history, key=lambda r: (r["val/CER"], r["val/loss"]))
    test_report = json.loads((a / "best.test.greedy.eval.json").read_text())
    assert tables.column("summary", "best epoch") == [best["epoch"]]
    assert tables.column("summary", "best val CER") == [best["val/CER"]]
    assert tables.column("summary", "test CER") == [test_report["overall"]["CER"]]
    assert tables.column("summary", "run") == ["tcn"]

    # The test set's error analysis: its substitutions are rapidfuzz's replace operations.
    pairs = [(s["prediction"], s["target"]) for s in test_report["sessions"]]
    ops = [op.tag for p, t in pairs for op in Levenshtein.editops(p, t)]
    assert tables.column("test_totals", "substitutions") == [ops.count("replace")]
    assert tables.column("test_totals", "insertions (typed key missed)") == [ops.count("insert")]
    assert tables.column("test_totals", "deletions (decoded key not typed)") == [ops.count("delete")]
    assert sum(tables.column("test_top-substitutions", "count")) <= ops.count("replace")
    with open(out / "summary.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert float(row["best val CER"]) == best["val/CER"] and float(row["test CER"]) == test_report["overall"]["CER"]


def test_comparison_of_two_runs_labels_them_by_what_differs(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "compare"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    check_figures(out, "curves", "best_cer")
    tables = Tables((out / "index.html").read_text(encoding="utf-8"))
    assert tables.column("summary", "run") == ["tcn model.dropout=0.0", "tcn model.dropout=0.2"]
    assert tables.column("summary", "model.dropout") == ["0.0", "0.2"]
    assert tables.column("summary", "test CER")[1] == "-"  # b has no test report
    history_numbers(tables, "history-1", a)
    history_numbers(tables, "history-2", b)
    printed = capsys.readouterr().out
    assert "tcn model.dropout=0.2: best val CER" in printed and str(out / "index.html") in printed


def test_tune_folder_stands_for_its_trials(runs, tmp_path, capsys):
    a, b = runs
    tune_dir = tmp_path / "search"
    for name, source in (("trial_00", a), ("trial_01", b)):
        shutil.copytree(source, tune_dir / "trials" / name, ignore=shutil.ignore_patterns("*.keras", "report"))
    (tune_dir / "trials" / "trial_02").mkdir()  # a trial that failed before its first epoch
    assert main([str(tune_dir)]) == 0
    assert "trial_02: no history.csv" in capsys.readouterr().err
    tables = Tables((tune_dir / "report" / "index.html").read_text(encoding="utf-8"))
    assert tables.column("summary", "run") == ["tcn model.dropout=0.0", "tcn model.dropout=0.2"]
    history_numbers(tables, "history-2", b)


def test_report_of_an_evaluation_json(runs, tmp_path):
    a, _ = runs
    out = tmp_path / "eval"
    assert main([str(a / "best.test.greedy.eval.json"), "--out", str(out)]) == 0
    check_figures(out, "confusion", "substitutions", "key_rates")
    assert not (out / "curves.png").exists()
    tables = Tables((out / "index.html").read_text(encoding="utf-8"))
    report = json.loads((a / "best.test.greedy.eval.json").read_text())
    assert tables.column("sessions", "session") == [s["session"] for s in report["sessions"]]
    assert tables.column("sessions", "CER") == [s["CER"] for s in report["sessions"]]


def one_line_error(capsys, argv) -> str:
    assert run(main, "emgtf.report", argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("emgtf.report: error: ") and "Traceback" not in err
    return err


def test_bad_inputs_are_one_line_errors_naming_the_file(runs, tmp_path, capsys):
    a, _ = runs
    assert "no such run folder" in one_line_error(capsys, [str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    assert "no history.csv" in one_line_error(capsys, [str(tmp_path / "empty")])
    broken = tmp_path / "broken.eval.json"
    broken.write_text('{"sessions": [')
    assert f"{broken}: not valid JSON" in one_line_error(capsys, [str(broken)])
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"overall": {}}')
    assert "not an emgtf evaluation report" in one_line_error(capsys, [str(foreign)])
    bad_history = tmp_path / "bad_history"
    shutil.copytree(a, bad_history, ignore=shutil.ignore_patterns("*.keras", "report"))
    text = (bad_history / "history.csv").read_text().splitlines()
    (bad_history / "history.csv").write_text("\n".join([text[0], "1," + "x," * (text[0].count(","))]) + "\n")
    assert f"{bad_history / 'history.csv'}, line 2" in one_line_error(capsys, [str(bad_history)])

    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "is not an empty folder" in one_line_error(capsys, [str(a), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert "(see --help)" in one_line_error(capsys, [])


def test_out_and_paths_are_also_keys(runs, tmp_path, capsys):
    """``report RUN out=DIR`` (the one command convention) writes what ``--out DIR`` writes."""
    a, b = runs
    assert run(main, "emgtf.report", [str(a), f"out={tmp_path / 'keys'}"]) == 0
    assert run(main, "emgtf.report", [f"paths={a}", "--out", str(tmp_path / "flags")]) == 0
    assert "index.html" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == sorted(p.name for p in (tmp_path / "flags").iterdir())
    check_figures(tmp_path / "keys", "curves", "test_confusion")
    assert run(main, "emgtf.report", [f"paths={a}", f"paths={b}", f"out={tmp_path / 'two'}"]) == 0
    summary = Tables((tmp_path / "two" / "index.html").read_text(encoding="utf-8")).column("summary", "run")
    assert summary == ["tcn model.dropout=0.0", "tcn model.dropout=0.2"]


def test_cli_runs_headless_without_tensorflow(runs, tmp_path):
    """In a fresh interpreter with no display and a GUI backend asked for: the report is drawn
    (on the Agg canvas) and neither TensorFlow nor Keras is imported."""
    a, b = runs
    out = tmp_path / "headless"
    code = ("import sys; from emgtf.cli.report import main; rc = main(sys.argv[1:]); "
            # the error-analysis modules too (their key map comes from the synthetic generator)
            "import emgtf.reporting.error_figures, emgtf.reporting.alignment; "
            "emgtf.reporting.keyboard_groups.key_groups(); "
            "loaded = sorted(m for m in ('tensorflow', 'keras', 'matplotlib.pyplot') if m in sys.modules); "
            "print('loaded:', loaded); sys.exit(rc)")
    env = subprocess_env(DISPLAY=None, WAYLAND_DISPLAY=None, MPLBACKEND="TkAgg")
    done = subprocess.run([sys.executable, "-c", code, str(b), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout
    check_figures(out, "curves")

    env = subprocess_env(DISPLAY=None, MPLBACKEND=None)
    done = subprocess.run([sys.executable, "-m", "emgtf.report", str(a), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith(f"emgtf.report: error: {out} is not an empty folder")


# --- python -m emgtf.evaluate ... report=true ----------------------------------------------------


@pytest.fixture(scope="module")
def two_test_sessions(runs, tmp_path_factory):
    """Run ``a``'s sessions plus one more, ``first``, with a split whose test part is first, test."""
    from emgtf.data.splits import write_split_file

    saved = config.load_saved(runs[0] / "config.yaml")
    root = tmp_path_factory.mktemp("two")
    for name in ("train", "val", "test"):
        shutil.copy(f"{saved.data.root}/{name}.hdf5", root)
    make_session_file(root / "first.hdf5", seed=7)
    path = write_split_file(root / "two.yaml", name="two", train=["train"], val=["val"], test=["first", "test"])
    return root, path


def evaluate_cli(capsys, *argv):
    from emgtf.cli import evaluate

    code = run(evaluate.main, "emgtf.evaluate", list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_report_true_writes_the_error_analysis_and_an_alignment_view(runs, two_test_sessions, tmp_path, capsys):
    a, _ = runs
    root, split = two_test_sessions
    output = tmp_path / "eval" / "best.two.json"
    code, out, err = evaluate_cli(capsys, f"checkpoint={a / 'best.keras'}", f"data.root={root}", f"data.split={split}",
                                  f"output={output}", "report=true", "report_session=test", "report_seconds=2.5",
                                  "report_start=0.5")
    assert code == 0, err
    folder = tmp_path / "eval" / "best.two-report"
    check_figures(folder, "confusion", "substitutions", "key_rates", "alignment")
    assert "alignment view: session test, 0.50-3.00 s" in out
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "alignment view of session test, 0.50-3.00 s" in page
    svg = (folder / "alignment.svg").read_text(encoding="utf-8")
    assert "session test" in svg and "session first" not in svg
    tables = Tables(page)
    report = json.loads(output.read_text())
    assert tables.column("sessions", "session") == ["first", "test"] == [s["session"] for s in report["sessions"]]


@pytest.mark.slow  # two evaluations with their reports; about 20 s
def test_evaluate_report_defaults_to_the_first_session_and_overwrite_replaces_it(runs, two_test_sessions, tmp_path,
                                                                               capsys):
    a, _ = runs
    root, split = two_test_sessions
    output = tmp_path / "eval" / "best.two.json"
    argv = [f"checkpoint={a / 'best.keras'}", f"data.root={root}", f"data.split={split}", f"output={output}",
            "report=true"]
    assert evaluate_cli(capsys, *argv, "report_session=test")[0] == 0
    folder = tmp_path / "eval" / "best.two-report"
    output.unlink()  # a report folder is never written over either
    code, _, err = evaluate_cli(capsys, *argv)
    assert code == 2 and not output.exists() and f"{folder} exists and is not an empty folder; pass overwrite=true" in err
    code, out, err = evaluate_cli(capsys, *argv, "overwrite=true")
    assert code == 0, err
    assert "alignment view: session first, 0.00-4.00 s" in out  # its first key at 0.25 s; 4 s by default
    assert "session first" in (folder / "alignment.svg").read_text(encoding="utf-8")


def test_alignment_view_holds_the_sessions_numbers(runs, tmp_path):
    """The view's keys, key times and log-probabilities are the session's and the model's."""
    from emgtf import SAMPLE_RATE
    from emgtf.data import EMGSession
    from emgtf.inference.alignment import session_alignment
    from emgtf.inference.checkpoints import load_checkpoint
    from emgtf.inference.runners import forward
    from emgtf.models.emission import EmissionRule

    a, _ = runs
    model = load_checkpoint(a / "best.keras")
    path = config.load_saved(a / "config.yaml").data.root + "/test.hdf5"
    view = session_alignment(model, path, seconds=1.5, start=0.8)
    with EMGSession(path) as session:
        t0 = session.timestamps[0]
        truth = session.ground_truth(t0 + 0.8, t0 + 2.3)
        emg = session.read()
    assert view.session == "test" and view.keys == truth.text == "ell"
    np.testing.assert_allclose(view.key_times, truth.timestamps - t0)
    rule = EmissionRule.from_model(model)
    assert view.spectrogram.shape == (rule.frames(int(1.5 * SAMPLE_RATE)), 2, 16, rule.n_fft // 2 + 1)
    whole = forward(model, emg[None])[0]
    first = int(round((view.emission_start * SAMPLE_RATE - rule.n_fft / 2) / rule.stride - rule.center_offset_frames))
    np.testing.assert_allclose(view.log_probs, whole[first:first + len(view.log_probs)], atol=1e-5)
    assert 0.8 <= view.emission_start < 0.8 + 1 / rule.emission_rate
    assert view.window == (0.8, 2.3) and view.end == pytest.approx(2.3, abs=rule.n_fft / SAMPLE_RATE)

    # A beam decoder's keys are shown at their onsets, the emissions where its path starts them.
    from emgtf.decoding import BeamSearchDecoder

    beam = BeamSearchDecoder(beam_size=4)
    view = session_alignment(model, path, beam, seconds=1.5, start=0.8)
    decoded, onsets = beam.decode_batch(view.log_probs[None], [len(view.log_probs)], onsets=True)[0]
    assert view.decoded == decoded and len(view.decoded_times) == len(decoded)
    np.testing.assert_allclose(view.decoded_times, view.emission_start + onsets / rule.emission_rate)


def test_evaluate_report_options_are_checked_first(runs, two_test_sessions, tmp_path, capsys):
    a, _ = runs
    root, split = two_test_sessions
    output = tmp_path / "r.json"
    common = [f"checkpoint={a / 'best.keras'}", f"data.root={root}", f"data.split={split}", f"output={output}",
              "report=true"]
    for extra, message in [("report_session=nope", "report_session=nope: no such test session (the 2 test sessions: first, test)"),
                           ("report_seconds=0", "report_seconds must be a number > 0, got 0"),
                           ("report_start=-1", "report_start must be a number >= 0")]:
        code, out, err = evaluate_cli(capsys, *common, extra)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("emgtf.evaluate: error: ") and message in err, err
        assert not output.exists()  # refused before evaluating
    code, _, err = evaluate_cli(capsys, *common[:-1], "report=yes")
    assert code == 2 and "report must be true or false" in err
