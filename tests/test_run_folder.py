"""The run folder's file names and history.csv, as emgtf.run_folder writes and reads them."""

import pytest

from emgtf.errors import EmgtfError
from emgtf.run_folder import RunFolder
from emgtf.training.run_lock import RunLock


def test_the_history_reads_back_what_was_written(tmp_path):
    folder = RunFolder(tmp_path)
    rows = [{"epoch": 1, "train/loss": 3.5, "seconds": 2.0},
            {"epoch": 2, "train/loss": 2.25, "val/CER": 80.5, "seconds": 2.5}]
    folder.write_history(rows)
    assert folder.history == tmp_path / "history.csv"
    # Columns in order of first appearance; a column an earlier epoch lacks is left out of its row.
    assert folder.history.read_text().splitlines()[0] == "epoch,train/loss,seconds,val/CER"
    assert folder.read_history() == rows


def test_a_missing_or_broken_history_is_one_line(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.read_history(missing_ok=True) == []
    with pytest.raises(EmgtfError, match="history.csv does not exist"):
        folder.read_history()
    folder.history.write_text("epoch,val/CER\n1,abc\n")
    with pytest.raises(EmgtfError, match=r"history.csv, line 2: val/CER is 'abc', not a number"):
        folder.read_history()


def test_a_folder_with_only_what_a_run_writes_before_its_first_checkpoint_is_a_dead_run(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert not folder.is_dead_run() and not folder.has_contents()  # no folder yet
    lock = RunLock.acquire(folder.path)
    try:
        assert not folder.has_contents()  # the lock alone does not count
        folder.config.write_text("seed: 0\n")
        folder.tensorboard.mkdir()
        assert folder.is_dead_run() and not folder.can_resume()
        folder.last.write_bytes(b"checkpoint")
        assert not folder.is_dead_run() and folder.can_resume()
    finally:
        lock.release()
