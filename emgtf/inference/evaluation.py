"""Evaluation: one forward + decode + count path for validation windows and whole sessions.

``validate`` scores windows of a validation split (the training loop's per-epoch check);
``evaluate_model`` decodes every session of a split whole (batch 1, no windowing: the
reference's test protocol; computed in chunks with the same result where the model's reach allows,
``emgtf.inference.chunked``), and ``evaluate_checkpoint`` writes that report as JSON beside the
checkpoint, ``<checkpoint stem>.<split>.<decoder>.eval.json``. Error rates are edit operations
summed over all sessions (``emgtf.metrics.ErrorCounter``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from emgtf import interrupts
from emgtf.console import Log, discard, unprefixed
from emgtf.data.splits import TEST
from emgtf.errors import EmgtfError
from emgtf.files import write_json
from emgtf.inference.runners import check_finite, compiled_loss, forward


def validate(model, dataset, loss, decoder=None, *, samples: int = 0, source: str | None = None,
             forward_fn=None) -> dict:
    """Loss and error rates of ``model`` on every window of ``dataset`` (dict batches).

    The loss is averaged over windows like the training loss; the rates are summed over the split
    (``emgtf.metrics.ErrorCounter``). Greedy decoding unless a ``decoder`` is given.
    ``samples`` > 0 adds ``"samples"``: (prediction, target) of the first that many windows.
    Non-finite log-probabilities are an EmgtfError naming ``source`` (the model), session and frame.
    ``forward_fn`` (emg -> log-probabilities) replaces ``forward``, e.g. for a model trained on
    several devices (``emgtf.training.distribute.Distribution.forward``).
    """
    import keras

    from emgtf.charset import charset
    from emgtf.decoding import ctc_greedy
    from emgtf.metrics import ErrorCounter
    from emgtf.models import emitted_frames
    from emgtf.models.ctc import pack_targets

    cs = charset()
    counter = ErrorCounter()
    total_loss, windows = 0.0, 0
    kept = []
    loss_fn = compiled_loss(loss)
    for batch in dataset:
        interrupts.check()
        log_probs = forward(model, batch["emg"]) if forward_fn is None else forward_fn(batch["emg"])
        emitted = emitted_frames(model, batch["emg_lengths"].numpy(), log_probs.shape[1])
        _check(log_probs, emitted, batch, source or f"model {model.name}")
        labels, label_lengths = batch["labels"].numpy(), batch["label_lengths"].numpy()
        # CTCLoss scores an infeasible window 0, as in training.
        y = pack_targets(emitted, labels, label_lengths)
        per_window = keras.ops.convert_to_numpy(loss_fn(y, log_probs))
        total_loss += float(np.sum(per_window))
        windows += len(per_window)
        texts = decoder.decode_batch(log_probs, emitted) if decoder else ctc_greedy(log_probs, emitted)
        for text, row, n in zip(texts, labels, label_lengths):
            target = cs.labels_to_str(row[:n])
            counter.update(text, target)
            if len(kept) < samples:
                kept.append((text, target))
    if windows == 0:
        raise EmgtfError("the validation split gave no windows")
    result = {"loss": total_loss / windows, **counter.result()}
    if samples:
        result["samples"] = kept
    return result


def _check(log_probs, emitted, batch, source: str) -> None:
    """check_finite for a batch of windows: names the session with the window's first sample."""
    starts = batch["start"].numpy()
    where = [f"{name.decode()} window at sample {int(start)}"
             for name, start in zip(batch["session"].numpy(), starts)]
    check_finite(log_probs, source, where, emitted)


def evaluate_model(model, files, decoder, *, log=None, source: str | None = None,
                   chunking=None) -> dict:
    """Decodes each session file whole with ``model``; returns the per-session and overall rates.

    Whole, as the one-shot forward pass of the session (batch 1) gives it, computed in chunks
    where that gives the same numbers (``chunking``: ``emgtf.inference.chunked.Chunking``,
    None: its defaults), so memory does not grow with the session; the emissions go into the
    decoder's incremental search chunk by chunk (its ``finish()`` is the offline decoding).
    A session too short for one emission (shorter than the model's receptive field) is skipped with
    a warning: it has nothing to decode, and a training run must not fail at its last step for it.
    ``log`` hears each session's CER as it is scored (None: nothing is said).
    Non-finite log-probabilities are an EmgtfError naming ``source`` (the checkpoint) and session.

    Returns ``{"sessions": [{"session", "CER", "IER", "DER", "SER", "rendered_CER", counts...,
    "prediction", "target"}], "overall": {"CER", ..., counts}}``.
    """
    from emgtf.data import EMGSession
    from emgtf.inference.chunked import SessionForward
    from emgtf.metrics import ErrorCounter, error_rates

    runner = SessionForward(model, chunking, source=source)
    overall = ErrorCounter()
    sessions = []
    with interrupts.deferred():
        for path in files:
            interrupts.check()
            with EMGSession(path) as session:
                name, samples = session.session_name, len(session)
                if runner.rule.emissions(samples) == 0:
                    warnings.warn(f"session {name}: {samples} samples is shorter than {model.name}'s "
                                  "receptive field; skipped", stacklevel=2)
                    continue
                times = session.timestamps  # checked finite and in order
                # The labels of the whole-session window: keys pressed from its first to its last sample.
                target = session.ground_truth(float(times[0]), float(times[-1])).text
                prediction = _decode(decoder, runner.blocks(session, name))
            overall.update(prediction, target)
            rates = error_rates([prediction], [target])
            sessions.append({"session": name, **rates, "prediction": prediction, "target": target})
            if log is not None:
                log(f"  {name}: CER {rates['CER']:.2f} % ({rates['target_chars']} characters)")
    return {"sessions": sessions, "overall": overall.result()}


