import pytest
from tests.helpers import make_session_file

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
