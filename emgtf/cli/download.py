"""``python -m emgtf.download WHAT ...``: fetch the published files of emg2qwerty, verified.

WHAT is one of:

- ``checkpoints [NAME...]``: Meta's generic and personalised checkpoints, SplashNet's two (all of
  them, or the names given: ``meta/generic``, ``meta/personalized-finetuned/user3``,
  ``splashnet``), into emgtf's cache folder or ``out=``;
- ``lm [NAME...]``: Meta's 6-gram character LM (``meta/lm``: KenLM binary, ``meta/lm.arpa``);
- ``bids out=DIR users=[ID,...] | split=FILE``: sessions of the BIDS release (NEMAR NM000104);
- ``dataset out=DIR [users=... | split=...]``: the HDF5 tarball, extracted as it downloads.

Every file is checked against its published digest before it takes its name; an interrupted run
resumes where it stopped. ``mirror=URL`` (or ``$EMGTF_MIRROR``) fetches every file from a mirror
laid out as ``<mirror>/<host>/<path>``. ``dry_run=true`` lists what would be fetched and its size.
See docs/guides/download.md.
"""

from __future__ import annotations

import sys

from emgtf.cli.parsing import ArgumentParser
from emgtf.errors import EmgtfError

WHAT = ("checkpoints", "lm", "bids", "dataset")


def _list(values: list[str] | None) -> list[str]:
    """``users=[a,b]``, ``users=a,b`` and repeated ``users=a users=b`` alike."""
    items = []
    for value in values or []:
        items += [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",") if v.strip()]
    return items


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m emgtf.download",
        description="Fetch emg2qwerty's published checkpoints, language model, BIDS sessions or HDF5 "
        "dataset, each verified against its published digest; interrupted runs resume.",
        epilog="examples:\n  python -m emgtf.download checkpoints meta/generic\n"
        "  python -m emgtf.download lm\n"
        "  python -m emgtf.download bids out=/data/nm000104 split=user_89335547\n"
        "  python -m emgtf.download dataset out=/data/emg2qwerty users=[89335547] dry_run=true",
    )
    parser.add_argument("what", choices=WHAT, help="what to fetch")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="checkpoints / lm: which ones (default: all of them)")
    parser.add_argument("--out", help="the folder to fetch into (checkpoints / lm: default emgtf's cache "
                        "folder, where names like meta/generic find them; bids / dataset: required)")
    parser.add_argument("--users", action="append",
                        help="bids / dataset: these users' sessions ([ID,...]; Meta's user ids)")
    parser.add_argument("--split", action="append",
                        help="bids / dataset: the sessions of this split file (Meta's config/user/*.yaml "
                        "or emgtf's, by path or shipped name); may be given several times")
    parser.add_argument("--mirror", help="fetch from this mirror base URL instead of the real hosts "
                        "(default $EMGTF_MIRROR): files lie under <mirror>/<host>/<path>")
    parser.add_argument("--jobs", type=int, default=4, help="files fetched at once (bids; default 4)")
    parser.add_argument("--retries", type=int, default=5,
                        help="tries after a network failure without progress (default 5)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be fetched and its size")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    users, splits = _list(args.users), list(args.split or [])
    if args.what in ("checkpoints", "lm") and (users or splits):
        raise EmgtfError(f"{args.what} takes names, not users= or split=")
    if args.what in ("bids", "dataset"):
        if args.names:
            raise EmgtfError(f"{args.what} takes users= or split=, not names ({' '.join(args.names)})")
        if args.out is None and not args.dry_run:
            raise EmgtfError(f"{args.what} needs out=DIR: the data root to fetch into")
    if args.what == "bids" and not (users or splits):
        raise EmgtfError("bids needs users=[ID,...] or split=FILE (the whole release is 1,135 sessions)")
    if args.jobs < 1 or args.retries < 0:
        raise EmgtfError("jobs= must be at least 1 and retries= at least 0")

    from emgtf.fetch.mirrors import mirror_base
    from emgtf.fetch.progress import human_bytes, progress_for

    mirror = mirror_base(args.mirror)
    if args.what in ("checkpoints", "lm"):
        from emgtf.fetch.published import select, target

        targets = [target(f, args.out) for f in select(args.what, args.names)]
    elif args.what == "bids":
        from emgtf.fetch.bids import plan

        targets = plan(args.out or ".", users=users, splits=splits)
    else:
        return _dataset(args, users, splits, mirror)

    if args.dry_run:
        _print_plan(targets, mirror)
        return 0
    from emgtf.fetch.pool import fetch_all

    progress = progress_for(sys.stderr)
    try:
        done = fetch_all(targets, mirror=mirror, progress=progress, jobs=args.jobs, retries=args.retries)
    finally:
        progress.close()
    fetched = [t for t, status in done if status == "fetched"]
    size = sum(t.path.stat().st_size for t, _ in done)
    print(f"emgtf.download: {len(done)} files verified ({human_bytes(size)}): {len(fetched)} fetched, "
          f"{len(done) - len(fetched)} already present")
    if args.what in ("checkpoints", "lm") and args.out is None:
        from emgtf.paths import cache_dir

        names = list(dict.fromkeys(t.label.rsplit(".", 1)[0] for t, _ in done))
        print(f"emgtf.download: in {cache_dir()}; commands find them by name "
              f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
    return 0


def _print_plan(targets, mirror) -> None:
    from emgtf.fetch.progress import human_bytes
    from emgtf.fetch.transfer import Fetcher

    fetcher = Fetcher(mirror=mirror)
    known = sum(t.size or 0 for t in targets)
    unknown = sum(t.size is None for t in targets)
    present = sum(t.path.exists() for t in targets)
    for t in targets:
        state = "present (verified when run)" if t.path.exists() else human_bytes(t.size)
        print(f"{t.path}  {state}  <- {fetcher.url(t)}")
    tail = f" + {unknown} of unpublished size" if unknown else ""
    print(f"emgtf.download: would fetch {len(targets)} files, {human_bytes(known)}{tail}"
          f" ({present} already present, verified and skipped when they match)")


def _dataset(args, users, splits, mirror) -> int:
    from emgtf.fetch.dataset import fetch_dataset, dataset_plan
    from emgtf.fetch.progress import progress_for

    if args.dry_run:
        print(dataset_plan(args.out, users=users, splits=splits, mirror=mirror))
        return 0
    progress = progress_for(sys.stderr)
    try:
        summary = fetch_dataset(args.out, users=users, splits=splits, mirror=mirror, progress=progress,
                                retries=args.retries)
    finally:
        progress.close()
    print(f"emgtf.download: {summary}")
    return 0
