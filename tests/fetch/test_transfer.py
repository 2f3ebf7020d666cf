"""One file over HTTP from a real server on 127.0.0.1: resume, retries, verification, errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import re
import textwrap
import time

import pytest

from emgtf.errors import EmgtfError
from emgtf.fetch.digests import file_digest, git_blob_id
from emgtf.fetch.mirrors import redirect
from emgtf.fetch.transfer import Fetcher, Target, part_path
from tests.fetch.server import MirrorServer
from tests.helpers import REPO

URL = "https://media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt"
DATA = os.urandom(700_000)


def _target(tmp_path, data=DATA, kind="sha256", digest=None, size="auto", url=URL):
    if digest is None:
        digest = git_blob_id(data) if kind == "git-sha1" else hashlib.new(kind, data).hexdigest()
    return Target(url=url, path=tmp_path / "out" / "meta" / "generic.ckpt", digest_kind=kind, digest=digest,
                  size=len(data) if size == "auto" else size, label="meta/generic.ckpt")


@pytest.fixture
def server(tmp_path):
    with MirrorServer(tmp_path / "mirror") as s:
        s.put(URL, DATA)
        yield s


def _fetcher(server, **kw):
    return Fetcher(mirror=server.base, backoff=0.01, **kw)


def test_mirror_lays_out_urls_under_host_then_path(monkeypatch):
    monkeypatch.delenv("EMGTF_MIRROR", raising=False)
    assert redirect(URL, "http://m:8/base/") == (
        "http://m:8/base/media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt")
    assert redirect(URL, None) == URL
    monkeypatch.setenv("EMGTF_MIRROR", "http://lab:9/m")
    assert redirect(URL, None).startswith("http://lab:9/m/media.githubusercontent.com/media/")
    with pytest.raises(EmgtfError, match="not an http"):
        redirect(URL, "ftp://x")


@pytest.mark.parametrize("kind", ["sha256", "md5", "git-sha1"])
def test_fetches_and_verifies_each_digest_kind(server, tmp_path, kind):
    t = _target(tmp_path, kind=kind, size=None if kind == "git-sha1" else "auto")
    assert _fetcher(server).fetch(t) == "fetched"
    assert t.path.read_bytes() == DATA and not part_path(t.path).exists()
    assert file_digest(t.path, kind) == t.digest
    # Present and verified: skipped without a request.
    before = len(server.requests)
    assert _fetcher(server).fetch(t) == "present"
    assert len(server.requests) == before


def test_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    path = "/media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt"
    server.drop_after[path] = [3 * 65536, 2 * 65536]
    t = _target(tmp_path)
    assert _fetcher(server).fetch(t) == "fetched"
    assert t.path.read_bytes() == DATA
    assert server.ranges("generic.ckpt") == [None, "bytes=196608-", "bytes=327680-"]


def test_network_failure_keeps_the_partial_file_and_the_next_run_resumes(server, tmp_path):
    path = "/media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt"
    server.drop_after[path] = [65536] + [0] * 3
    t = _target(tmp_path)
    with pytest.raises(EmgtfError, match=r"network failure after 3 tries .*partial file .*generic\.ckpt\.part is kept"):
        _fetcher(server, retries=2).fetch(t)
    assert part_path(t.path).stat().st_size == 65536 and not t.path.exists()
    assert _fetcher(server).fetch(t) == "fetched"
    assert t.path.read_bytes() == DATA
    assert server.ranges("generic.ckpt")[-1] == "bytes=65536-"


def test_resume_hashes_the_partial_file_so_a_bad_prefix_is_caught(server, tmp_path):
    t = _target(tmp_path)
    part = part_path(t.path)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 1000)  # not the file's first bytes
    with pytest.raises(EmgtfError, match=r"not the published file \(sha256 [0-9a-f]{64}, published "
                                         + t.digest + r"\); moved aside to .*generic\.ckpt\.corrupt"):
        _fetcher(server).fetch(t)
    assert server.ranges("generic.ckpt") == ["bytes=1000-"]
    assert not t.path.exists() and not part.exists()
    assert (t.path.parent / "generic.ckpt.corrupt").stat().st_size == len(DATA)
    # The next run starts over and succeeds; the first bad copy is not overwritten.
    assert _fetcher(server).fetch(t) == "fetched" and t.path.read_bytes() == DATA


def test_corrupted_byte_is_refused_and_never_left_under_its_name(server, tmp_path):
    bad = bytearray(DATA)
    bad[123_456] ^= 0x01
    server.put(URL, bytes(bad))
    t = _target(tmp_path, kind="md5")
    with pytest.raises(EmgtfError) as error:
        _fetcher(server).fetch(t)
    message = str(error.value)
    assert "\n" not in message and hashlib.md5(bytes(bad)).hexdigest() in message and t.digest in message
    assert not t.path.exists() and not part_path(t.path).exists()
    assert [p.name for p in t.path.parent.iterdir()] == ["generic.ckpt.corrupt"]


def test_a_file_under_its_name_that_does_not_verify_is_moved_aside_and_fetched(server, tmp_path):
    t = _target(tmp_path)
    t.path.parent.mkdir(parents=True)
    t.path.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer file
    assert _fetcher(server).fetch(t) == "fetched"
    assert t.path.read_bytes() == DATA
    assert (t.path.parent / "generic.ckpt.corrupt").read_bytes().startswith(b"version")


def test_404_is_one_line_with_the_url(server, tmp_path):
    t = _target(tmp_path, url=URL.replace("generic", "missing"))
    with pytest.raises(EmgtfError, match=r"^http://127\.0\.0\.1:\d+/media\.githubusercontent\.com/.*/missing\.ckpt: "
                                         r"HTTP 404 Not Found$"):
        _fetcher(server).fetch(t)
    assert len(server.requests) == 1  # not retried


def test_403_is_one_line_with_the_url_and_keeps_the_partial_file(server, tmp_path):
    t = _target(tmp_path)
    part = part_path(t.path)
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:1000])
    server.status["/media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt"] = 403
    with pytest.raises(EmgtfError, match=r"/generic\.ckpt: HTTP 403 Forbidden; the partial file .*generic\.ckpt\.part is kept$"):
        _fetcher(server).fetch(t)
    assert part.read_bytes() == DATA[:1000]


def test_server_that_ignores_ranges_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    t = _target(tmp_path)
    part = part_path(t.path)
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:5000])
    assert _fetcher(server).fetch(t) == "fetched" and t.path.read_bytes() == DATA


def test_size_that_differs_from_the_published_one_is_refused(server, tmp_path):
    t = _target(tmp_path, size=len(DATA) + 1)
    with pytest.raises(EmgtfError, match=f"the server has {len(DATA)} bytes, the published size is {len(DATA) + 1}"):
        _fetcher(server).fetch(t)


def test_not_enough_free_space_is_refused_before_any_byte(server, tmp_path):
    t = _target(tmp_path, size=10**18)
    with pytest.raises(EmgtfError, match="free, meta/generic.ckpt needs"):
        _fetcher(server).fetch(t)
    assert server.requests == []


def test_disk_full_is_one_line_and_keeps_the_partial_file(server, tmp_path):
    # A file-size limit makes the write fail as a full disk does, in a process of its own.
    t = _target(tmp_path)
    code = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from emgtf.errors import EmgtfError
        from emgtf.fetch.transfer import Fetcher, Target
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
        t = Target(url={t.url!r}, path=Path({str(t.path)!r}), digest_kind="sha256", digest={t.digest!r},
                   size={t.size}, label="meta/generic.ckpt")
        try:
            Fetcher(mirror={server.base!r}, backoff=0.01).fetch(t)
        except EmgtfError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "disk full (File too large)" in out.stdout and "the partial file is kept" in out.stdout, out
    assert 0 < part_path(t.path).stat().st_size <= 300_000 and not t.path.exists()
    assert _fetcher(server).fetch(t) == "fetched" and t.path.read_bytes() == DATA


def test_whole_partial_file_left_by_a_kill_before_the_rename_is_verified_and_kept(server, tmp_path):
    t = _target(tmp_path)
    part = part_path(t.path)
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA)
    assert _fetcher(server).fetch(t) == "fetched" and t.path.read_bytes() == DATA
    assert server.ranges("generic.ckpt") == [f"bytes={len(DATA)}-"]  # answered 416: nothing to add


def test_a_second_download_of_the_same_file_at_once_is_refused(server, tmp_path):
    import fcntl

    t = _target(tmp_path)
    part = part_path(t.path)
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:1000])
    with open(part, "ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(EmgtfError, match="another download is writing it"):
            _fetcher(server).fetch(t)
    assert part.read_bytes() == DATA[:1000] and server.requests == []


def test_progress_lines_and_live_bars_show_bytes_rate_and_time_left(server, tmp_path):
    import io

    from rich.console import Console

    from emgtf.fetch.progress import LineProgress, LiveProgress

    lines = io.StringIO()
    server.delay = 0.01
    _fetcher(server, progress=LineProgress(lines, interval=0.0)).fetch(_target(tmp_path))
    text = lines.getvalue()
    assert text.startswith("meta/generic.ckpt: fetching 700.0 kB\n")
    assert "of 700.0 kB (" in text and "B/s, " in text and " left" in text
    assert text.endswith("meta/generic.ckpt: 700.0 kB downloaded\n")
    screen = io.StringIO()
    live = LiveProgress(Console(file=screen, force_terminal=True, width=120))
    t = _target(tmp_path / "again")
    try:
        _fetcher(server, progress=live).fetch(t)
        # The bar's columns, drawn now rather than by rich's refresh thread: bytes, rate, time left.
        task = live.start("meta/lm", 1_000_000)
        live.advance(task, 100_000)
        time.sleep(0.05)
        live.advance(task, 100_000)
        live._bars.refresh()
    finally:
        live.close()
    assert "meta/generic.ckpt: 700.0 kB downloaded" in screen.getvalue()
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert re.search(r"meta/lm .*0\.2/1\.0 MB [\d.]+ [kM]B/s 0:00:\d\d", drawn)
