"""Training throughput: windows per second of one model's train step (forward, CTC loss, backward,
Adam update), after warm-up.

    python scripts/benchmark.py train [model=tds_conv_ctc] [batch=8] [window=8000] [padding=[1800,200]]
                                      [steps=10] [warmup=3] [jit=auto] [hp.<hyperparameter>=value]
                                      [vs_torch=false] [layers=false]

``vs_torch=true`` (also ``--vs-torch``, or ``python scripts/benchmark.py compare``) times the
PyTorch TDS-Conv CTC of tests/reference/tds_torch.py on the same windows and labels in the same run
(torch threads = cores; its step has no SpecAugment, emgtf's has) and adds both rates and their
ratio. ``layers=true`` adds a per-layer table (TensorFlow and JAX backends): forward and
forward+backward milliseconds of each layer on its real input (the best of a few calls), summed by
layer class.

``jit`` is trainer.jit_compile's rule: ``auto`` is XLA under JAX and off under TensorFlow.
``gflops_per_step`` counts the multiply-adds of the model's matrix products and convolutions
(forward x 3 for forward+backward; the spectrogram, norms and CTC are left out), so
``gflops_per_second`` compares with the machine's dense-matmul rate; the JAX backend adds
``xla_gflops_per_step``, XLA's own count of the whole compiled step.

Inputs are random arrays in memory (white noise of the reference scale, ~4 keys per second of
labels), so only the model is timed, not the input pipeline (see ``benchmark.py pipeline``). The
loop is Keras ``model.fit`` on those arrays, so it runs under any Keras backend
(``KERAS_BACKEND=jax python scripts/benchmark.py train``; ``backend`` in the output says which).
Wall times on a shared machine are noisy: ``step_ms_min`` (the fastest timed step) beside the mean
helps, and figures to compare come from runs alternated in one session. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


DEFAULTS = {
    "model": "tds_conv_ctc",
    "batch": 8,
    "window": 8000,
    "padding": [1800, 200],
    "steps": 10,
    "warmup": 3,
    "jit": "auto",  # as trainer.jit_compile: XLA under JAX, off under TensorFlow
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
    """A callback measuring the wall time from the first timed step's start to the last one's end,
    and the time of each step."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.begin = time.perf_counter()
            if batch == 0:
                self.start, self.steps, self.cpu_start = self.begin, [], time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            float((logs or {}).get("loss", 0.0))  # waits for the step's result
            self.end, self.cpu_end = time.perf_counter(), time.process_time()
            self.steps.append(self.end - self.begin)

    return StepTimer()


