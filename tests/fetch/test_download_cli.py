"""``emgtf download checkpoints / lm``: names, cache folder, dry run, a kill and a rerun, and the
names that convert and the decoders resolve; against a real server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from emgtf.cli import run
from emgtf.cli.download import main
from emgtf.fetch.catalog import published_files
from emgtf.fetch.digests import git_blob_id
from emgtf.fetch.transfer import part_path
from tests.fetch.server import MirrorServer
from tests.helpers import FIXTURES, REPO

ARPA = FIXTURES / "reuters-3-gram-char-lm.arpa"

FILES = {
    "meta/generic.ckpt": ("https://media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt",
                          "sha256", os.urandom(2_000_000)),
    "meta/personalized-finetuned/user0.ckpt": (
        "https://media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/personalized-finetuned/user0.ckpt",
        "sha256", os.urandom(1000)),
    "meta/lm/wikitext-103-6gram-charlm.arpa": (
        "https://raw.githubusercontent.com/facebookresearch/emg2qwerty/main/models/lm/wikitext-103-6gram-charlm.arpa",
        "git-sha1", ARPA.read_bytes() if ARPA.is_file() else b"not an LM"),
    "meta/lm/wikitext-103-6gram-charlm.bin": (
        "https://raw.githubusercontent.com/facebookresearch/emg2qwerty/main/models/lm/wikitext-103-6gram-charlm.bin",
        "git-sha1", os.urandom(3000)),
    "splashnet/splashnet-mini.ckpt": ("https://raw.githubusercontent.com/nhadidi/SplashNet/main/splashnet-mini.ckpt",
                                      "git-sha1", os.urandom(5000)),
}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A list of published files of the real form, their bytes on a mirror, an empty cache."""
    lines = ["name\turl\tdigest_kind\tdigest\tbytes\tnotes"]
    for name, (url, kind, data) in FILES.items():
        digest = git_blob_id(data) if kind == "git-sha1" else hashlib.sha256(data).hexdigest()
        # LFS files have a published size; plain git files do not (as in the real list).
        lines.append(f"{name}\t{url}\t{kind}\t{digest}\t{len(data) if kind == 'sha256' else ''}\ttest")
    catalog = tmp_path / "published.tsv"
    catalog.write_text("\n".join(lines) + "\n")
    with MirrorServer(tmp_path / "mirror") as server:
        for url, _, data in FILES.values():
            server.put(url, data)
        monkeypatch.setenv("EMGTF_PUBLISHED_FILES", str(catalog))
        monkeypatch.setenv("EMGTF_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("EMGTF_MIRROR", server.base)
        yield server, tmp_path / "cache"


def test_shipped_list_has_every_published_checkpoint_and_lm():
    files = published_files()
    assert len([n for n in files if n.startswith("meta/") and n.endswith(".ckpt")]) == 17
    assert {"splashnet/splashnet.ckpt", "splashnet/splashnet-mini.ckpt", "meta/lm/wikitext-103-6gram-charlm.arpa",
            "meta/lm/wikitext-103-6gram-charlm.bin"} <= set(files)
    generic = files["meta/generic.ckpt"]
    assert generic.digest_kind == "sha256" and generic.size == 63587626 and len(generic.digest) == 64


def test_checkpoints_by_name_into_the_cache_then_resolved_by_name(env, capsys):
    server, cache = env
    assert run(main, "emgtf.download", ["checkpoints", "meta/generic", "splashnet/splashnet-mini"]) == 0
    assert (cache / "meta/generic.ckpt").read_bytes() == FILES["meta/generic.ckpt"][2]
    assert (cache / "splashnet/splashnet-mini.ckpt").read_bytes() == FILES["splashnet/splashnet-mini.ckpt"][2]
    assert "2 files verified" in capsys.readouterr().out
    from emgtf.fetch.published import resolve_path

    assert resolve_path("meta/generic") == cache / "meta/generic.ckpt"
    assert resolve_path("splashnet/splashnet-mini") == cache / "splashnet/splashnet-mini.ckpt"
    # A second run verifies and skips them.
    before = len(server.requests)
    assert run(main, "emgtf.download", ["checkpoints", "names=meta/generic"]) == 0
    assert len(server.requests) == before and "1 already present" in capsys.readouterr().out


def test_lm_by_name_reaches_the_decoder(env):
    _, cache = env
    from emgtf.decoding.lm import resolve_lm_path

    with pytest.raises(Exception, match=r"meta/lm: not downloaded yet .*emgtf download lm meta/lm/wikitext-103-6gram-charlm"):
        resolve_lm_path("meta/lm")
    assert run(main, "emgtf.download", ["lm"]) == 0
    assert resolve_lm_path("meta/lm") == cache / "meta/lm/wikitext-103-6gram-charlm.bin"
    assert resolve_lm_path("meta/lm.arpa") == cache / "meta/lm/wikitext-103-6gram-charlm.arpa"
    pytest.importorskip("kenlm")
    if not ARPA.is_file():
        pytest.skip(f"{ARPA} is absent")
    from emgtf.decoding.lm import CharLM

    CharLM(resolve_lm_path("meta/lm.arpa"))  # the downloaded ARPA loads


def test_dry_run_lists_files_sizes_and_urls_and_fetches_nothing(env, capsys):
    server, cache = env
    assert run(main, "emgtf.download", ["checkpoints", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert f"{server.base}/media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt" in out
    assert "would fetch 3 files, 2.0 MB + 1 of unpublished size" in out
    assert server.requests == [] and not cache.exists()


def test_unknown_name_and_misplaced_arguments_are_one_line(env, capsys):
    assert run(main, "emgtf.download", ["checkpoints", "meta/nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no published checkpoints file is called 'meta/nope'" in err
    assert run(main, "emgtf.download", ["lm", "users=[1]"]) == 2
    assert run(main, "emgtf.download", ["bids", "out=x"]) == 2
    assert "bids needs users=" in capsys.readouterr().err


def test_killed_download_resumes_on_the_next_run(env):
    server, cache = env
    server.delay = 0.02  # ~3 MB/s: the 2 MB file takes most of a second
    command = [sys.executable, "-m", "emgtf.download", "checkpoints", "meta/generic"]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = part_path(cache / "meta/generic.ckpt")
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 300_000) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    kept = part.stat().st_size
    assert 0 < kept < len(FILES["meta/generic.ckpt"][2]) and not (cache / "meta/generic.ckpt").exists()
    server.delay = 0.0
    rerun = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming at" in rerun.stderr  # plain progress lines: stderr is not a terminal
    assert (cache / "meta/generic.ckpt").read_bytes() == FILES["meta/generic.ckpt"][2]
    last = server.ranges("generic.ckpt")[-1]
    assert last is not None and int(last[len("bytes="):-1]) >= kept - 65536 > 0


def test_ctrl_c_stops_every_transfer_at_once_and_keeps_the_partial_files(env):
    server, cache = env
    server.delay = 0.05  # the 2 MB file would take ~1.6 s more
    process = subprocess.Popen(
        [sys.executable, "-m", "emgtf.download", "checkpoints", "meta/generic", "meta/personalized-finetuned", "jobs=2"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    part = part_path(cache / "meta/generic.ckpt")
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and err.strip().endswith("emgtf.download: interrupted")
    assert 0 < part.stat().st_size < len(FILES["meta/generic.ckpt"][2]) and not (cache / "meta/generic.ckpt").exists()
