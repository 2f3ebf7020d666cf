"""``python -m emgtf.personalize``: a fit run per user from a generic checkpoint, resumable user by
user, ending with the per-user test table; and fit's ``checkpoint=`` taking the model family."""

import json
from pathlib import Path

import pytest
from tests.helpers import make_session_file, tiny_tcn_overrides, run_command

from emgtf import models
from emgtf.cli import fit as fit_cli
from emgtf.cli import personalize as personalize_cli
from emgtf.errors import EmgtfError
from emgtf.files import read_json
from emgtf.training import personalization

TINY_HP = dict(mlp_features=[16], hidden_size=8, num_layers=1, spec_augment=False)


def _fit_overrides(root) -> list[str]:
    """The tiny TCN of tests.helpers without its data.split and run_dir (personalize sets them)."""
    return [o for o in tiny_tcn_overrides((root, "unused"), "unused") if not o.startswith(("data.split=", "run_dir="))]


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    """Two users, each with a train, val and test session, as Meta-format split files in one folder;
    and an untrained 'generic' checkpoint of the tiny TCN."""
    root = tmp_path_factory.mktemp("data")
    split_dir = tmp_path_factory.mktemp("splits")
    for u, uid in (("user0", 100), ("user1", 200)):
        lines = ["# @package _global_", f"user: {u}", "dataset:"]
        for i, part in enumerate(("train", "val", "test")):
            make_session_file(root / f"{u}-{part}.hdf5", num_samples=8000, seed=uid + i)
            lines += [f"  {part}:", f"  - {{user: {uid}, session: {u}-{part}}}"]
        (split_dir / f"{u}.yaml").write_text("\n".join(lines) + "\n")
    generic = tmp_path_factory.mktemp("generic") / "generic.keras"
    models.build("tcn", **TINY_HP, seed=7).save(generic)
    return root, split_dir, generic


@pytest.mark.slow  # trains or starts a process: tens of seconds on 2 cores
def test_two_users_one_run_each_then_resume(users, tmp_path, capsys):
    root, split_dir, generic = users
    run_dir = tmp_path / "personal"
    args = ["users=[user0,user1]", f"split_dir={split_dir}", f"checkpoint={generic}", f"run_dir={run_dir}",
            *_fit_overrides(root)]
    assert personalize_cli.main(args) == 0
    for u in ("user0", "user1"):
        assert (run_dir / u / "best.keras").is_file() and (run_dir / u / "last.keras").is_file()
        saved = (run_dir / u / "config.yaml").read_text()
        assert f"split: {split_dir / (u + '.yaml')}" in saved
        assert f"checkpoint: {generic}" in saved  # fine-tuned from the generic weights
        assert read_json(run_dir / u / "last.json")["epoch"] == 1
    table = json.loads((run_dir / "personalize.test.json").read_text())
    assert [r["user"] for r in table["rows"]] == ["user0", "user1"]
    assert [r["user_id"] for r in table["rows"]] == ["100", "200"]
    assert [r["checkpoint"] for r in table["rows"]] == [str(run_dir / u / "best.keras") for u in ("user0", "user1")]
    assert [r["sessions"] for r in table["rows"]] == [["user0-test"], ["user1-test"]]
    cers = [r["results"]["greedy"]["CER"] for r in table["rows"]]
    assert table["summary"]["greedy"]["CER"]["mean"] == pytest.approx(sum(cers) / 2)
    assert table["summary"]["greedy"]["CER"]["std"] == pytest.approx(abs(cers[0] - cers[1]) / 2)
    assert (run_dir / "personalize.test.csv").is_file()
    first = capsys.readouterr().out
    assert "user0: training (finetune)" in first and "user1: training (finetune)" in first

    # Again: both users are finished and skipped; their checkpoints are left as they were.
    best = {u: (run_dir / u / "best.keras").read_bytes() for u in ("user0", "user1")}
    assert personalize_cli.main(args) == 0
    again = capsys.readouterr().out
    assert "user0: finished (1 epochs)" in again and "user1: finished (1 epochs)" in again
    assert "training (" not in again and "resuming" not in again  # no fit started
    assert all((run_dir / u / "best.keras").read_bytes() == best[u] for u in best)

    # A longer schedule resumes a stopped user from its last.keras (fit's resume=true).
    assert personalize_cli.main(["users=[user0]", *args[1:], "trainer.epochs=2"]) == 0
    assert "user0: resuming" in capsys.readouterr().out
    assert read_json(run_dir / "user0" / "last.json")["epoch"] == 2
    assert read_json(run_dir / "user1" / "last.json")["epoch"] == 1

    # The runs of one folder are trained one way: init may not change under them.
    with pytest.raises(EmgtfError, match="started with init=finetune, not random"):
        personalize_cli.main([*args, "init=random"])


def test_random_init_takes_the_family_but_not_the_weights(users, tmp_path):
    root, split_dir, generic = users
    base = ["users=[user0]", f"split_dir={split_dir}", f"checkpoint={generic}", f"run_dir={tmp_path / 'r'}",
            "init=random", f"data.root={root}", "logger=none"]
    cfg, fit_overrides = personalization.load_config(base)
    assert fit_overrides[0] == "model=tcn"  # the checkpoint's family, no model=... given
    run = personalization.UserRun("user0", split_dir / "user0.yaml", tmp_path / "r" / "user0")
    user_cfg = personalization.user_config(cfg, fit_overrides, run)
    assert user_cfg.checkpoint is None and user_cfg.model.family == "tcn"
    assert user_cfg.data.split == str(split_dir / "user0.yaml") and user_cfg.run_dir == str(run.run_dir)


def test_fit_takes_the_model_family_from_the_checkpoint(users, capsys):
    _, _, generic = users
    assert fit_cli.main(["--dry-run", f"checkpoint={generic}"]) == 0
    assert "family: tcn" in capsys.readouterr().out
    # An explicit model wins (and then must match the checkpoint, which train() checks).
    assert fit_cli.main(["--dry-run", f"checkpoint={generic}", "model=rnn"]) == 0
    assert "family: rnn" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["users=[user0,user9]"], r"user 'user9': no split file .*user9.yaml"),
        (["users=[user0]", "checkpoint=null"], "init=finetune needs checkpoint="),
        (["users=[user0]", "data.split=x.yaml"], "personalize sets data.split for each user"),
        (["users=[user0]", "init=warm"], "init must be one of finetune, random"),
        (["users=[user0,user0]"], "users lists a name twice"),
        ([], "users must be set"),
    ],
)
def test_personalize_errors(users, tmp_path, extra, fragment):
    root, split_dir, generic = users
    base = [f"split_dir={split_dir}", f"checkpoint={generic}", f"run_dir={tmp_path / 'r'}", f"data.root={root}"]
    with pytest.raises(EmgtfError, match=fragment):
        personalize_cli.main([*base, *extra])
    assert not (tmp_path / "r").exists()  # nothing written for a bad command line


def test_cli_error_is_one_line_exit_2(users, tmp_path, capsys):
    root, split_dir, generic = users
    proc = run_command(capsys, "personalize", "users=[user5]", f"split_dir={split_dir}",
                       f"checkpoint={generic}", f"run_dir={tmp_path / 'r'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"emgtf.personalize: error: user 'user5': no split file {Path(split_dir) / 'user5.yaml'}"
    ]
