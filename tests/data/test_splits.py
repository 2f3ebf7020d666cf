from pathlib import Path

import pytest
import yaml
from tests.helpers import FIXTURES, make_session_file

from emgtf.data.splits import available_splits, load_split, read_split_file, write_split_file
from emgtf.errors import EmgtfError

SUFFIX = "-keystrokes-dca-study@1-0efbe614-9ae6-4131-9192-4398359b4f5f"


def test_standard_single_user_split_is_shipped():
    assert "user_89335547" in available_splits()
    doc = read_split_file("user_89335547")
    assert len(doc["train"]) == 16 and len(doc["val"]) == 1 and len(doc["test"]) == 1
    assert all(name.endswith(SUFFIX) for part in ("train", "val", "test") for name in doc[part])
    assert doc["val"] == ["2021-06-04-1622862148" + SUFFIX]
    assert doc["test"] == ["2021-06-02-1622682789" + SUFFIX]
    assert "2021-07-21-1626915176" + SUFFIX in doc["train"]
    assert len(set(doc["train"] + doc["val"] + doc["test"])) == 18


def test_load_split_resolves_files(tmp_path):
    for name in ("a", "b", "c"):
        make_session_file(tmp_path / f"{name}.hdf5", num_samples=100)
    spec = write_split_file(tmp_path / "split.yaml", name="mini", train=["a", "b"], val=["c"], test=[])
    split = load_split(spec, tmp_path)
    assert split.name == "mini"
    assert split.train == [tmp_path / "a.hdf5", tmp_path / "b.hdf5"]
    assert split.part("val") == [tmp_path / "c.hdf5"]
    assert split.test == []


def test_missing_session_names_file_and_root(tmp_path):
    with pytest.raises(EmgtfError) as e:
        load_split("user_89335547", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert "2021-06-03-1622765527" + SUFFIX + ".hdf5" in msg
    assert str(tmp_path) in msg


@pytest.mark.parametrize(
    "text, fragment",
    [("train: [a\n", "not valid YAML"), ("- a\n- b\n", "must be a mapping"),
     ("train: a\n", "'train' must be a list"), ("train: []\nval: []\n", "names no sessions")],
)
def test_bad_split_files(tmp_path, text, fragment):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(EmgtfError, match=fragment):
        read_split_file(p)


def test_unknown_split_name():
    with pytest.raises(EmgtfError, match="unknown split 'nope'.*user_89335547"):
        read_split_file("nope")


# --- Meta's split files (emg2qwerty config/user/*.yaml) -----------------------------------------

META = FIXTURES / "emg2qwerty-splits"
needs_meta = pytest.mark.skipif(not (META / "user0.yaml").is_file(), reason=f"Meta's split files not in {META}")


@needs_meta
def test_meta_user_split_resolves_to_its_sessions(tmp_path):
    raw = yaml.safe_load((META / "user0.yaml").read_text())["dataset"]
    for part in ("train", "val", "test"):
        for entry in raw[part]:
            make_session_file(tmp_path / f"{entry['session']}.hdf5", num_samples=50)
    split = load_split(META / "user0.yaml", tmp_path)
    assert split.name == "user0"
    for part in ("train", "val", "test"):
        assert split.part(part) == [tmp_path / f"{e['session']}.hdf5" for e in raw[part]]
    assert (len(split.train), len(split.val), len(split.test)) == (10, 2, 2)
    assert {split.user_of(f) for f in split.train + split.val + split.test} == {"43037958"}


@needs_meta
def test_meta_generic_split_counts_and_users():
    split = load_split(META / "generic.yaml", "/data/emg2qwerty", check_files=False)
    assert split.name == "generic"
    assert (len(split.train), len(split.val), len(split.test)) == (837, 192, 16)
    # 16 test sessions = 2 of each of the 8 held-out users, the same sessions as the userN files.
    test_users = [split.user_of(f) for f in split.test]
    assert len(set(test_users)) == 8 and all(test_users.count(u) == 2 for u in test_users)
    user0 = load_split(META / "user0.yaml", "/data/emg2qwerty", check_files=False)
    assert set(user0.test) <= set(split.test)
    first = yaml.safe_load((META / "generic.yaml").read_text())["dataset"]["train"][0]
    assert split.train[0] == Path("/data/emg2qwerty") / f"{first['session']}.hdf5"
    assert split.user_of(split.train[0]) == str(first["user"])
    assert not set(split.train) & set(split.test)


@needs_meta
def test_meta_split_missing_file_is_named(tmp_path):
    with pytest.raises(EmgtfError, match=r"split 'user3' names session .*\.hdf5 \(train\)"):
        load_split(META / "user3.yaml", tmp_path)


def _meta(tmp_path, body: str):
    p = tmp_path / "meta.yaml"
    p.write_text("# @package _global_\nuser: mine\n" + body)
    return p


def test_meta_format_without_fixtures(tmp_path):
    for name in ("a", "b", "c"):
        make_session_file(tmp_path / f"{name}.hdf5", num_samples=50)
    p = _meta(tmp_path, "dataset:\n  train:\n  - {user: 1, session: a}\n  - {user: 2, session: b}\n"
                        "  val: []\n  test:\n  - {user: 2, session: c}\n")
    split = load_split(p, tmp_path)
    assert split.name == "mine" and split.val == []
    assert split.train == [tmp_path / "a.hdf5", tmp_path / "b.hdf5"]
    assert [split.user_of(f) for f in split.train + split.test] == ["1", "2", "2"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name: x\ntrian: [a]\ntest: [b]\n", "unknown key 'trian'"),
        ("name: x\ntrain: [a, b]\ntest: [a]\n", "session a is listed in both 'train' and 'test'"),
        ("name: x\ntrain: [a, b, a]\n", "session a is listed twice in 'train'"),
        ("name: x\ntrain: [a.hdf5]\nval: [a]\n", "session a is listed in both 'train' and 'val'"),
        ("user: u\ndataset:\n  trian: [{user: 1, session: a}]\n", "unknown key 'trian' under 'dataset'"),
        ("user: u\ndataset:\n  train: [{user: 1, session: a}]\n  test: [{user: 1, session: a}]\n",
         "session a is listed in both 'train' and 'test'"),
        ("user: u\ndataset:\n  train: [a]\n", r"dataset.train\[0\] must be a mapping"),
        ("user: u\ndataset:\n  train: [{user: 1, sesion: a}]\n", r"dataset.train\[0\] must be a mapping"),
        ("user: u\ndataset:\n  train: [{user: 1, session: a, day: 2}]\n", "unknown key 'day' in dataset.train"),
        ("user: u\ndataset: [a]\n", "'dataset' must be a mapping"),
        ("user: u\ndataset: {}\nextra: 1\n", "unknown key 'extra'"),
    ],
)
def test_bad_split_contents(tmp_path, text, fragment):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(EmgtfError, match=fragment) as e:
        read_split_file(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_sessions_must_stay_inside_the_root_unless_absolute(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside, _ = make_session_file(tmp_path / "elsewhere.hdf5", num_samples=50)
    make_session_file(root / "a.hdf5", num_samples=50)
    p = tmp_path / "escape.yaml"
    p.write_text("name: x\ntrain: [a, ../elsewhere]\n")
    with pytest.raises(EmgtfError, match=r"session \.\./elsewhere is outside data root"):
        load_split(p, root)
    p.write_text(f"name: x\ntrain: [a, {tmp_path / 'elsewhere'}]\n")
    assert load_split(p, root).train == [root / "a.hdf5", outside]
