"""Checkpoints and language models by name: where ``emgtf download`` puts them, and finding them.

A published file has a name, its path under the download folder: ``meta/generic.ckpt``,
``meta/personalized-finetuned/user3.ckpt``, ``splashnet/splashnet-mini.ckpt``,
``meta/lm/wikitext-103-6gram-charlm.bin``. A name may drop its extension (``meta/generic``), and
``meta/lm`` is Meta's 6-gram LM as KenLM binary (``meta/lm.arpa``: as ARPA). A folder name
(``meta/personalized-finetuned``) stands for every file under it. Files are fetched into
``emgtf.paths.cache_dir`` unless ``out=`` says otherwise, and ``resolve`` finds them there,
so ``convert meta/generic ...`` and ``decoder.lm_path=meta/lm`` work once they are downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from emgtf.errors import EmgtfError
from emgtf.fetch.catalog import Published, published_files
from emgtf.fetch.transfer import Target
from emgtf.paths import cache_dir

GROUPS = ("checkpoints", "lm")
_LM = "meta/lm/wikitext-103-6gram-charlm"
ALIASES = {"meta/lm": f"{_LM}.bin", "meta/lm.arpa": f"{_LM}.arpa", "meta/lm.bin": f"{_LM}.bin"}


def group_of(file: Published) -> str | None:
    """``checkpoints``, ``lm``, or None (the dataset tarball: ``emgtf download dataset``)."""
    if file.name.endswith(".ckpt"):
        return "checkpoints"
    if file.name.startswith("meta/lm/"):
        return "lm"
    return None


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def select(group: str, names: list[str] | tuple[str, ...] = ()) -> list[Published]:
    """The files of ``group`` that ``names`` choose (all of the group when none)."""
    files = [f for f in published_files().values() if group_of(f) == group]
    if not names:
        return files
    chosen: dict[str, Published] = {}
    for name in names:
        matches = _matches(name.strip().strip("/"), files)
        if not matches:
            known = ", ".join(sorted({_stem(f.name) for f in files}))
            raise EmgtfError(f"no published {group} file is called '{name}' (known: {known})")
        chosen.update((f.name, f) for f in matches)
    return list(chosen.values())


def _matches(name: str, files: list[Published]) -> list[Published]:
    name = ALIASES.get(name, name)
    exact = [f for f in files if name in (f.name, _stem(f.name))]
    if len(exact) > 1:  # the LM as .arpa and .bin: the binary loads faster
        exact = [f for f in exact if f.name.endswith(".bin")] or exact[:1]
    return exact or [f for f in files if f.name.startswith(name + "/")]


def target(file: Published, out: str | os.PathLike | None = None) -> Target:
    """The ``Target`` of a published file under ``out`` (default: the cache folder)."""
    root = Path(out) if out is not None else cache_dir()
    return Target(url=file.url, path=root / file.name, digest_kind=file.digest_kind, digest=file.digest,
                  size=file.size, label=file.name)


def _known(name: str) -> Published | None:
    files = [f for f in published_files().values() if group_of(f) is not None]
    matches = _matches(name, files)
    return matches[0] if len(matches) == 1 else None


def resolve(name: str) -> Path:
    """The downloaded file of a published name (``meta/generic``) in the cache folder; a one-line
    error naming the command that fetches it when it is not there."""
    file = _known(name)
    if file is None:
        raise EmgtfError(f"'{name}' is not the name of a published checkpoint or LM "
                         "(emgtf download checkpoints dry_run=true lists them)")
    path = cache_dir() / file.name
    if not path.is_file():
        raise EmgtfError(f"{name}: not downloaded yet ({path}); fetch it with "
                         f"`emgtf download {group_of(file)} {_stem(file.name)}`")
    return path


def resolve_path(text: str | os.PathLike) -> Path:
    """A path as given, unless no such file exists and it is a published name: then the
    downloaded file (see ``resolve``). What a command taking a checkpoint or LM calls."""
    path = Path(text).expanduser()
    if path.exists() or _known(str(text)) is None:
        return path
    return resolve(str(text))
