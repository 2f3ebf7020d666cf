"""``python -m emgtf.evaluate``: whole sessions, batch 1, per-session and overall rates, JSON report."""

import json

import numpy as np
import pytest
from tests.helpers import make_session_file, run_command
from omegaconf import OmegaConf

from emgtf import config, models
from emgtf.cli import evaluate
from emgtf.charset import charset
from emgtf.data import EMGSession
from emgtf.data.splits import write_split_file
from emgtf.decoding import ctc_greedy
from emgtf.errors import EmgtfError
from emgtf.metrics import error_rates


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder as fit leaves it: a (here untrained) checkpoint and its config.yaml."""
    root = tmp_path_factory.mktemp("data")
    for i, name in enumerate(["train0", "val", "test0", "test1"]):
        make_session_file(root / f"{name}.hdf5", num_samples=6000 + 1000 * i, seed=i)
    split = write_split_file(root / "split.yaml", name="tiny", train=["train0"], val=["val"], test=["test0", "test1"])
    run_dir = tmp_path_factory.mktemp("run")
    model = models.build("rnn", hidden_size=8, mlp_features=[16], num_layers=1, seed=3)
    model.save(run_dir / "best.keras")
    cfg = config.compose("fit", [f"data.root={root}", f"data.split={split}", f"run_dir={run_dir}"])
    OmegaConf.save(cfg, run_dir / "config.yaml")
    return run_dir, root, split, model


def expected_report(model, files):
    """Rates computed here straight from the model: one forward pass per whole session."""
    cs = charset()
    predictions, targets = [], []
    for f in files:
        with EMGSession(f) as session:
            emg = session.read(0, len(session))[None]
            targets.append(session.ground_truth().text)
        log_probs = np.asarray(model(emg, training=False))
        predictions.append(ctc_greedy(log_probs, [models.emission_lengths(model, emg.shape[1])])[0])
    assert all(cs.clean_str(t) == t for t in targets)
    return predictions, targets


def test_evaluate_writes_per_session_and_overall_rates(run):
    run_dir, root, _, model = run
    checkpoint = run_dir / "best.keras"
    assert evaluate.main([f"checkpoint={checkpoint}"]) == 0  # data from the run's config.yaml
    report = json.loads((run_dir / "best.test.greedy.eval.json").read_text())
    assert report["split"] == "test" and report["model"] == "rnn" and report["decoder"] == {"kind": "greedy"}
    assert [s["session"] for s in report["sessions"]] == ["test0", "test1"]
    predictions, targets = expected_report(model, [root / "test0.hdf5", root / "test1.hdf5"])
    for session, prediction, target in zip(report["sessions"], predictions, targets):
        assert (session["prediction"], session["target"]) == (prediction, target)
        assert session["CER"] == pytest.approx(error_rates([prediction], [target])["CER"])
    overall = error_rates(predictions, targets)
    for key in ("CER", "IER", "DER", "SER", "rendered_CER", "target_chars", "rendered_chars"):
        assert report["overall"][key] == pytest.approx(overall[key])
    assert report["metrics"] == "emg2qwerty" and "track4" not in report
    assert report["overall"]["target_chars"] == sum(s["target_chars"] for s in report["sessions"])


def test_evaluate_val_split_with_explicit_data_and_output(run, tmp_path, capsys):
    run_dir, root, split, _ = run
    output = tmp_path / "val.json"
    assert evaluate.main([f"checkpoint={run_dir / 'best.keras'}", "split=val", f"data.root={root}",
                          f"data.split={split}", f"output={output}"]) == 0
    report = json.loads(output.read_text())
    assert report["split"] == "val" and [s["session"] for s in report["sessions"]] == ["val"]
    printed = capsys.readouterr().out
    assert "overall" in printed and "val " in printed  # the table
    header = next(line for line in printed.splitlines() if line.startswith("session"))
    assert header.split() == ["session", "CER", "IER", "DER", "SER", "rCER", "chars"]

    # metrics=track4: the corpus-level line of the track's rates, also under "track4" in the JSON.
    output = tmp_path / "track4.json"
    assert evaluate.main([f"checkpoint={run_dir / 'best.keras'}", "split=val", f"data.root={root}",
                          f"data.split={split}", f"output={output}", "metrics=track4"]) == 0
    track4 = json.loads(output.read_text())
    assert track4["metrics"] == "track4"
    assert track4["track4"] == {k: report["overall"][k] for k in ("CER", "IER", "DER", "SER", "rendered_CER")}
    lines = capsys.readouterr().out.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("session")):]
    assert [line.split()[0] for line in table if not line.startswith("-")][:-1] == ["session", "overall"]


def test_evaluate_refuses_to_overwrite_a_report(run):
    run_dir, _, _, _ = run
    output = run_dir / "best.val.greedy.eval.json"
    output.write_text("{}")
    with pytest.raises(EmgtfError, match="exists; pass overwrite=true"):
        evaluate.main([f"checkpoint={run_dir / 'best.keras'}", "split=val"])
    assert output.read_text() == "{}"
    assert evaluate.main([f"checkpoint={run_dir / 'best.keras'}", "split=val", "overwrite=true"]) == 0
    assert json.loads(output.read_text())["split"] == "val"


def test_evaluate_with_beam_search(run):
    run_dir, _, _, _ = run
    assert evaluate.main([f"checkpoint={run_dir / 'best.keras'}", "decoder=beam", "decoder.beam_size=4"]) == 0
    report = json.loads((run_dir / "best.test.beam.eval.json").read_text())
    assert report["decoder"]["kind"] == "beam" and report["decoder"]["beam_size"] == 4
    assert len(report["sessions"]) == 2


def test_evaluate_cli_errors_are_one_line(run, tmp_path, capsys):
    run_dir, _, _, _ = run
    for args, message in [
        ([f"checkpoint={tmp_path / 'none.keras'}"], f"checkpoint {tmp_path / 'none.keras'} does not exist"),
        ([f"checkpoint={run_dir / 'config.yaml'}"], f"checkpoint {run_dir / 'config.yaml'} is not a Keras .keras file"),
        ([f"checkpoint={run_dir / 'best.keras'}", "split=dev"], "split must be train, val, test, got 'dev'"),
        ([f"checkpoint={run_dir / 'best.keras'}", "metrics=wer"],
         "metrics must be one of emg2qwerty, track4, got 'wer'"),
    ]:
        result = run_command(capsys, "evaluate", *args)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == f"emgtf.evaluate: error: {message}"
        assert "Traceback" not in result.stderr


def test_the_compiled_loss_is_the_loss_and_is_compiled_once():
    """Validation's loss runs compiled (eager CTC was most of an epoch's validation): the same
    per-window values as the eager call, one compiled function per loss object."""
    from emgtf.inference.runners import compiled_loss
    from emgtf.models.ctc import CTCLoss, pack_targets

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 40, charset().num_classes)).astype("float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    labels = rng.integers(0, charset().blank, size=(4, 12))
    # Lengths include an empty target and one that cannot fit (scored 0 by the loss).
    y = pack_targets([40, 40, 30, 5], labels, [12, 0, 7, 12])
    loss = CTCLoss()
    compiled = compiled_loss(loss)
    assert compiled is compiled_loss(loss) and compiled is not compiled_loss(CTCLoss())
    np.testing.assert_allclose(np.asarray(compiled(y, log_probs)), np.asarray(loss.call(y, log_probs)),
                               rtol=1e-5, atol=1e-5)
    assert np.asarray(compiled(y, log_probs))[3] == 0.0
