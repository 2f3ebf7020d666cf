"""The session index cache: a second dataset build reads the cached index, a changed file is
indexed afresh, a damaged cache file is ignored."""

from __future__ import annotations


from emgtf.data import index_cache, make_dataset
from tests.helpers import T0, make_session_file


def labels_of(path):
    batch = next(iter(make_dataset([str(path)], window_length=None, batch_size=1)))
    return batch["labels"][0, : int(batch["label_lengths"][0])].numpy().tolist()


def test_the_index_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("EMGTF_CACHE", str(tmp_path / "cache"))
    path, _ = make_session_file(tmp_path / "s.hdf5", num_samples=6000)
    first = labels_of(path)
    cached = index_cache.cache_file(path)
    assert cached.is_file()
    assert index_cache.load(path)["labels"].tolist() == first
    assert labels_of(path) == first  # served from the cache

    # The file rewritten with other keystrokes: the cache no longer matches and is rebuilt.
    path.unlink()
    keys = [{"key": k, "start": T0 + 0.5 + 0.3 * i, "end": T0 + 0.6 + 0.3 * i} for i, k in enumerate("abc")]
    make_session_file(path, num_samples=7000, keystrokes=keys)
    assert index_cache.load(path) is None
    changed = labels_of(path)
    assert changed != first and len(changed) == 3
    assert index_cache.load(path)["labels"].tolist() == changed


def test_a_damaged_cache_file_is_ignored_and_the_cache_can_be_off(tmp_path, monkeypatch):
    monkeypatch.setenv("EMGTF_CACHE", str(tmp_path / "cache"))
    path, _ = make_session_file(tmp_path / "s.hdf5", num_samples=6000)
    want = labels_of(path)
    index_cache.cache_file(path).write_bytes(b"not an npz")
    assert labels_of(path) == want
    monkeypatch.setenv("EMGTF_INDEX_CACHE", "0")
    other, _ = make_session_file(tmp_path / "t.hdf5", num_samples=6000, seed=3)
    assert labels_of(other) == want
    assert not index_cache.cache_file(other).exists()
    assert index_cache.load(path) is None  # off: nothing is read either


def test_open_files_stay_bounded_with_many_sessions(tmp_path):
    import os

    paths = [make_session_file(tmp_path / f"s{i}.hdf5", num_samples=3000, seed=i)[0] for i in range(12)]
    before = len(os.listdir("/proc/self/fd"))
    dataset = make_dataset([str(p) for p in paths], window_length=1000, padding=(0, 0), batch_size=4,
                           shuffle=True, seed=0, max_open_files=3, num_parallel_calls=1)
    windows = sum(int(batch["emg"].shape[0]) for batch in dataset)
    assert windows == 12 * 3
    # One reader thread with at most 3 files open (plus what tf.data itself holds).
    assert len(os.listdir("/proc/self/fd")) - before <= 3 + 2
