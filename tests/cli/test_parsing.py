"""The one command convention: every argument of every command as key=value, old flags too."""

import pytest

from emgtf.cli.parsing import ArgumentParser, CommandParser
from emgtf.errors import EmgtfError


def _stream_like():
    parser = ArgumentParser(prog="t")
    parser.add_argument("session")
    parser.add_argument("--model", required=True)
    parser.add_argument("--chunk-ms", type=float, default=40.0)
    parser.add_argument("--realtime", action="store_true")
    return parser


@pytest.mark.parametrize("argv", [
    ["--model", "m.keras", "s.hdf5", "--chunk-ms", "20", "--realtime"],
    ["s.hdf5", "--model=m.keras", "--chunk-ms=20", "--realtime"],
    ["model=m.keras", "session=s.hdf5", "chunk_ms=20", "realtime=true"],
    ["session=s.hdf5", "chunk-ms=20", "model=m.keras", "realtime=yes"],
    ["s.hdf5", "model=m.keras", "--chunk-ms", "20", "realtime=1"],
])
def test_flags_and_key_value_give_the_same_arguments(argv):
    args = _stream_like().parse_args(argv)
    assert (args.session, args.model, args.chunk_ms, args.realtime) == ("s.hdf5", "m.keras", 20.0, True)


def test_a_switch_set_false_stays_off_and_a_bad_boolean_is_one_line():
    assert _stream_like().parse_args(["s", "model=m", "realtime=false"]).realtime is False
    with pytest.raises(EmgtfError, match="realtime= takes true or false, got 'maybe'"):
        _stream_like().parse_args(["s", "model=m", "realtime=maybe"])


def test_an_unknown_key_names_it_and_the_known_ones():
    with pytest.raises(EmgtfError, match=r"unknown key 'chunk_size' \(this command takes: session, model, chunk_ms, realtime"):
        _stream_like().parse_args(["s", "model=m", "chunk_size=3"])


def test_a_value_may_hold_an_equals_sign_and_a_positional_taken_twice_is_refused():
    assert _stream_like().parse_args(["session=a=b.hdf5", "model=m"]).session == "a=b.hdf5"
    with pytest.raises(EmgtfError, match="session= given 2 times"):
        _stream_like().parse_args(["session=a", "session=b", "model=m"])


def test_a_positional_of_several_values_takes_the_key_once_per_value():
    parser = ArgumentParser(prog="t")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--out")
    assert parser.parse_args(["path1", "out=DIR", "path2"]).paths == ["path1", "path2"]
    args = parser.parse_args(["paths=a", "paths=b", "--out", "D"])
    assert (args.paths, args.out) == (["a", "b"], "D")


def test_config_commands_pass_unknown_keys_to_hydra_in_order():
    parser = CommandParser(prog="t")
    args = parser.parse_args(["model=rnn", "trainer.epochs=3", "dry_run=true", "data.root=/x"])
    assert args.overrides == ["model=rnn", "trainer.epochs=3", "data.root=/x"]
    assert args.dry_run is True
