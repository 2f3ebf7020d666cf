"""The multi-user benchmark table of the emg2qwerty paper (Table 2): per-user error rates and their
mean +/- standard deviation over users.

The protocol (emg2qwerty paper, section 5): each user's model is tested on that user's test
sessions, decoded whole (batch 1); a user's CER is the edit operations summed over their test
sessions divided by their target characters (not a mean of per-session rates); the table gives the
mean and the population standard deviation of the per-user rates, for each decoder. Beside them
the corpus-level rates: edits summed over every test session of every user, divided by all their
characters (the NeurIPS 2026 challenge's Track 4 headline); ``metrics="track4"`` reports exactly
that track's set (corpus CER, IER, DER, SER and rendered-text CER; ``emgtf.metrics``).

``run_benchmark`` takes (checkpoint, split) pairs: one generic checkpoint with each user's
split, or one personalised checkpoint per user. A split whose test sessions belong to several users
(Meta's ``generic.yaml``) gives one row per user. It writes the table as JSON and CSV.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emgtf import config as config_lib
from emgtf.config import override_key
from emgtf.console import Log, discard, unprefixed
from emgtf.data.splits import load_split
from emgtf.decoding import decoder_name, make_decoder
from emgtf.errors import EmgtfError
from emgtf.files import atomic_write_text, write_json
from emgtf.inference.checkpoints import checkpoint_family, load_checkpoint
from emgtf.metrics import COUNTS, METRICS, RATES, ErrorCounter, check_metrics


def rates_of_counts(counts: dict) -> dict:
    """The rates (percent) and the counts, from summed edit counts (the definition of
    ``emgtf.metrics.ErrorCounter``)."""

    counter = ErrorCounter()
    counter.add_counts(counts)
    return counter.result()


def summed(sessions: Sequence[dict]) -> dict:
    """The rates of a list of per-session results (each with the four counts), edits summed."""
    return rates_of_counts({key: sum(int(s[key]) for s in sessions) for key in COUNTS})


def mean_std(values: Sequence[float]) -> dict:
    """``{"mean", "std"}`` of ``values``; std is the population one (ddof 0), as the paper's."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=0))}


def group_by_user(split, files: Sequence[Path]) -> list[tuple[str | None, list[Path]]]:
    """``files`` grouped by the split's user id of each, in order of first appearance."""
    groups: dict[str | None, list[Path]] = {}
    for f in files:
        groups.setdefault(split.user_of(f), []).append(Path(f))
    return list(groups.items())


def output_paths(output, first_checkpoint: Path, part: str) -> tuple[Path, Path]:
    """(JSON, CSV) paths: ``output`` (its .csv sibling), else
    ``<first checkpoint stem>.<part>.benchmark.json`` beside the first checkpoint."""
    if output is not None:
        json_path = Path(output)
        if json_path.suffix != ".json":
            raise EmgtfError(f"output {json_path} must be a .json path (the CSV is written beside it)")
    else:
        json_path = first_checkpoint.with_name(f"{first_checkpoint.stem}.{part}.benchmark.json")
    return json_path, json_path.with_suffix(".csv")


def decoder_configs(names: Sequence[str], overrides: Sequence[str] = ()) -> list:
    """The decoder config of each option in ``names`` (``configs/decoder/<name>.yaml``) with the
    ``decoder.<key>=...`` overrides that option has (``decoder.lm_path`` reaches beam_lm, not
    greedy); an override no option has is an error."""
    keyed = [o for o in overrides if override_key(o).startswith("decoder.")]
    used, out = set(), []
    for name in names:
        option = config_lib.compose("evaluate", [f"decoder={name}"]).decoder
        mine = [o for o in keyed if override_key(o)[len("decoder."):] in option]
        used.update(mine)
        out.append(config_lib.compose("evaluate", [f"decoder={name}", *mine]).decoder)
    unused = [o for o in keyed if o not in used]
    if unused:
        raise EmgtfError(f"override '{unused[0]}' matches none of decoders=[{','.join(names)}]")
    return out


