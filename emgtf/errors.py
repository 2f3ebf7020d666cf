"""Errors emgtf reports to users as one line, without a traceback."""


class EmgtfError(Exception):
    """A user-facing error: bad input, a missing file, an impossible configuration.

    The message is a single line that names the file or key and says what is wrong. CLIs print it
    and exit with status 2 (see ``emgtf.cli.run``).
    """

    # True: the CLI leaves the process right after printing it, without Python's exit handlers (a
    # host of a JAX cluster: the runtime's exit barrier would wait for the other hosts).
    hard_exit = False


class SessionFileError(EmgtfError):
    """A session file that is missing, unreadable or not in the emg2qwerty format."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its class name if it has none): what a one-line
    error quotes of a library's multi-line one."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
