"""``python -m emgtf.tune [space=NAME] [tuner.algorithm=random|bayesian|hyperband] [tuner.max_trials=N]
[fit overrides]``: a KerasTuner search whose trials are ``emgtf.fit`` runs (see ``emgtf.tuning``).
"""

from __future__ import annotations


from emgtf.cli.parsing import CommandParser
from emgtf.errors import EmgtfError

PROG = "python -m emgtf.tune"


def _parser():
    from emgtf.tuning import space as search_space

    spaces = []
    for name in search_space.available():
        try:
            spaces.append(f"  {name:<16} {search_space.load(name).description}")
        except EmgtfError as e:
            spaces.append(f"  {name:<16} (unreadable: {e})")
    return CommandParser(
        overrides_help="search settings and fit overrides",
        dry_run_help="print the config and the search space, then exit",
        prog=PROG,
        description="KerasTuner hyperparameter search: each trial trains a fit config with the trial's "
        "hyperparameters (emgtf.training.train), objective val_CER (minimised).",
        epilog=(
            "search spaces (space=NAME, files in tuner/; or space=path/to/space.yaml):\n"
            + "\n".join(spaces)
            + "\n\nsearch settings (key=value):\n"
            "  tuner.algorithm       random | bayesian | hyperband\n"
            "  tuner.max_trials      trials in all (random, bayesian)\n"
            "  tuner.max_epochs      hyperband: most epochs of a trial (null = trainer.epochs)\n"
            "  run_dir               the search folder; resume=true run_dir=RUN continues a search\n"
            "  any fit override      model=tcn trainer.epochs=5 data.root=... (python -m emgtf.fit --help)\n"
            "\ndistributed: run the same command on every machine with KERASTUNER_ORACLE_IP,\n"
            "KERASTUNER_ORACLE_PORT (the chief's address) and KERASTUNER_TUNER_ID (chief | worker0 | ...)\n"
            "\nexamples:\n"
            "  python -m emgtf.tune space=regularization tuner.max_trials=20 trainer.epochs=6\n"
            "  python -m emgtf.tune space=family tuner.algorithm=bayesian run_dir=runs/family\n"
            "  python -m emgtf.tune resume=true run_dir=runs/family\n"
            "  python -m emgtf.tune space=depth_width tuner.algorithm=hyperband tuner.max_epochs=27 logger=wandb"
        ),
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from emgtf.cli import load_tensorflow
    from emgtf.tuning.search import Search, check_folder_free, run_search

    if not args.dry_run:
        check_folder_free(args.overrides)  # a search folder in use: one line at once, not after TensorFlow loads
    load_tensorflow()

    if args.dry_run:
        from emgtf import config as config_lib

        search = Search(args.overrides)
        print(config_lib.to_yaml(search.cfg), end="")
        print(search.space.describe())
        return 0
    run_search(args.overrides, log=print)
    return 0

