"""Training throughput: windows per second of one model's train step (forward, CTC loss, backward,
Adam update), after warm-up.

    python scripts/benchmark.py train [model=tds_conv_ctc] [batch=8] [window=8000] [padding=[1800,200]]
                                      [steps=10] [warmup=3] [jit=false] [hp.<hyperparameter>=value]

Inputs are random arrays in memory (white noise of the reference scale, ~4 keys per second of
labels), so only the model is timed, not the input pipeline (see ``benchmark.py pipeline``). The
loop is Keras ``model.fit`` on those arrays, so it runs under any Keras backend
(``KERAS_BACKEND=jax python scripts/benchmark.py train``). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULTS = {
    "model": "tds_conv_ctc",
    "batch": 8,
    "window": 8000,
    "padding": [1800, 200],
    "steps": 10,
    "warmup": 3,
    "jit": False,  # TensorFlow: XLA off, as in the training presets; JAX always compiles
    "seed": 0,
    "hp": {},
}


def _options(argv: list[str]):
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    from emgtf.errors import EmgtfError

    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        sys.exit(0)
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise EmgtfError(f"expected key=value arguments, got '{bad[0]}'")
    options = OmegaConf.create(DEFAULTS)
    OmegaConf.set_struct(options, True)
    try:
        with open_dict(options.hp):  # any hyperparameter name; build() checks them
            return OmegaConf.to_container(OmegaConf.merge(options, OmegaConf.from_dotlist(argv)))
    except OmegaConfBaseException as e:
        raise EmgtfError(f"bad argument: {str(e).splitlines()[0]} (options: {', '.join(DEFAULTS)})") from None


def _step_timer():
    """A callback measuring the wall time from the first timed step's start to the last one's end."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float((logs or {}).get("loss", 0.0))  # waits for the step's result
            self.end = time.perf_counter()

    return StepTimer()


def main(argv: list[str]) -> int:
    opts = _options(argv)

    import keras
    import numpy as np

    from emgtf import models
    from emgtf.training.losses import CTCLoss, pack_targets

    keras.utils.set_random_seed(opts["seed"])
    model = models.build(opts["model"], **opts["hp"])
    samples = opts["padding"][0] + opts["window"] + opts["padding"][1]
    batch, steps, warmup = opts["batch"], opts["steps"], opts["warmup"]
    compile_args = {"jit_compile": bool(opts["jit"])} if keras.backend.backend() == "tensorflow" else {}
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CTCLoss(), **compile_args)

    rng = np.random.default_rng(opts["seed"])
    n = batch * max(steps, warmup)
    x = rng.normal(0.0, 2.5, size=(n, samples, 2, 16)).astype(np.float32)
    label_length = max(1, round(4 * opts["window"] / 2000))  # ~4 keys per second
    labels = rng.integers(0, 98, size=(n, label_length))
    emitted = np.full(n, int(models.emission_lengths(model, samples)))
    y = pack_targets(emitted, labels, np.full(n, label_length))

    model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=warmup, shuffle=False, verbose=0)
    timer = _step_timer()
    model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0,
              callbacks=[timer])
    elapsed = timer.end - timer.start
    print(json.dumps({
        "benchmark": "train",
        "model": opts["model"],
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "hp": opts["hp"],
        "windows_per_second": round(batch * steps / elapsed, 2),
        "step_ms": round(1000 * elapsed / steps, 1),
        "batch": batch,
        "window": opts["window"],
        "padding": opts["padding"],
        "samples_per_window": samples,
        "steps_timed": steps,
        "warmup_steps": warmup,
        "backend": keras.backend.backend(),
        "jit_compile": bool(getattr(model, "jit_compile", True)),
        "cpu_count": os.cpu_count(),
    }))
    return 0


if __name__ == "__main__":
    from emgtf.cli import run

    sys.exit(run(main, "benchmark.py train"))
