"""The log a command hands to library code (emgtf.console)."""

from emgtf.console import console_log


def test_the_console_log_prefixes_lines_and_sends_warnings_to_stderr(capsys):
    log = console_log("emgtf.fit")
    log("tcn (1,234 parameters)")
    log("\ninterrupted; continue with: ...", warning=True)
    log("\nepoch  loss\n1      3.5", prefix=False)
    out, err = capsys.readouterr()
    assert out == "emgtf.fit: tcn (1,234 parameters)\n\nepoch  loss\n1      3.5\n"
    assert err == "\nemgtf.fit: interrupted; continue with: ...\n"
