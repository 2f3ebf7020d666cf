"""The multi-user table (``python -m emgtf.evaluate splits=[...]``): per-user rates from edits summed
over each user's test sessions, mean and population std over users, JSON + CSV."""

import csv
import json

import numpy as np
import pytest
from tests.helpers import FIXTURES, make_session_file, run_command

from emgtf import models
from emgtf.cli import evaluate
from emgtf.data.splits import write_split_file
from emgtf.errors import EmgtfError
from emgtf.metrics import error_rates

LM = FIXTURES / "reuters-3-gram-char-lm.arpa"


def _keys(text, num_samples):
    step = max(1, (num_samples - 600) // len(text))
    return [{"key": k, "start": 1_622_765_527.0 + (300 + i * step) / 2000.0,
             "end": 1_622_765_527.0 + (350 + i * step) / 2000.0} for i, k in enumerate(text)]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Two users: A (emgtf split format, two test sessions), B (Meta's format, one test session);
    a split of both users' test sessions; two untrained checkpoints."""
    root = tmp_path_factory.mktemp("data")
    texts = {"a_train": "hello", "a_test0": "the quick fox", "a_test1": "brown dog", "b_train": "hi there",
             "b_test0": "jumps over it"}
    for i, (name, text) in enumerate(texts.items()):
        n = 5000 + 700 * i
        t0 = 1_622_765_527.0
        prompts = [{"name": "text_prompt", "start": t0, "end": t0 + n / 2000.0, "payload": {"text": text}}]
        make_session_file(root / f"{name}.hdf5", num_samples=n, seed=i, keystrokes=_keys(text, n), prompts=prompts)
    user_a = write_split_file(root / "userA.yaml", name="userA", user="111", train=["a_train"], val=[],
                              test=["a_test0", "a_test1"])
    user_b = root / "userB.yaml"
    user_b.write_text("# @package _global_\nuser: userB\ndataset:\n  train:\n  - {user: 222, session: b_train}\n"
                      "  val: []\n  test:\n  - {user: 222, session: b_test0}\n")
    both = root / "both.yaml"
    both.write_text("user: both\ndataset:\n  test:\n  - {user: 111, session: a_test0}\n"
                    "  - {user: 222, session: b_test0}\n  - {user: 111, session: a_test1}\n")
    ckpt = tmp_path_factory.mktemp("ckpt")
    for seed in (1, 2):
        models.build("rnn", hidden_size=8, mlp_features=[16], num_layers=1, seed=seed).save(ckpt / f"m{seed}.keras")
    return root, user_a, user_b, both, ckpt


def _hand_summary(doc, decoder):
    """Mean and population std of per-user CER, from the per-session edit counts in the report."""
    cers = []
    for row in doc["rows"]:
        sessions = row["per_session"][decoder]
        # Counts checked against an independent count of the session's prediction and target.
        for s in sessions:
            again = error_rates([s["prediction"]], [s["target"]])
            assert all(again[k] == s[k] for k in ("insertions", "deletions", "substitutions", "target_chars"))
        edits = sum(s["insertions"] + s["deletions"] + s["substitutions"] for s in sessions)
        chars = sum(s["target_chars"] for s in sessions)
        assert row["results"][decoder]["CER"] == pytest.approx(100.0 * edits / chars)
        cers.append(100.0 * edits / chars)
    mean = sum(cers) / len(cers)
    std = (sum((c - mean) ** 2 for c in cers) / len(cers)) ** 0.5
    return mean, std


def test_one_checkpoint_on_each_users_split(bench, tmp_path, capsys):
    root, user_a, user_b, _, ckpt = bench
    decoders = ["greedy", "beam_lm"] if LM.is_file() else ["greedy", "beam"]
    out = tmp_path / "table.json"
    args = [f"checkpoint={ckpt / 'm1.keras'}", f"splits=[{user_a},{user_b}]", f"data.root={root}",
            f"decoders=[{','.join(decoders)}]", f"output={out}", "decoder.beam_size=8"]
    if LM.is_file():
        args.append(f"decoder.lm_path={LM}")
    assert evaluate.main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["decoders"] == decoders
    assert [r["user"] for r in doc["rows"]] == ["userA", "userB"]
    assert [r["user_id"] for r in doc["rows"]] == ["111", "222"]
    assert [r["sessions"] for r in doc["rows"]] == [["a_test0", "a_test1"], ["b_test0"]]
    assert doc["decoder_configs"][decoders[1]]["beam_size"] == 8
    for decoder in decoders:
        mean, std = _hand_summary(doc, decoder)
        assert doc["summary"][decoder]["CER"]["mean"] == pytest.approx(mean)
        assert doc["summary"][decoder]["CER"]["std"] == pytest.approx(std)
        a_chars = doc["rows"][0]["results"][decoder]["target_chars"]
        assert a_chars == len("the quick fox") + len("brown dog")
    # A user's rate is over their summed edits, not the mean of their sessions' rates.
    a = doc["rows"][0]["per_session"]["greedy"]
    assert doc["rows"][0]["results"]["greedy"]["target_chars"] == sum(s["target_chars"] for s in a)

    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    greedy = [r for r in rows if r["decoder"] == "greedy"]
    assert [r["user"] for r in greedy] == ["userA", "userB", "mean", "std", "corpus"]
    # Corpus level (NeurIPS 2026 Track 4): edits summed over every session of every user.
    every = [s for row in doc["rows"] for s in row["per_session"]["greedy"]]
    for rate, edits, chars in (("CER", ("insertions", "deletions", "substitutions"), "target_chars"),
                               ("rendered_CER", ("rendered_errors",), "rendered_chars")):
        expected = 100.0 * sum(s[k] for s in every for k in edits) / sum(s[chars] for s in every)
        assert doc["corpus"]["greedy"][rate] == pytest.approx(expected)
        assert float(greedy[4][rate]) == pytest.approx(expected, abs=1e-4)
    assert float(greedy[2]["CER"]) == pytest.approx(doc["summary"]["greedy"]["CER"]["mean"], abs=1e-4)
    assert float(greedy[3]["SER"]) == pytest.approx(doc["summary"]["greedy"]["SER"]["std"], abs=1e-4)
    printed = capsys.readouterr().out
    assert "mean +/- std (2 users)" in printed and f"{decoders[1]} CER" in printed
    assert f"{decoders[1]} rCER" in printed and "\ncorpus " in printed

    # Nothing is silently overwritten.
    with pytest.raises(EmgtfError, match="exists; pass overwrite=true"):
        evaluate.main(args)


def test_one_checkpoint_per_user_and_a_multi_user_split(bench, tmp_path):
    root, user_a, user_b, both, ckpt = bench
    out = tmp_path / "paired.json"
    assert evaluate.main([f"checkpoints=[{ckpt / 'm1.keras'},{ckpt / 'm2.keras'}]", f"splits=[{user_a},{user_b}]",
                          f"data.root={root}", f"output={out}"]) == 0
    paired = json.loads(out.read_text())
    assert [r["checkpoint"] for r in paired["rows"]] == [str(ckpt / "m1.keras"), str(ckpt / "m2.keras")]
    assert paired["decoders"] == ["greedy"]
    assert paired["metrics"] == "emg2qwerty"

    # metrics=track4: the table and CSV give the corpus line with exactly the track's rates.
    out4 = tmp_path / "track4.json"
    assert evaluate.main([f"checkpoints=[{ckpt / 'm1.keras'},{ckpt / 'm2.keras'}]", f"splits=[{user_a},{user_b}]",
                          f"data.root={root}", f"output={out4}", "metrics=track4"]) == 0
    track4 = json.loads(out4.read_text())
    assert track4["metrics"] == "track4" and track4["corpus"] == paired["corpus"]
    with open(out4.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["user"] for r in rows] == ["corpus"]
    assert list(rows[0]) == ["user", "user_id", "split", "checkpoint", "decoder", "sessions",
                             "CER", "IER", "DER", "SER", "rendered_CER"]
    assert int(rows[0]["sessions"]) == 3

    # One split holding several users' test sessions gives a row per user, as separate splits do.
    out2 = tmp_path / "both.json"
    assert evaluate.main([f"checkpoint={ckpt / 'm1.keras'}", f"splits=[{both}]", f"data.root={root}",
                          f"output={out2}"]) == 0
    grouped = json.loads(out2.read_text())
    assert [r["user"] for r in grouped["rows"]] == ["both/111", "both/222"]
    assert [r["sessions"] for r in grouped["rows"]] == [["a_test0", "a_test1"], ["b_test0"]]
    assert evaluate.main([f"checkpoint={ckpt / 'm1.keras'}", f"splits=[{user_a},{user_b}]", f"data.root={root}",
                          f"output={tmp_path / 'sep.json'}"]) == 0
    separate = json.loads((tmp_path / "sep.json").read_text())
    for g, s in zip(grouped["rows"], separate["rows"]):
        assert g["results"]["greedy"] == s["results"]["greedy"]
    assert np.isclose(grouped["summary"]["greedy"]["CER"]["std"], separate["summary"]["greedy"]["CER"]["std"])


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["checkpoints=[{c}/m1.keras]"], "checkpoints has 1 entries and splits 2"),
        (["checkpoint={c}/m1.keras", "checkpoints=[{c}/m1.keras,{c}/m2.keras]"], "not both"),
        ([], "splits= needs checkpoint=PATH"),
        (["checkpoint={c}/m1.keras", "decoders=[greedy]", "decoder.lm_path=x.arpa"], "matches none of decoders"),
        (["checkpoint={c}/nope.keras"], "nope.keras does not exist"),
    ],
)
def test_benchmark_errors(bench, extra, fragment):
    root, user_a, user_b, _, ckpt = bench
    args = [e.format(c=ckpt) for e in extra] + [f"splits=[{user_a},{user_b}]", f"data.root={root}"]
    with pytest.raises(EmgtfError, match=fragment):
        evaluate.main(args)


def test_same_user_twice_is_an_error(bench):
    root, user_a, _, _, ckpt = bench
    with pytest.raises(EmgtfError, match="user 'userA' appears twice"):
        evaluate.main([f"checkpoint={ckpt / 'm1.keras'}", f"splits=[{user_a},{user_a}]", f"data.root={root}"])


def test_cli_error_is_one_line_exit_2(bench, capsys):
    root, user_a, _, _, ckpt = bench
    proc = run_command(capsys, "evaluate", f"checkpoints=[{ckpt / 'm1.keras'}]",
                       f"splits=[{user_a},{user_a}]", f"data.root={root}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "emgtf.evaluate: error: checkpoints has 1 entries and splits 2; they are paired, so give one "
        "checkpoint per split"
    ]