def _best_time(fn, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` (its result forced), after one warm-up
    call: on a shared machine the fastest call is the least disturbed one."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _tf_layer_calls(layer, given):
    """(forward, forward+backward) of one layer under TensorFlow, each forcing its result."""
    import tensorflow as tf

    given = tf.convert_to_tensor(given)

    @tf.function
    def forward():
        return layer(given, training=True)

    @tf.function
    def backward():
        with tf.GradientTape() as tape:
            tape.watch(given)
            loss = tf.reduce_mean(tf.square(tf.cast(layer(given, training=True), tf.float32)))
        sources = [given] + list(layer.trainable_weights) if given.dtype.is_floating else list(layer.trainable_weights)
        return tape.gradient(loss, sources) if sources else loss

    return (lambda: forward().numpy(),
            lambda: tf.nest.map_structure(lambda g: g is not None and g.numpy(), backward()))


def _jax_layer_calls(layer, given):
    """(forward, forward+backward) of one layer under JAX: jax.jit of its stateless call, and of
    the gradient with respect to its weights and (floating) input."""
    import inspect

    import jax
    import jax.numpy as jnp

    given = jnp.asarray(given)
    trainable = [v.value for v in layer.trainable_variables]
    fixed = [v.value for v in layer.non_trainable_variables]
    kwargs = {"training": True} if "training" in inspect.signature(layer.call).parameters else {}

    def call(weights, t):
        return layer.stateless_call(weights, fixed, t, **kwargs)[0]

    def loss(weights, t):
        return jnp.mean(jnp.square(call(weights, t).astype(jnp.float32)))

    forward = jax.jit(call)
    backward = jax.jit(jax.grad(loss, argnums=(0, 1) if jnp.issubdtype(given.dtype, jnp.floating) else 0))
    return (lambda: jax.block_until_ready(forward(trainable, given)),
            lambda: jax.block_until_ready(backward(trainable, given)))


def layer_table(model, x, repeats: int = 3) -> list[dict]:
    """Forward and forward+backward ms of every layer on its real input, summed by class
    (TensorFlow or JAX backend)."""
    import keras

    calls = {"tensorflow": _tf_layer_calls, "jax": _jax_layer_calls}[keras.backend.backend()]
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    activations = probe(x, training=False)
    table: dict[str, dict] = {}
    for layer, given in zip(layers, activations):
        forward, backward = calls(layer, given)
        row = table.setdefault(type(layer).__name__, {"layer": type(layer).__name__, "count": 0,
                                                       "forward_ms": 0.0, "forward_backward_ms": 0.0})
        row["count"] += 1
        row["forward_ms"] += 1000 * _best_time(forward, repeats)
        row["forward_backward_ms"] += 1000 * _best_time(backward, repeats)
    return [{k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()} for row in table.values()]


# Layers whose arithmetic is elementwise or a reduction: no matrix product to count.
_NO_PRODUCTS = {"LogSpectrogram", "SpecAugment", "SpectrogramNorm", "Activation", "InputLayer",
                "BatchNormalization", "LayerNormalization", "Dropout", "ReLU"}


def _layer_flops(layer, shape) -> float | None:
    """Forward floating-point operations (2 per multiply-add) of one layer's matrix products for an
    input of ``shape``; 0 for elementwise layers, None for a layer this count does not know."""
    kind = type(layer).__name__
    rows = float(np.prod(shape[:-1]))
    if kind == "Dense":
        return 2 * rows * shape[-1] * layer.units
    if kind == "TDSFullyConnectedBlock":
        return 2 * 2 * rows * shape[-1] ** 2
    if kind == "TDSConvBlock":
        batch, frames = shape[0], shape[1] - layer.kernel_width + 1
        return 2.0 * batch * frames * layer.width * layer.kernel_width * layer.channels ** 2
    if kind == "RotationInvariantMLP":
        batch, frames, bands, channels, bins = shape
        fan_ins = [channels * bins, *layer.features[:-1]]
        per_row = sum(a * b for a, b in zip(fan_ins, layer.features))
        return 2.0 * batch * frames * bands * len(layer.offsets) * per_row
    return 0.0 if kind in _NO_PRODUCTS else None


def matmul_gflops_per_step(model, batch: int, samples: int) -> float | None:
    """GFLOP of one training step's matrix products: the forward's x 3 (the backward computes a
    product of the same size for the input's gradient and one for the weights'). None when the
    model has a layer ``_layer_flops`` does not know."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    specs = probe.compute_output_spec(keras.KerasTensor((batch, samples, *model.inputs[0].shape[2:])))
    counts = [_layer_flops(layer, tuple(spec.shape)) for layer, spec in zip(layers, specs)]
    return None if None in counts else round(3 * sum(counts) / 1e9, 3)


def xla_gflops_per_step(model, x, y, loss) -> float:
    """XLA's count (HLO cost analysis, before optimisation) of the loss and its gradient under JAX:
    everything the step computes but the optimizer's update, which is negligible."""
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]

    def value(weights, x, y):
        return jnp.mean(loss.call(y, model.stateless_call(weights, fixed, x, training=True)[0]))

    cost = jax.jit(jax.grad(value)).lower(trainable, jnp.asarray(x), jnp.asarray(y)).cost_analysis()
    return round(float(cost["flops"]) / 1e9, 3)


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
        return float(loss.detach())  # waits for the step, on a GPU too

    for i in range(warmup):
        step(i)
    times, cpu_start = [], time.process_time()
    for i in range(steps):
        begin = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - begin)
    elapsed, cpu = sum(times), time.process_time() - cpu_start
    return {"windows_per_second": round(batch * steps / elapsed, 2), "step_ms_min": round(1000 * min(times), 1),
            "cpu_ms_per_step": round(1000 * cpu / steps, 1),
            "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_device": str(device)}


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

    from emgtf import models
    from emgtf.errors import EmgtfError
    from emgtf.models.ctc import CTCLoss, pack_targets
    from emgtf.training.runtime import jit_compile

    keras.utils.set_random_seed(opts["seed"])
    model = models.build(opts["model"], **opts["hp"])
    samples = opts["padding"][0] + opts["window"] + opts["padding"][1]
    batch, steps, warmup = opts["batch"], opts["steps"], opts["warmup"]
    backend = keras.backend.backend()
    jit = jit_compile({"jit_compile": opts["jit"]}, backend, key="jit")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CTCLoss(), jit_compile=jit)

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
    gflops = matmul_gflops_per_step(model, batch, samples)
    extra = {}
    if gflops is not None:
        extra["gflops_per_step"] = gflops
        extra["gflops_per_second"] = round(gflops * steps / elapsed, 1)
    if backend == "jax":
        extra["xla_gflops_per_step"] = xla_gflops_per_step(model, x[:batch], y[:batch], CTCLoss())
    if opts["vs_torch"]:
        if opts["model"] != "tds_conv_ctc":
            raise EmgtfError("vs_torch compares the TDS-Conv CTC model only (model=tds_conv_ctc)")
        torch_result = torch_windows_per_second(opts, x, labels, label_length, steps, warmup)
        if gflops is not None:
            torch_result["gflops_per_second"] = round(gflops * torch_result["windows_per_second"] / batch, 1)
        extra["torch"] = torch_result
        extra["ratio_emgtf_over_torch"] = round(emgtf_rate / torch_result["windows_per_second"], 2)
    if opts["layers"] and backend in ("tensorflow", "jax"):
        extra["layers"] = layer_table(model, x[:batch])
    print(json.dumps({
        "benchmark": "train",
        "model": opts["model"],
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "hp": opts["hp"],
        "windows_per_second": round(emgtf_rate, 2),
        "step_ms": round(1000 * elapsed / steps, 1),
        "step_ms_min": round(1000 * min(timer.steps), 1),
        "cpu_ms_per_step": round(1000 * (timer.cpu_end - timer.cpu_start) / steps, 1),
        "batch": batch,
        "window": opts["window"],
        "padding": opts["padding"],
        "samples_per_window": samples,
        "steps_timed": steps,
        "warmup_steps": warmup,
        "backend": backend,
        "backend_version": _backend_version(backend),
        "jit_compile": bool(model.jit_compile),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        **({"onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS")} if backend == "tensorflow" else {}),
        **({"xla_flags": os.environ.get("XLA_FLAGS", "")} if backend == "jax" else {}),
        **extra,
    }))
    return 0


def _backend_version(backend: str) -> str:
    import importlib

    return getattr(importlib.import_module(backend), "__version__", "?")


if __name__ == "__main__":
    from emgtf.cli import run

    sys.exit(run(main, "benchmark.py train"))