def _decode(decoder, blocks) -> str:
    """The decoding of a session's emissions, given block by block: through the decoder's
    incremental search where it has one (nothing but the search's state is kept), else at once."""
    if hasattr(decoder, "start"):
        search = decoder.start(None)
        for block in blocks:
            interrupts.check()
            search.advance(block)
        return search.finish()
    log_probs = np.concatenate(list(blocks))
    return decoder.decode_batch(log_probs[None], [len(log_probs)])[0]


def rates_table(report: dict, metrics: str = "emg2qwerty") -> str:
    """Per-session and overall rates as a fixed-width table (rCER: rendered-text CER); with
    ``metrics`` track4, the overall (corpus-level) line of the track's rates only."""
    from emgtf.metrics import METRICS

    rates = METRICS[metrics]
    rows = [("overall", report["overall"])]
    if metrics != "track4":
        rows = [(s["session"], s) for s in report["sessions"]] + rows
    width = max(12, *(len(name) for name, _ in rows))
    labels = ["rCER" if r == "rendered_CER" else r for r in rates]
    header = f"{'session':<{width}}" + "".join(f"  {x:>7}" for x in labels) + f"  {'chars':>7}"
    lines = [header, "-" * len(header)]
    for i, (name, r) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * len(header))
        lines.append(f"{name:<{width}}" + "".join(f"  {r[x]:7.2f}" for x in rates)
                     + f"  {r['target_chars']:7d}")
    return "\n".join(lines)


def default_output(checkpoint: Path, part: str, decoder_cfg) -> Path:
    from emgtf.decoding import decoder_name

    return checkpoint.with_name(f"{checkpoint.stem}.{part}.{decoder_name(decoder_cfg)}.eval.json")


