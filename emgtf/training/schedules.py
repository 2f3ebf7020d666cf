"""Learning-rate schedules, as functions of the optimizer's step count.

A schedule of the step (not a callback that sets the rate) is saved with the optimizer in a
``.keras`` checkpoint together with the step counter, so a resumed run continues on exactly the same
curve.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from emgtf.config import required
from emgtf.errors import EmgtfError


@keras.saving.register_keras_serializable(package="emgtf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ``initial`` to ``peak`` over ``warmup_steps``, then cosine annealing
    from ``peak`` to ``final`` at ``total_steps`` (held there after).

    With ``quantum`` > 1 the step is rounded down to a multiple of it first: ``quantum =
    steps_per_epoch`` changes the rate only at epoch boundaries, like the reference recipe (PyTorch's
    LinearLR then CosineAnnealingLR, stepped once per epoch).

    Input: the step (int scalar). Output: float32 scalar learning rate.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0, initial: float = 1e-8,
                 final: float = 1e-6, quantum: int = 1):
        super().__init__()
        if total_steps < 1 or warmup_steps < 0 or quantum < 1:
            raise EmgtfError(
                f"learning-rate schedule: need total_steps >= 1, warmup_steps >= 0, quantum >= 1; "
                f"got {total_steps}, {warmup_steps}, {quantum}"
            )
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(min(warmup_steps, total_steps))
        self.initial = float(initial)
        self.final = float(final)
        self.quantum = int(quantum)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.quantum > 1:
            step = ops.floor(step / self.quantum) * self.quantum
        warmup = float(self.warmup_steps)
        warm = self.initial + (self.peak - self.initial) * step / max(warmup, 1.0)
        progress = ops.clip((step - warmup) / max(self.total_steps - warmup, 1.0), 0.0, 1.0)
        cosine = self.final + (self.peak - self.final) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup, warm, cosine)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "initial": self.initial,
            "final": self.final,
            "quantum": self.quantum,
        }


def make_schedule(schedule_cfg, *, peak: float, epochs: int, steps_per_epoch: int):
    """The learning rate (float or schedule) that ``schedule_cfg`` (the ``schedule`` group) describes
    for a run of ``epochs`` epochs of ``steps_per_epoch`` steps. Every key of the group's YAML is
    read, with no fallback; a missing one is a one-line error naming it."""

    def get(key):
        return required(schedule_cfg, key, "schedule")

    name = get("name")
    if name == "constant":
        return float(peak)
    if name != "warmup_cosine":
        raise EmgtfError(f"schedule.name: unknown schedule '{name}' (choose warmup_cosine or constant)")
    # In [0, 1] (1: warm up over the whole run, no annealing): checked with the rest of the config
    # (emgtf.training.config_checks) before anything is built.
    fraction = float(get("warmup_fraction"))
    per_epoch = bool(get("per_epoch"))
    total = epochs * steps_per_epoch
    if per_epoch:
        # Whole warm-up epochs, as in the reference (10 of 150).
        warmup = round(fraction * epochs) * steps_per_epoch
    else:
        warmup = round(fraction * total)
    # A peak below the end points (a tuner trying 1e-7) must not turn warm-up or annealing around.
    return WarmupCosine(
        peak=peak,
        total_steps=total,
        warmup_steps=warmup,
        initial=min(float(get("initial_learning_rate")), peak),
        final=min(float(get("final_learning_rate")), peak),
        quantum=steps_per_epoch if per_epoch else 1,
    )
