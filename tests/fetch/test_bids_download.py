"""``emgtf download bids``: split files and users resolve to the right BIDS sessions (shipped
manifest), and the files of real sessions are fetched from a 127.0.0.1 mirror and verified: the
real sidecars of the fixtures (their events.tsv against the manifest's real git blob ids), with
synthetic signal files in place of the multi-GB BDFs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from emgtf.cli import run
from emgtf.cli.download import main
from emgtf.errors import EmgtfError
from emgtf.fetch.bids import OBJECTS, REPOSITORY, TOP_LEVEL, select_sessions, session_label
from emgtf.fetch.catalog import MANIFEST_COLUMNS, bids_sessions
from emgtf.fetch.digests import git_blob_id
from tests.fetch.server import MirrorServer
from tests.helpers import FIXTURES

NM = FIXTURES / "nm000104"
SUFFIX = "-keystrokes-dca-study@1-0efbe614-9ae6-4131-9192-4398359b4f5f"
SPLIT = {"train": ["2021-06-03-1622765527"], "val": ["2021-06-04-1622862148"], "test": ["2021-06-02-1622682789"]}

pytestmark = pytest.mark.skipif(not NM.is_dir(), reason=f"{NM} is absent")


def test_emgtf_split_resolves_to_the_users_18_sessions():
    sessions = select_sessions(splits=["user_89335547"])
    assert len(sessions) == 18 and {s.user for s in sessions} == {"89335547"}
    assert {s.session for s in sessions} >= {"1622765527", "1622862148", "1622682789"}
    # DATA.md: user 89335547's 18 sessions are 3.33 GB.
    assert round(sum(s.bdf_bytes for s in sessions) / 1e9, 2) == 3.33
    assert select_sessions(users=["89335547"]) == sessions


def test_dry_run_of_a_split_lists_its_files_and_size(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("EMGTF_MIRROR", raising=False)
    assert run(main, "emgtf.download", ["bids", "split=user_89335547", f"out={tmp_path}", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert "would fetch 96 files, 3.3 GB + 60 of unpublished size" in out  # 6 top-level + 18 x 5
    assert ("https://nemar.s3.us-east-2.amazonaws.com/nm000104/objects/MD5E-s" in out
            and "https://raw.githubusercontent.com/nemarDatasets/nm000104/main/sub-89335547/ses-1622682789/emg/" in out)
    assert not list(tmp_path.iterdir())


def test_meta_split_file_resolves_with_its_integer_user_ids():
    sessions = select_sessions(splits=[FIXTURES / "emg2qwerty-splits" / "user0.yaml"])
    assert len(sessions) == 14 and {s.user for s in sessions} == {"43037958"}


def test_user_ids_keep_leading_zeros_and_unknown_ones_are_one_line():
    short = next(s for s in bids_sessions().values() if s.user.startswith("0"))
    assert {s.user for s in select_sessions(users=[str(int(short.user))])} == {short.user}
    with pytest.raises(EmgtfError, match="user 12345678: no sessions"):
        select_sessions(users=["12345678"])
    with pytest.raises(EmgtfError, match="not an emg2qwerty session name"):
        session_label("hello")


def _real_sessions() -> list[str]:
    return sorted(p.name[len("ses-"):] for p in NM.glob("sub-*/ses-*"))


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A manifest of the fixtures' four sessions (real events digests, synthetic BDFs) and a mirror
    serving them with the real sidecars and top-level files."""
    real = bids_sessions()
    lines = ["\t".join(MANIFEST_COLUMNS)]
    bdfs = {}
    with MirrorServer(tmp_path / "mirror") as server:
        for label in _real_sessions():
            s = real[label]
            data = os.urandom(40_000 + len(bdfs))
            key = f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bdf"
            server.put(OBJECTS + key, data)
            bdfs[label] = data
            lines.append("\t".join([s.bdf, key, str(len(data)), hashlib.md5(data).hexdigest(),
                                    str(s.recording_duration_s), s.events_git_sha1, str(s.events_bytes)]))
            for f in (NM / s.folder).iterdir():
                server.put(REPOSITORY + f"{s.folder}/{f.name}", f.read_bytes())
        for name in TOP_LEVEL:
            server.put(REPOSITORY + name, (NM / name).read_bytes())
        manifest = tmp_path / "manifest.tsv"
        manifest.write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("EMGTF_NEMAR_MANIFEST", str(manifest))
        monkeypatch.setenv("EMGTF_MIRROR", server.base)
        split = tmp_path / "three.yaml"
        split.write_text("name: three\nuser: '89335547'\n" + "".join(
            f"{part}:\n- {names[0]}{SUFFIX}\n" for part, names in SPLIT.items()))
        yield server, bdfs, split


def test_bids_of_a_split_fetches_and_verifies_its_sessions(mirror, tmp_path, capsys):
    server, bdfs, split = mirror
    out = tmp_path / "bids"
    assert run(main, "emgtf.download", ["bids", f"out={out}", f"split={split}", "jobs=3"]) == 0
    assert "21 files verified" in capsys.readouterr().out  # 6 top-level + 3 sessions x 5
    for label in ("1622765527", "1622862148", "1622682789"):
        emg = out / f"sub-89335547/ses-{label}/emg"
        assert (emg / f"sub-89335547_ses-{label}_task-typing_emg.bdf").read_bytes() == bdfs[label]
        events = emg / f"sub-89335547_ses-{label}_task-typing_events.tsv"
        assert events.read_bytes() == (NM / events.relative_to(out)).read_bytes()
        assert git_blob_id(events.read_bytes()) == bids_sessions()[label].events_git_sha1
        assert len(list(emg.iterdir())) == 5
    assert not (out / "sub-94998811").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(TOP_LEVEL)
    # Everything present and verified: a rerun fetches nothing.
    before = len(server.requests)
    assert run(main, "emgtf.download", ["bids", f"out={out}", f"split={split}"]) == 0
    assert len(server.requests) == before and "21 already present" in capsys.readouterr().out


def test_bids_of_a_user_with_the_bare_quote_session(mirror, tmp_path):
    out = tmp_path / "bids"
    assert run(main, "emgtf.download", ["bids", f"out={out}", "users=[94998811]"]) == 0
    events = out / "sub-94998811/ses-1626232810/emg/sub-94998811_ses-1626232810_task-typing_events.tsv"
    assert events.read_bytes() == (NM / events.relative_to(out)).read_bytes()


def test_a_corrupted_signal_file_and_events_file_are_refused(mirror, tmp_path, capsys):
    server, bdfs, split = mirror
    bdf = next(server.root.rglob("MD5E-*")).read_bytes()
    path = next(server.root.rglob("MD5E-*"))
    path.write_bytes(bdf[:100] + bytes([bdf[100] ^ 0xFF]) + bdf[101:])
    events = next(server.root.rglob("*ses-1622682789_task-typing_events.tsv"))
    events.write_bytes(events.read_bytes().replace(b"Key.space", b"Key.spacE", 1))
    out = tmp_path / "bids"
    assert run(main, "emgtf.download", ["bids", f"out={out}", f"split={split}", "users=[94998811]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "not the published file" in err and "(2 of 26 files failed; the others are verified)" in err
    corrupt = sorted(p.name for p in out.rglob("*.corrupt"))
    assert len(corrupt) == 2 and "sub-89335547_ses-1622682789_task-typing_events.tsv.corrupt" in corrupt
    for c in out.rglob("*.corrupt"):
        assert not Path(str(c)[: -len(".corrupt")]).exists()  # nothing unverified under a real name
    assert not list(out.rglob("*.part"))
