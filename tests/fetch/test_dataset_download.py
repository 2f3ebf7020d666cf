"""``emgtf download dataset``: a real .tar.gz of session files (written by emgtf's writer) served
from 127.0.0.1 at the real URL's path, extracted while it downloads; a dropped connection and a
killed process both resume without starting over."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

from emgtf.cli import run
from emgtf.cli.download import main
from emgtf.errors import EmgtfError
from emgtf.fetch.catalog import published_files
from emgtf.fetch.dataset import NAME, fetch_dataset
from emgtf.fetch.progress import LineProgress
from tests.fetch.server import MirrorServer
from tests.helpers import REPO, make_session_file

pytest.importorskip("indexed_gzip")

SUFFIX = "-keystrokes-dca-study@1-0efbe614-9ae6-4131-9192-4398359b4f5f"
# Four real sessions of user 89335547 (DATA.md): the selection maps them to the BIDS manifest.
NAMES = [f"{prefix}{SUFFIX}" for prefix in ("2021-06-02-1622682789", "2021-06-04-1622862148",
                                             "2021-06-03-1622765527", "2021-06-02-1622681518")]


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """A gzipped tar laid out as the release: a folder of <session>.hdf5 and metadata.csv."""
    folder = tmp_path_factory.mktemp("release")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        rows = ["session,user,duration_mins"]
        for i, name in enumerate(NAMES):
            path, _ = make_session_file(folder / f"{name}.hdf5", num_samples=12000, seed=i)
            tar.add(path, arcname=f"emg2qwerty-data-2021-08/{name}.hdf5")
            rows.append(f"{name},u{i},0.1")
        (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
        tar.add(folder / "metadata.csv", arcname="emg2qwerty-data-2021-08/metadata.csv")
    data = gzip.compress(buffer.getvalue(), compresslevel=1)
    return data, {n: (folder / f"{n}.hdf5").read_bytes() for n in NAMES}


@pytest.fixture
def mirror(tmp_path, monkeypatch, tarball):
    data, _ = tarball
    real = published_files()[NAME]
    catalog = tmp_path / "published.tsv"
    catalog.write_text("name\turl\tdigest_kind\tdigest\tbytes\tnotes\n"
                       f"{NAME}\t{real.url}\t\t\t{len(data)}\ttest\n")
    monkeypatch.setenv("EMGTF_PUBLISHED_FILES", str(catalog))
    with MirrorServer(tmp_path / "mirror") as server:
        server.put(real.url, data)
        monkeypatch.setenv("EMGTF_MIRROR", server.base)
        yield server, real.url


def _same_files(out, sessions):
    for name, data in sessions.items():
        assert hashlib.sha256((out / f"{name}.hdf5").read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not list(out.glob("*.part")) and not list(out.glob("*.tar*"))


def test_dataset_is_extracted_while_it_downloads_and_every_session_opens(mirror, tarball, tmp_path, capsys):
    out = tmp_path / "data"
    assert run(main, "emgtf.download", ["dataset", f"out={out}"]) == 0
    assert "4 sessions in" in capsys.readouterr().out
    _same_files(out, tarball[1])
    assert (out / "metadata.csv").is_file()
    # Done: a rerun only checks the sessions.
    server, _ = mirror
    before = len(server.requests)
    assert run(main, "emgtf.download", ["dataset", f"out={out}"]) == 0
    assert len(server.requests) == before


def test_dropped_connection_continues_in_the_same_decompressor(mirror, tarball, tmp_path):
    server, url = mirror
    path = server.file(url).relative_to(server.root).as_posix()
    server.drop_after["/" + path] = [len(tarball[0]) // 3, len(tarball[0]) // 4]
    out = tmp_path / "data"
    fetch_dataset(out, backoff=0.01)
    _same_files(out, tarball[1])
    ranges = server.ranges(".tar.gz")
    assert len(ranges) == 3 and ranges[0] is None  # never started over, nothing fetched twice
    starts = [int(r[len("bytes="):-1]) for r in ranges[1:3]]
    assert len(tarball[0]) // 4 < starts[0] < starts[1] < len(tarball[0])


def test_killed_download_resumes_from_its_last_checkpoint(mirror, tarball, tmp_path):
    server, url = mirror
    out = tmp_path / "data"
    server.delay = 0.03
    code = textwrap.dedent(f"""
        from emgtf.fetch.dataset import fetch_dataset
        fetch_dataset({str(out)!r}, spacing=256 * 1024, checkpoint_every=1)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.hdf5"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert 2 <= len(list(out.glob("*.hdf5"))) < 4
    assert (out / ".emgtf-download" / "state.json").is_file()
    server.delay = 0.0
    before = len(server.requests)
    lines = io.StringIO()
    assert "4 sessions" in fetch_dataset(out, spacing=256 * 1024, checkpoint_every=1,
                                         progress=LineProgress(lines, interval=60))
    assert "resuming at byte" in lines.getvalue() and ", resuming at " in lines.getvalue()
    _same_files(out, tarball[1])
    resumed = server.ranges(".tar.gz")[before - len(server.requests):]
    assert resumed[0] is not None and int(resumed[0][len("bytes="):-1]) > 0  # not from the start