def run_benchmark(
    pairs: Sequence[tuple[os.PathLike | str, os.PathLike | str]],
    decoder_cfgs: Sequence,
    *,
    root=None,
    part: str = "test",
    output=None,
    overwrite: bool = False,
    metrics: str = "emg2qwerty",
    log: Log = discard,
) -> tuple[dict, Path, Path]:
    """Evaluates each (checkpoint, split) pair on the split's ``part`` with every decoder config.

    ``root``: the data root of every split (``None`` = the embedded synthetic dataset). Returns
    ``(doc, json_path, csv_path)``; ``doc`` is ``{"part", "data_root", "decoders": [names],
    "rows": [{"user", "user_id", "split", "split_file", "checkpoint", "sessions", "results":
    {decoder: rates and counts}, "per_session": {decoder: [...]}}], "summary": {decoder: {rate:
    {"mean", "std"}}}, "corpus": {decoder: rates and counts over every session}, "metrics"}``.
    ``metrics``: the set the table and CSV report (``emgtf.metrics.METRICS``); the JSON has
    everything. Existing outputs are kept unless ``overwrite``.
    """
    from omegaconf import OmegaConf

    from emgtf.inference.evaluation import evaluate_model  # imports TensorFlow

    check_metrics(metrics)
    if not pairs:
        raise EmgtfError("the benchmark needs at least one (checkpoint, split) pair")
    if not decoder_cfgs:
        raise EmgtfError("the benchmark needs at least one decoder")
    names = [decoder_name(d) for d in decoder_cfgs]
    if len(set(names)) != len(names):
        raise EmgtfError(f"decoders {', '.join(names)}: each decoder may be given once")
    pairs = [(Path(c), str(s)) for c, s in pairs]
    json_path, csv_path = output_paths(output, pairs[0][0], part)
    for p in (json_path, csv_path):
        if p.exists() and not overwrite:
            raise EmgtfError(f"{p} exists; pass overwrite=true to replace it (or output=<another .json>)")

    # Every file and split is checked before any model runs (a typo must not cost an hour).
    plan = []
    for checkpoint, spec in pairs:
        checkpoint_family(checkpoint)
        data_root, split_spec = config_lib.resolve_data(OmegaConf.create({"root": root, "split": spec}))
        split = load_split(split_spec, data_root)
        files = split.part(part)
        if not files:
            raise EmgtfError(f"split '{split_spec}' has no {part} sessions")
        groups = group_by_user(split, files)
        for user_id, user_files in groups:
            label = split.name if len(groups) == 1 else f"{split.name}/{user_id}"
            plan.append({"user": label, "user_id": user_id, "split": split.name, "split_file": split_spec,
                         "checkpoint": str(checkpoint), "files": user_files})
    labels = [row["user"] for row in plan]
    duplicated = sorted({x for x in labels if labels.count(x) > 1})
    if duplicated:
        raise EmgtfError(f"user '{duplicated[0]}' appears twice in the benchmark (the same split given twice?)")
    decoders = [make_decoder(d) for d in decoder_cfgs]

    models: dict[str, object] = {}
    rows = []
    for row in plan:
        if row["checkpoint"] not in models:
            models.clear()  # pairs of one checkpoint are adjacent in the usual calls; keep one model
            models[row["checkpoint"]] = load_checkpoint(row["checkpoint"])
        model = models[row["checkpoint"]]
        files = row.pop("files")
        row["sessions"] = [f.stem for f in files]
        row["results"], row["per_session"] = {}, {}
        for name, decoder in zip(names, decoders):
            log(f"{row['user']}: {row['checkpoint']} on {len(files)} {part} "
                f"session(s), {name} decoding")
            report = evaluate_model(model, files, decoder, log=unprefixed(log))
            row["per_session"][name] = report["sessions"]
            row["results"][name] = summed(report["sessions"])
        rows.append(row)

    doc = {
        "part": part,
        "data_root": None if root is None else str(root),
        "decoders": names,
        "decoder_configs": {n: config_lib.to_container(d) for n, d in zip(names, decoder_cfgs)},
        "rows": rows,
        "summary": summary(rows, names),
        "corpus": corpus(rows, names),
        "metrics": metrics,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(json_path, doc)
    atomic_write_text(csv_path, benchmark_csv(doc))
    log(benchmark_table(doc), prefix=False)
    log(f"report: {json_path} and {csv_path}", prefix=False)
    return doc, json_path, csv_path


def summary(rows: Sequence[dict], decoders: Sequence[str]) -> dict:
    """``{decoder: {rate: {"mean", "std"}}}`` over the rows (users)."""
    return {
        name: {rate: mean_std([row["results"][name][rate] for row in rows]) for rate in RATES}
        for name in decoders
    }


def corpus(rows: Sequence[dict], decoders: Sequence[str]) -> dict:
    """``{decoder: rates and counts}`` with edits summed over every session of every row."""
    return {name: summed([s for row in rows for s in row["per_session"][name]]) for name in decoders}


def benchmark_csv(doc: dict) -> str:
    """One line per user and decoder, then a ``mean`` and a ``std`` line per decoder and a
    ``corpus`` line (edits summed over every session); with ``metrics`` track4, only the corpus
    line of each decoder and the track's rates."""
    track4 = doc.get("metrics") == "track4"
    rates = METRICS[doc.get("metrics", "emg2qwerty")]
    counts = () if track4 else COUNTS
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["user", "user_id", "split", "checkpoint", "decoder", "sessions", *rates, *counts])
    for name in doc["decoders"]:
        if not track4:
            for row in doc["rows"]:
                r = row["results"][name]
                w.writerow([row["user"], row["user_id"] or "", row["split"], row["checkpoint"], name,
                            len(row["sessions"]), *(f"{r[k]:.4f}" for k in rates),
                            *(r[k] for k in counts)])
            for stat in ("mean", "std"):
                s = doc["summary"][name]
                w.writerow([stat, "", "", "", name, "", *(f"{s[k][stat]:.4f}" for k in rates),
                            *([""] * len(counts))])
        c = doc["corpus"][name]
        sessions = sum(len(row["sessions"]) for row in doc["rows"])
        w.writerow(["corpus", "", "", "", name, sessions, *(f"{c[k]:.4f}" for k in rates),
                    *(c[k] for k in counts)])
    return out.getvalue()


