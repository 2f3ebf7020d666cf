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


def test_an_unprefixed_log_passes_messages_on_as_they_are(capsys):
    from emgtf.console import unprefixed

    log = unprefixed(console_log("emgtf.evaluate"))
    log("  session: CER 9.22 %")
    log("no characters", warning=True)
    out, err = capsys.readouterr()
    assert out == "  session: CER 9.22 %\n" and err == "no characters\n"