def evaluate_checkpoint(
    checkpoint,
    *,
    part: str = TEST,
    decoder_cfg=None,
    root=None,
    split=None,
    output=None,
    overwrite: bool = False,
    model=None,
    report: bool = False,
    report_session: str | None = None,
    report_seconds: float = 4.0,
    report_start: float | None = None,
    metrics: str = "emg2qwerty",
    chunking=None,
    log: Log | None = None,
) -> tuple[dict, Path]:
    """Evaluates ``checkpoint`` on split part ``part``; writes and returns the JSON report.

    ``root``/``split`` default to the run's config.yaml beside the checkpoint, else the synthetic
    default. ``model``: the already loaded checkpoint, to skip loading it again.

    ``report``: also write the error-analysis report (``emgtf.reporting``) into
    ``<JSON stem>-report/`` beside the JSON, with the alignment view of session ``report_session``
    (None: the first one evaluated), ``report_seconds`` from ``report_start`` (seconds from its
    first sample; None: just before its first keystroke). Report options are checked before the
    evaluation starts. ``metrics``: the set the printed table gives (``emgtf.metrics.METRICS``;
    ``track4``: the corpus-level rates of the NeurIPS 2026 track, also under ``"track4"`` in the
    JSON); the JSON has every rate. ``chunking``: how whole sessions are cut
    (``emgtf.inference.chunked.Chunking``; None: its defaults, exact where the model allows).
    ``log`` (``emgtf.console``) hears what is evaluated, the rates table and the files written
    (None: nothing is said; the commands pass their console).
    """
    from omegaconf import OmegaConf

    from emgtf.metrics import check_metrics, select

    from emgtf import config as config_lib
    from emgtf.data.session import check_scored_sessions
    from emgtf.data.splits import load_split
    from emgtf.decoding import decoder_name, make_decoder
    from emgtf.inference.checkpoints import checkpoint_family, load_checkpoint

    log = log or discard
    check_metrics(metrics)
    checkpoint = Path(checkpoint)
    family = checkpoint_family(checkpoint)  # a missing or foreign file fails before any data work
    decoder_cfg = decoder_cfg if decoder_cfg is not None else OmegaConf.create({"kind": "greedy"})
    if root is None or split is None:
        run_config = checkpoint.parent / "config.yaml"
        if run_config.is_file():
            run_data = config_lib.load_saved(run_config).get("data") or {}
            root = root if root is not None else run_data.get("root")
            split = split if split is not None else run_data.get("split")
    data_root, split_spec = config_lib.resolve_data(OmegaConf.create({"root": root, "split": split}))
    files = load_split(split_spec, data_root).part(part)
    if not files:
        raise EmgtfError(f"split '{split_spec}' has no {part} sessions")
    check_scored_sessions(files, part)
    output = Path(output) if output is not None else default_output(checkpoint, part, decoder_cfg)
    if output.exists() and not overwrite:
        raise EmgtfError(f"{output} exists; pass overwrite=true to replace it (or output=<another path>)")
    report_dir = _check_report(output, files, part, overwrite, report_session, report_seconds,
                               report_start) if report else None

    decoder = make_decoder(decoder_cfg)
    if model is None:
        model = load_checkpoint(checkpoint, family)
    from emgtf.inference.chunked import Chunking, SessionForward

    chunking = chunking if chunking is not None else Chunking()
    log(f"{checkpoint} ({model.name}) on {len(files)} {part} session(s), "
        f"{decoder_name(decoder_cfg)} decoding, {SessionForward(model, chunking).describe()}")
    report = evaluate_model(model, files, decoder, source=f"checkpoint {checkpoint}", chunking=chunking,
                            log=unprefixed(log))
    report = {
        "checkpoint": str(checkpoint),
        "model": model.name,
        "split": part,
        "split_file": str(split_spec),
        "data_root": str(data_root),
        "decoder": config_lib.to_container(decoder_cfg),
        "metrics": metrics,
        "overall": report["overall"],
        **({"track4": select(report["overall"], "track4")} if metrics == "track4" else {}),
        "sessions": report["sessions"],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json(output, report)
    log(rates_table(report, metrics), prefix=False)
    log(f"report: {output}", prefix=False)
    if report_dir is not None:
        written = write_evaluation_report(output, report_dir, model, files, decoder, session=report_session,
                                          seconds=report_seconds, start=report_start,
                                          source=f"checkpoint {checkpoint}", log=log)
        log(f"error-analysis report: {written[-1]} ({len(written)} files in {report_dir})", prefix=False)
    return report, output


def _session_names(files) -> list[str]:
    from emgtf.data import EMGSession

    names = []
    for path in files:
        with EMGSession(path) as session:
            names.append(session.session_name)
    return names


def _check_report(output: Path, files, part: str, overwrite: bool, session, seconds, start) -> Path:
    """The report folder of ``output``, after checking the report options (one line each)."""
    from emgtf.reporting.build import evaluation_report_dir

    for key, value, lowest in (("report_seconds", seconds, None), ("report_start", start, 0.0)):
        if value is None and key == "report_start":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or (
                value <= 0 if lowest is None else value < lowest):
            bound = "> 0" if lowest is None else ">= 0 (seconds from the session's first sample) or null"
            raise EmgtfError(f"{key} must be a number {bound}, got {value!r}")
    if session is not None:
        names = _session_names(files)
        if str(session) not in names:
            shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
            raise EmgtfError(f"report_session={session}: no such {part} session (the {len(names)} "
                             f"{part} sessions: {shown})")
    out = evaluation_report_dir(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (overwrite and (out / "index.html").is_file()):
            raise EmgtfError(f"{out} exists and is not an empty folder; pass overwrite=true to replace "
                             "that report (or output=<another path>)")
    return out


def write_evaluation_report(output: Path, out: Path, model, files, decoder, *, session=None,
                            seconds: float = 4.0, start=None, source=None, log: Log | None = None) -> list[Path]:
    """The error-analysis report of the evaluation JSON ``output`` (``emgtf.report``'s) plus the
    alignment view of one session, written into ``out`` (an existing report there is replaced);
    returns the files written, the index last. ``log`` hears which alignment view it drew."""
    log = log or discard
    import shutil

    from emgtf.inference.alignment import session_alignment
    from emgtf.reporting.build import Inputs, load_evaluation, write_report

    evaluation = load_evaluation(output)
    scored = [s["session"] for s in evaluation.report["sessions"]]
    if not scored:
        raise EmgtfError(f"{output}: no session was evaluated, so there is no report to write")
    chosen = str(session) if session is not None else scored[0]
    if chosen not in scored:
        raise EmgtfError(f"report_session={chosen}: that session was skipped by the evaluation (too short)")
    path = files[_session_names(files).index(chosen)]
    evaluation.alignment = session_alignment(model, path, decoder, seconds=float(seconds),
                                             start=None if start is None else float(start), source=source)
    if out.exists() and (out / "index.html").is_file():
        shutil.rmtree(out)
    written = write_report(Inputs(paths=[output], evaluations=[evaluation]), out)
    log(f"alignment view: {evaluation.alignment.describe()}", prefix=False)
    return written
