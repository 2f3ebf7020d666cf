"""An HDF5 session file rewritten in the BIDS release's form (``emgtf.data.bids``), as the
release's converter laid it out: the same session in both forms, for tests and comparisons."""

from __future__ import annotations

from pathlib import Path

from emgtf.data.bids import write_session
from emgtf.data.session import EMGSession

__all__ = ["convert_session"]


def convert_session(hdf5_path, root, *, overwrite: bool = False) -> Path:
    """Writes an HDF5 session file into BIDS root ``root`` as the release's converter laid it out
    (sample 0 at the file's first timestamp); returns the BDF's path."""
    with EMGSession(hdf5_path) as s:
        return write_session(
            root, emg=s.read(), keystrokes=s.keystrokes, prompts=s.prompts, t0=float(s.timestamps[0]),
            user=s.user, session_name=s.session_name, overwrite=overwrite,
        )
