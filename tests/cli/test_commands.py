"""Every command, run for real in both forms of the one convention: ``key=value`` and the old
flags give the same result (the same files, the same output). report's are in
tests/reporting/test_report.py (it needs trained run folders)."""

from __future__ import annotations

import importlib
import json

import keras
import pytest

from emgtf import models
from emgtf.cli import COMMANDS, run
from emgtf.cli.main import main as emgtf_main
from emgtf.synth import generate_session

TINY_TDS = dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4)


def command(name: str, argv: list, capsys) -> tuple[int, str, str]:
    """``emgtf <name> argv`` in process, as ``python -m emgtf.<name>`` runs it: (code, out, err)."""
    module = importlib.import_module(f"emgtf.cli.{name}")
    capsys.readouterr()
    code = run(module.main, f"emgtf.{name}", [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A generated 9 s session and a tiny TDS checkpoint."""
    root = tmp_path_factory.mktemp("commands")
    keras.utils.set_random_seed(4)
    session = generate_session(root, seed=4, minutes=0.15).path
    models.build("tds_conv_ctc", **TINY_TDS).save(root / "tds.keras")
    return {"root": root, "session": session, "checkpoint": root / "tds.keras"}


def test_synth_writes_the_same_bytes_from_flags_and_from_key_value(tmp_path, capsys):
    flags = ["--out", tmp_path / "flags", "--users", "2", "--sessions", "3", "--minutes", "0.02",
             "--eval-minutes", "0.01", "--seed", "5"]
    keys = [f"out={tmp_path / 'keys'}", "users=2", "sessions=3", "minutes=0.02", "eval_minutes=0.01", "seed=5"]
    assert command("synth", flags, capsys)[0] == 0
    code, out, _ = command("synth", keys, capsys)
    assert code == 0 and f"split file: {tmp_path / 'keys' / 'split.yaml'}" in out
    written = files(tmp_path / "keys")
    assert len([n for n in written if n.endswith(".hdf5")]) == 6  # 2 users x 3 sessions
    assert written == files(tmp_path / "flags")
    # A switch as key=value: overwrite=true replaces, overwrite=false (the default) refuses.
    assert command("synth", [*keys, "overwrite=false"], capsys)[0] == 2
    assert command("synth", [*keys, "overwrite=true"], capsys)[0] == 0
    assert files(tmp_path / "keys") == written


def test_synth_names_an_unknown_key_and_a_bad_value_in_one_line(tmp_path, capsys):
    code, out, err = command("synth", [f"out={tmp_path}", "user=2"], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "emgtf.synth: error: unknown key 'user' (this command takes: out, users, sessions, minutes, "
        "eval_minutes, seed, overwrite, format, events, verbose; see --help)"]
    code, _, err = command("synth", [f"out={tmp_path}", "users=0"], capsys)
    assert code == 2 and "argument --users: must be > 0, got '0'" in err
    assert not any(tmp_path.iterdir())


def test_inspect_takes_sessions_as_positionals_or_as_session_keys(tiny, capsys):
    session = tiny["session"]
    code, table, _ = command("inspect", [session], capsys)
    assert code == 0 and table.splitlines()[0].startswith("session_name")
    assert command("inspect", [f"session={session}"], capsys)[1] == table
    code, as_json, _ = command("inspect", [f"session={session}", f"session={session}", "json=true"], capsys)
    assert code == 0 and as_json == command("inspect", [session, session, "--json"], capsys)[1]
    rows = json.loads(as_json)
    assert len(rows) == 2 and rows[0]["session_name"] == session.stem


def test_models_takes_samples_as_flag_or_key(capsys):
    code, keys, _ = command("models", ["samples=3000"], capsys)
    assert code == 0 and "for 3000 samples" in keys.splitlines()[0]
    # tds_conv_ctc: 1 + (3000 - 64) // 16 = 184 frames, 124 of them lost to its convolutions.
    assert keys.splitlines()[1].split()[:2] == ["tds_conv_ctc", "5,293,315"] and " 60 " in keys.splitlines()[1]
    assert command("models", ["--samples", "3000"], capsys)[1] == keys


def test_transcribe_and_stream_take_model_session_and_decoder_as_keys(tiny, capsys):
    ckpt, session = tiny["checkpoint"], tiny["session"]
    code, flags_out, _ = command("transcribe", ["--model", ckpt, session, "--decoder", "greedy"], capsys)
    assert code == 0 and "CER" in flags_out
    for keys in ([f"model={ckpt}", f"session={session}", "decoder=greedy"],
                 [f"session={session}", f"checkpoint={ckpt}"]):  # checkpoint= names the same argument
        assert command("transcribe", keys, capsys)[1] == flags_out

    def final(out: str) -> list[str]:  # the transcript, without the timings that follow it
        return [line for line in out.splitlines() if not line.startswith(("latency", "chunk CPU"))][-3:]

    code, out, err = command("stream", ["--model", ckpt, session, "--chunk-ms", "20"], capsys)
    assert code == 0 and "chunks of 40 samples" in err
    code, out_keys, err_keys = command("stream", [f"model={ckpt}", f"session={session}", "chunk_ms=20"], capsys)
    assert code == 0 and "chunks of 40 samples" in err_keys
    assert final(out_keys) == final(out)
    code, _, err = command("stream", [f"model={ckpt}", f"session={session}", "chunk_ms=-5"], capsys)
    assert code == 2 and "error: chunk_ms must be > 0, got -5.0" in err


def test_convert_takes_src_and_out_as_positionals_or_keys(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    from tests.reference import tds_torch

    torch.manual_seed(0)
    source = tmp_path / "small.safetensors"
    tds_torch.save_safetensors(tds_torch.make_tds_torch(mlp_features=[64], block_channels=[8, 8], kernel_width=8),
                               source)
    code, out, _ = command("convert", [source, tmp_path / "a.keras"], capsys)
    assert code == 0 and out.startswith("emgtf.convert: tds_conv_ctc, ")
    code, out_keys, _ = command("convert", [f"src={source}", f"out={tmp_path / 'b.keras'}"], capsys)
    assert code == 0 and out_keys == out.replace("a.keras", "b.keras")
    a, b = (keras.saving.load_model(tmp_path / n, compile=False) for n in ("a.keras", "b.keras"))
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert (keras.ops.convert_to_numpy(wa) == keras.ops.convert_to_numpy(wb)).all()


@pytest.mark.parametrize("name", ["fit", "evaluate", "export", "tune"])
def test_config_commands_take_dry_run_as_flag_or_key(name, capsys):
    code, flag_out, _ = command(name, ["--dry-run", "trainer.epochs=2"] if name == "fit" else ["--dry-run"], capsys)
    assert code == 0 and flag_out
    keys = ["dry_run=true", "trainer.epochs=2"] if name == "fit" else ["dry_run=true"]
    assert command(name, keys, capsys)[1] == flag_out


def test_every_command_lists_key_value_and_verbose_in_its_help(capsys):
    for name in COMMANDS:
        module = importlib.import_module(f"emgtf.cli.{name}")
        with pytest.raises(SystemExit) as exit_:
            module.main(["--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert "--verbose" in text and "key=value" in text, name


def test_the_console_script_runs_a_command_in_key_value_form(tmp_path, capsys):
    assert emgtf_main(["synth", f"out={tmp_path}", "sessions=3", "minutes=0.01"]) == 0
    assert (tmp_path / "split.yaml").exists() and len(list(tmp_path.glob("*.hdf5"))) == 3
