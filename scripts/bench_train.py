"""Training throughput: windows per second of one model's train step (forward, CTC loss, backward,
Adam update), after warm-up.

    python scripts/benchmark.py train [model=tds_conv_ctc] [batch=8] [window=8000] [padding=[1800,200]]
                                      [steps=10] [warmup=3] [jit=false] [hp.<hyperparameter>=value]
                                      [vs_torch=false] [layers=false]

``vs_torch=true`` (also ``--vs-torch``, or ``python scripts/benchmark.py compare``) times the
PyTorch TDS-Conv CTC of tests/reference/tds_torch.py on the same windows and labels in the same run
(torch threads = cores; its step has no SpecAugment, emgtf's has) and adds both rates and their
ratio. ``layers=true`` adds a per-layer table (TensorFlow backend): forward and forward+backward
milliseconds of each layer on its real input, summed by layer class.

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
    "vs_torch": False,
    "torch_device": "cpu",  # or cuda: the PyTorch reference on the GPU (scripts/gpu_check.sh)
    "layers": False,
}


def _options(argv: list[str]):
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    from emgtf.errors import EmgtfError

    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        sys.exit(0)
    argv = ["vs_torch=true" if a == "--vs-torch" else "layers=true" if a == "--layers" else a for a in argv]
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


def _time(fn, repeats: int) -> float:
    """Seconds per call of ``fn`` (its result forced), after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def layer_table(model, x, repeats: int = 3) -> list[dict]:
    """Forward and forward+backward ms of every layer on its real input, summed by class."""
    import keras
    import tensorflow as tf

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    activations = probe(x, training=False)
    table: dict[str, dict] = {}
    for layer, given in zip(layers, activations):
        given = tf.convert_to_tensor(given)

        @tf.function
        def forward(t=given, layer=layer):
            return layer(t, training=True)

        @tf.function
        def backward(t=given, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(t)
                loss = tf.reduce_mean(tf.square(tf.cast(layer(t, training=True), tf.float32)))
            sources = [t] + list(layer.trainable_weights) if t.dtype.is_floating else list(layer.trainable_weights)
            return tape.gradient(loss, sources) if sources else loss

        row = table.setdefault(type(layer).__name__, {"layer": type(layer).__name__, "count": 0,
                                                       "forward_ms": 0.0, "forward_backward_ms": 0.0})
        row["count"] += 1
        row["forward_ms"] += 1000 * _time(lambda: forward().numpy(), repeats)
        row["forward_backward_ms"] += 1000 * _time(lambda: tf.nest.map_structure(lambda g: g is not None and g.numpy(), backward()), repeats)
    return [{k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()} for row in table.values()]


def torch_windows_per_second(opts, x, labels, label_length, steps: int, warmup: int) -> dict:
    """The PyTorch reference TDS-Conv CTC's train step on the same windows and labels."""
    import torch

    from tests.reference.tds_torch import make_tds_torch

    torch.manual_seed(opts["seed"])
    torch.set_num_threads(os.cpu_count())
    keys = ("mlp_features", "block_channels", "kernel_width")
    model = make_tds_torch(**{k: v for k, v in opts["hp"].items() if k in keys})
    device = torch.device(opts["torch_device"])
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = opts["batch"]
    emg, targets = torch.from_numpy(x).to(device), torch.from_numpy(labels).to(device)

    def step(i):
        rows = slice((i * batch) % len(emg), (i * batch) % len(emg) + batch)
        log_probs = model(emg[rows])  # (N, T, 99)
        n, frames = log_probs.shape[0], log_probs.shape[1]
        loss = torch.nn.functional.ctc_loss(
            log_probs.transpose(0, 1), targets[rows], torch.full((n,), frames), torch.full((n,), label_length),
            blank=98, zero_infinity=True,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss)  # waits for the step, on a GPU too

    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    elapsed = time.perf_counter() - start
    return {"windows_per_second": round(batch * steps / elapsed, 2), "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(), "torch_device": str(device)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def main(argv: list[str]) -> int:
    opts = _options(argv)

    import keras
    import numpy as np

    from emgtf import models
    from emgtf.errors import EmgtfError
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
    emgtf_rate = batch * steps / elapsed
    extra = {}
    if opts["vs_torch"]:
        if opts["model"] != "tds_conv_ctc":
            raise EmgtfError("vs_torch compares the TDS-Conv CTC model only (model=tds_conv_ctc)")
        torch_result = torch_windows_per_second(opts, x, labels, label_length, steps, warmup)
        extra["torch"] = torch_result
        extra["ratio_emgtf_over_torch"] = round(emgtf_rate / torch_result["windows_per_second"], 2)
    if opts["layers"] and keras.backend.backend() == "tensorflow":
        extra["layers"] = layer_table(model, x[:batch])
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
        "cpu_model": cpu_model(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        **extra,
    }))
    return 0


if __name__ == "__main__":
    from emgtf.cli import run

    sys.exit(run(main, "benchmark.py train"))