def _label(rate: str) -> str:
    return "rCER" if rate == "rendered_CER" else rate


def benchmark_table(doc: dict) -> str:
    """The table as text: a row per user with the rates of each decoder, mean +/- std (population)
    over the users as in the emg2qwerty paper's Table 2, then the corpus-level rates (edits summed
    over every session; rCER = rendered-text CER). With ``metrics`` track4: the corpus line only,
    with the track's rates."""
    names = doc["decoders"]
    track4 = doc.get("metrics") == "track4"
    rates = METRICS[doc.get("metrics", "emg2qwerty")]
    width = max(12, *(len(row["user"]) for row in doc["rows"]))
    cell = 15
    header = f"{'user':<{width}}  {'chars':>7}" + "".join(
        f"  {f'{name} {_label(rate)}':>{cell}}" for name in names for rate in rates
    )
    lines = [header, "-" * len(header)]
    if not track4:
        for row in doc["rows"]:
            chars = row["results"][names[0]]["target_chars"]
            lines.append(f"{row['user']:<{width}}  {chars:7d}" + "".join(
                f"  {row['results'][name][rate]:>{cell}.2f}" for name in names for rate in rates
            ))
        lines.append("-" * len(header))
        label = f"mean +/- std ({len(doc['rows'])} users)"
        lines.append(f"{label:<{width + 9}}" + "".join(
            f"  {_pm(doc['summary'][name][rate]):>{cell}}" for name in names for rate in rates
        ))
    chars = doc["corpus"][names[0]]["target_chars"]
    lines.append(f"{'corpus':<{width}}  {chars:7d}" + "".join(
        f"  {doc['corpus'][name][rate]:>{cell}.2f}" for name in names for rate in rates
    ))
    return "\n".join(lines)


def _pm(stat: dict) -> str:
    if not math.isfinite(stat["mean"]):
        return "n/a"
    return f"{stat['mean']:.2f} +/- {stat['std']:.2f}"
