"""``python -m emgtf.personalize users=[user0,user1] split_dir=DIR checkpoint=generic.keras
[init=finetune|random] [run_dir=RUN] [decoders=[greedy,beam_lm]] [fit overrides]``: one fit run
per user in ``RUN/<user>/``, then the per-user test table (see ``emgtf.training.personalization``).
"""

from __future__ import annotations

from emgtf.cli.parsing import CommandParser
from emgtf.console import console_log

PROG = "python -m emgtf.personalize"


def _parser():
    return CommandParser(
        overrides_help="personalisation settings and fit overrides",
        dry_run_help="print the config and the users' split files, then exit",
        prog=PROG,
        description="Personalised models (emg2qwerty paper): a fit run per user on <split_dir>/<user>.yaml, "
        "fine-tuned from checkpoint= (fresh optimizer) or trained from scratch; then each user's best "
        "checkpoint on their test sessions, and mean +/- std over users.",
        epilog=(
            "settings (key=value):\n"
            "  users        [user0,user1,...]: the split files <split_dir>/<user>.yaml\n"
            "  split_dir    folder of per-user split files (Meta's config/user/ or emgtf split files)\n"
            "  init         finetune (checkpoint's weights, fresh optimizer) | random (from scratch)\n"
            "  checkpoint   the generic .keras model; its family is the model unless model=... is given\n"
            "  run_dir      folder of the runs, RUN/<user>/; the same command again resumes user by user\n"
            "  decoders     decoder options of the final table, e.g. [greedy,beam_lm]\n"
            "  any fit override  trainer=reference data.root=... (python -m emgtf.fit --help)\n"
            "\nwrites RUN/personalize.yaml, RUN/<user>/ (fit run folders), RUN/personalize.test.json and .csv\n"
            "\nexample:\n"
            "  python -m emgtf.personalize users=[user0,user1] split_dir=emg2qwerty/config/user "
            "checkpoint=generic.keras data.root=/data/emg2qwerty trainer=reference run_dir=runs/personal"
        ),
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from emgtf.training import personalization

    if args.dry_run:
        from pathlib import Path

        from emgtf import config as config_lib

        cfg, _ = personalization.load_config(args.overrides)
        print(config_lib.to_yaml(cfg), end="")
        for user in personalization._names(cfg, "users"):
            print(f"# {user}: {personalization.split_file_of(Path(str(cfg.split_dir)).expanduser(), user)}")
        return 0
    personalization.personalize(args.overrides, log=console_log("emgtf.personalize"))
    return 0