def test_selection_keeps_only_the_chosen_sessions(mirror, tarball, tmp_path):
    split = tmp_path / "two.yaml"
    split.write_text(f"name: two\nuser: '89335547'\ntrain:\n- {NAMES[0]}\ntest:\n- {NAMES[2]}\n")
    out = tmp_path / "data"
    assert "2 sessions" in fetch_dataset(out, splits=[split])
    assert sorted(p.name for p in out.glob("*.hdf5")) == sorted([f"{NAMES[0]}.hdf5", f"{NAMES[2]}.hdf5"])
    # The user has 18 sessions in the release; this tarball holds 4 of them: the count check says so.
    # Into the same data root: the other selection streams the tarball again, keeping what is there.
    with pytest.raises(EmgtfError, match="4 session files after the download, expected 18"):
        fetch_dataset(out, users=["89335547"])
    _same_files(out, tarball[1])
    with pytest.raises(EmgtfError, match="user 12345678: no sessions"):
        fetch_dataset(tmp_path / "x", users=["12345678"])


def test_missing_tarball_is_one_line_with_its_url(mirror, tmp_path, capsys):
    server, url = mirror
    server.file(url).unlink()
    assert run(main, "emgtf.download", ["dataset", f"out={tmp_path / 'data'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emgtf.download: error: http://127.0.0.1:") and err[-1].endswith(
        "/fb-ctrl-oss.s3.amazonaws.com/emg2qwerty/emg2qwerty-data-2021-08.tar.gz: HTTP 404 Not Found")


def test_corrupted_byte_in_the_tarball_is_one_line_and_leaves_no_partial_file(mirror, tarball, tmp_path, capsys):
    server, url = mirror
    bad = bytearray(tarball[0])
    bad[len(bad) // 2] ^= 0x10
    server.put(url, bytes(bad))
    out = tmp_path / "data"
    assert run(main, "emgtf.download", ["dataset", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "emg2qwerty-data-2021-08.tar.gz: the .tar.gz does not decompress" in err
    assert not list(out.glob("*.part"))
    # The member being written when the stream broke is not there under its name either.
    assert len(list(out.glob("*.hdf5"))) < len(NAMES)


def test_ctrl_c_while_streaming_is_an_interruption_not_a_corrupt_tarball(mirror, tmp_path):
    server, _ = mirror
    server.delay = 0.03
    out = tmp_path / "data"
    process = subprocess.Popen([sys.executable, "-m", "emgtf.download", "dataset", f"out={out}"], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(server.requests) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and err.strip().endswith("emgtf.download: interrupted"), err
    assert not list(out.glob("*.part"))
