import json
import subprocess
import sys

from tests.helpers import T0, make_session_file

from emgtf.cli.inspect import main
from emgtf.data.session import SUMMARY_KEYS as KEYS


def test_json_summary(tmp_path, capsys):
    ks = [{"key": k, "start": T0 + 0.1 * i, "end": T0 + 0.1 * i + 0.05}
          for i, k in enumerate(["Key.shift", "H", "i", "Key.ctrl", "Key.enter"])]
    a, _ = make_session_file(tmp_path / "a.hdf5", num_samples=4000, keystrokes=ks, user="42")
    b, _ = make_session_file(tmp_path / "b.hdf5", num_samples=2000)
    assert main([str(a), str(b), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [tuple(r) for r in rows] == [KEYS, KEYS]
    assert rows[0]["text"] == "\u21e7Hi\u23ce"
    assert rows[0]["num_keystrokes"] == 5
    assert rows[0]["num_samples"] == 4000
    assert rows[0]["user"] == "42"
    assert rows[1]["text"] == "hello"


def test_table(tmp_path, capsys):
    a, _ = make_session_file(tmp_path / "a.hdf5", num_samples=2000)
    main([str(a)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == list(KEYS)
    assert lines[2].split()[0] == "a" and lines[2].endswith("hello")


def test_bad_file_is_one_line_error_without_traceback(tmp_path):
    good, _ = make_session_file(tmp_path / "good.hdf5", num_samples=100)
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    proc = subprocess.run([sys.executable, "-m", "emgtf.inspect", str(good), str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr
