"""Redirecting the published URLs to a mirror (a lab's copy, or a test server).

A mirror is a base URL under which the files lie as on their real hosts, host name first:
``https://media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt``
is fetched from ``<mirror>/media.githubusercontent.com/media/facebookresearch/emg2qwerty/main/models/generic.ckpt``.
So one folder (``wget -x`` / ``aws s3 sync`` layout) served by any HTTP server mirrors every host.
The mirror is the ``mirror=`` argument of ``emgtf download``, else ``$EMGTF_MIRROR``; none means
the real hosts.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from emgtf.errors import EmgtfError

MIRROR_VARIABLE = "EMGTF_MIRROR"


def mirror_base(mirror: str | None = None) -> str | None:
    """The mirror in effect: ``mirror`` if given, else ``$EMGTF_MIRROR``, else None."""
    base = mirror if mirror else os.environ.get(MIRROR_VARIABLE) or None
    if base is None:
        return None
    if urlsplit(base).scheme not in ("http", "https"):
        source = "mirror=" if mirror else f"${MIRROR_VARIABLE}"
        raise EmgtfError(f"{source} '{base}' is not an http:// or https:// URL")
    return base.rstrip("/")


def redirect(url: str, mirror: str | None = None) -> str:
    """``url`` as fetched: under the mirror (see the module) if one is in effect."""
    base = mirror_base(mirror)
    if base is None:
        return url
    parts = urlsplit(url)
    return f"{base}/{parts.netloc}{parts.path}"
