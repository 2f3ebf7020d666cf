"""Training on several devices and hosts: ``trainer.devices`` and ``trainer.strategy``.

The engines are TensorFlow's and Keras' own (``trainer.strategy``):

- ``auto`` (default): ``multi_worker`` when ``TF_CONFIG`` describes a cluster of more than one
  task, ``data_parallel`` when the ``KERAS_DISTRIBUTION_*`` variables describe one; else, with ``trainer.devices`` > 1, ``mirrored`` under the TensorFlow backend and
  ``data_parallel`` under JAX; else ``one_device``;
- ``one_device``: no strategy, one device (what emgtf always did);
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over ``trainer.devices`` GPUs of this host. On
  a machine without GPUs the CPU is split into that many logical devices (to try the setup out;
  it is not faster);
- ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the cluster in
  ``TF_CONFIG``, ``trainer.devices`` GPUs per host (one CPU device per host without GPUs);
- ``data_parallel``: ``keras.distribution.DataParallel`` (JAX backend) over ``trainer.devices``
  devices of this host (on CPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=N``), or of every
  host of a cluster given by Keras' own variables (``KERAS_DISTRIBUTION_JOB_ADDRESSES``: the
  coordinator's ``host:port``, or every host's comma-separated; ``KERAS_DISTRIBUTION_NUM_PROCESSES``;
  ``KERAS_DISTRIBUTION_PROCESS_ID``: 0 is the coordinator and chief), which
  ``keras.distribution.initialize`` reads.

``trainer.devices``: an integer, or ``auto`` (all GPUs of the host, 1 without GPUs).
``trainer.batch_size`` is the batch of one device (the reference's 32 per GPU); a step trains on
``batch_size x devices x hosts`` windows, and the loss is the mean over that global batch, so the
learning rate is that of one device's run with the global batch. With more than one replica
every step is full: the windows of an epoch that do not fill the last global batch (fewer than
one global batch, different ones every epoch as the order is reshuffled) are left out, and each
host reads only its own share of the windows (``emgtf.data.make_dataset``'s ``shard``).

Batch statistics (SpectrogramNorm) are per replica, as in PyTorch DDP without SyncBatchNorm:
each device normalises with the statistics of its own ``batch_size`` windows; the running
statistics are the mean over the replicas. Validation runs on every host over the whole
validation split with the synchronised weights (so every host gets the same ``val_CER``); only the
chief (TF_CONFIG's ``chief``, else worker 0; process 0 of a JAX cluster) writes the run folder, the
other hosts write their checkpoints to a temporary folder that is deleted at the end (as Keras'
multi-worker guide recommends).

A JAX cluster (on CPU its collectives are Gloo's, JAX's default) lives for one training: every
host leaves it together at the end of ``fit`` (``jax.distributed.shutdown``), so that the chief's
test evaluation afterwards runs alone. A host whose peer stops (killed, crashed, its own error)
sees the next collective fail at once and stops with ``HostLost``; a process that stops with
an error in a cluster leaves at once (``EmgtfError.hard_exit``), because JAX's exit barrier
would wait for the lost host (up to its 100 s heartbeat timeout) and then abort the process. When
the coordinator (process 0) dies, JAX itself terminates the other hosts within a second with its
own message ("the JAX distributed service detected fatal errors"); no Python code runs there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from emgtf.checks import is_int
from emgtf.errors import EmgtfError, first_line

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "data_parallel")
_BACKEND = {"mirrored": "tensorflow", "multi_worker": "tensorflow", "data_parallel": "jax"}


@dataclass(frozen=True)
class Cluster:
    """The cluster of ``TF_CONFIG``: task counts, this task, and its index among all tasks."""

    tasks: int
    task_type: str
    task_index: int
    pipeline: int  # 0..tasks-1: which share of the windows this host reads
    chief: bool


def read_cluster(environ=os.environ) -> Cluster | None:
    """The training cluster in ``TF_CONFIG`` (None when unset or a single task); one-line errors."""
    raw = environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        doc = json.loads(raw)
        cluster, task = doc["cluster"], doc["task"]
        task_type, task_index = str(task["type"]), int(task["index"])
        counts = {kind: len(cluster.get(kind, [])) for kind in ("chief", "worker")}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise EmgtfError(f"TF_CONFIG is not a JSON object with 'cluster' and 'task' "
                         f"{{'type', 'index'}} ({type(e).__name__}: {e})") from None
    if task_type not in counts or not 0 <= task_index < counts[task_type]:
        raise EmgtfError(f"TF_CONFIG: task {task_type} {task_index} is not in its cluster "
                         f"({counts['chief']} chief, {counts['worker']} worker)")
    if counts["chief"] > 1:
        raise EmgtfError(f"TF_CONFIG: a cluster has at most one chief, this one has {counts['chief']}")
    tasks = counts["chief"] + counts["worker"]
    if tasks <= 1:
        return None
    pipeline = task_index if task_type == "chief" else counts["chief"] + task_index
    chief = task_type == "chief" or (counts["chief"] == 0 and task_index == 0)
    return Cluster(tasks, task_type, task_index, pipeline, chief)


_KERAS_HOSTS = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                "KERAS_DISTRIBUTION_PROCESS_ID")


def read_hosts(environ=os.environ) -> Cluster | None:
    """The JAX cluster in Keras' ``KERAS_DISTRIBUTION_*`` variables (None when unset or a single
    process); one-line errors."""
    given = {name: environ.get(name, "").strip() for name in _KERAS_HOSTS}
    if not any(given.values()):
        return None
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise EmgtfError(f"a JAX cluster needs all of {', '.join(_KERAS_HOSTS)}; {', '.join(missing)} "
                         "not set")
    addresses, count, index = given.values()
    try:
        count, index = int(count), int(index)
    except ValueError:
        raise EmgtfError(f"KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID must be "
                         f"integers, got {count!r} and {index!r}") from None
    if count < 1 or not 0 <= index < count:
        raise EmgtfError(f"KERAS_DISTRIBUTION_PROCESS_ID={index} is not a process of "
                         f"KERAS_DISTRIBUTION_NUM_PROCESSES={count} (0..{count - 1})")
    listed = addresses.split(",")
    if len(listed) > 1 and len(listed) != count:
        raise EmgtfError(f"KERAS_DISTRIBUTION_JOB_ADDRESSES lists {len(listed)} hosts, "
                         f"KERAS_DISTRIBUTION_NUM_PROCESSES is {count}")
    if count == 1:
        return None
    return Cluster(count, "process", index, index, index == 0)


def _devices_value(value):
    if value == "auto":
        return "auto"
    if not is_int(value) or value < 1:
        raise EmgtfError(f"trainer.devices must be an integer >= 1 or auto, got {value!r}")
    return value


def check_config(trainer, backend: str | None = None, environ=os.environ) -> str:
    """Checks ``trainer.devices`` / ``trainer.strategy`` without starting TensorFlow; returns the
    engine ``auto`` stands for, or the one named (see the module docstring)."""
    backend = backend or _backend()
    devices = _devices_value(trainer.get("devices", 1))
    strategy = trainer.get("strategy", "auto")
    if strategy not in STRATEGIES:
        raise EmgtfError(f"trainer.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    cluster, hosts = read_cluster(environ), read_hosts(environ)
    if cluster is not None and hosts is not None:
        raise EmgtfError("both TF_CONFIG and KERAS_DISTRIBUTION_* describe a cluster; set one of them")
    if hosts is not None and backend != "jax" and strategy in ("auto", "data_parallel"):
        raise EmgtfError(f"KERAS_DISTRIBUTION_* describe a cluster of {hosts.tasks} processes, which "
                         f"emgtf trains under the jax backend; this process uses {backend} (KERAS_BACKEND)")
    if strategy == "auto":
        if cluster is not None:
            strategy = "multi_worker"
        elif hosts is not None:
            strategy = "data_parallel"
        elif devices == "auto" or devices > 1:
            strategy = "data_parallel" if backend == "jax" else "mirrored"
        else:
            strategy = "one_device"
        if strategy != "one_device" and backend not in ("tensorflow", "jax"):
            raise EmgtfError(f"training on several devices needs the tensorflow or jax backend, "
                             f"not {backend} (KERAS_BACKEND)")
    needed = _BACKEND.get(strategy)
    if needed is not None and backend != needed:
        raise EmgtfError(f"trainer.strategy={strategy} runs under the {needed} backend, this process "
                         f"uses {backend} (KERAS_BACKEND)")
    if strategy == "one_device" and devices not in (1, "auto"):
        raise EmgtfError(f"trainer.devices={devices} with trainer.strategy=one_device: that engine "
                         "trains on one device; use trainer.strategy=auto or mirrored")
    if strategy == "multi_worker" and cluster is None:
        raise EmgtfError("trainer.strategy=multi_worker needs TF_CONFIG describing a cluster of at "
                         "least two tasks (see the README, 'Several hosts')")
    if strategy != "multi_worker" and cluster is not None:
        raise EmgtfError(f"TF_CONFIG describes a cluster of {cluster.tasks} tasks but "
                         f"trainer.strategy={strategy} trains on one host; use multi_worker or auto, "
                         "or unset TF_CONFIG")
    if strategy != "data_parallel" and hosts is not None:
        raise EmgtfError(f"KERAS_DISTRIBUTION_* describe a cluster of {hosts.tasks} processes but "
                         f"trainer.strategy={strategy}; use data_parallel or auto, or unset them")
    return strategy


def _backend() -> str:
    # Without importing Keras (which starts TensorFlow): config checks run before that.
    import sys

    keras = sys.modules.get("keras")
    return keras.backend.backend() if keras is not None else os.environ.get("KERAS_BACKEND", "tensorflow")


@dataclass
class Distribution:
    """How this process trains: the engine, its replicas, and whether it writes the run folder.

    ``local_devices``: replicas on this host; ``pipelines``: hosts reading their own share of the
    windows (``pipeline`` is this host's); ``replicas``: devices over all hosts.
    """

    kind: str = "one_device"
    local_devices: int = 1
    pipelines: int = 1
    pipeline: int = 0
    chief: bool = True
    engine: object = field(default=None, repr=False)  # the tf.distribute strategy / Keras distribution

    @property
    def replicas(self) -> int:
        return self.local_devices * self.pipelines

    def scope(self):
        """Where the model, its optimizer and its compile must be created."""
        if self.engine is None:
            return contextlib.nullcontext()
        return self.engine.scope()

    def pipeline_batch(self, batch_size: int) -> int:
        """The batch one host's pipeline makes: one device's under tf.distribute (each replica
        takes its own batches), all devices' under keras.distribution (it splits each batch)."""
        return batch_size * self.local_devices if self.kind == "data_parallel" else batch_size

    def shard(self) -> tuple[int, int] | None:
        return (self.pipeline, self.pipelines) if self.pipelines > 1 else None

    def steps(self, batches: int) -> int:
        """Training steps of an epoch whose pipeline gives ``batches`` batches on this host."""
        return batches // self.local_devices if self.engine_is_tf else batches

    @property
    def engine_is_tf(self) -> bool:
        return self.kind in ("mirrored", "multi_worker")

    def fit_data(self, dataset, steps: int):
        """What ``model.fit`` iterates: ``dataset`` repeated, as ``steps`` full steps per epoch."""
        if not self.engine_is_tf:
            return dataset.repeat()
        # One pass over the data is exactly steps x local replicas batches, so that every epoch
        # starts at the first batch of a fresh pass (the same windows as the epoch's seeds say).
        per_epoch = dataset.take(steps * self.local_devices).repeat()

        def per_host(context):
            if context.num_input_pipelines != self.pipelines:
                raise EmgtfError(f"tf.distribute runs {context.num_input_pipelines} input pipelines, "
                                 f"emgtf sharded the windows over {self.pipelines}")
            return per_epoch

        return self.engine.distribute_datasets_from_function(per_host)

    def forward(self, model):
        """The validation forward pass (emg -> log-probabilities, numpy) for this engine, or None
        for the usual ``emgtf.inference.runners.forward``.

        Under tf.distribute ``predict_on_batch`` runs the whole batch on every replica and
        concatenates the copies; a compiled call of the model in the cross-replica context reads
        the (synchronised) weights and runs once. keras.distribution splits a batch over the
        devices, so it is padded to a multiple of them and the padding's outputs dropped.
        """
        if self.engine_is_tf:
            import tensorflow as tf

            call = tf.function(lambda emg: model(emg, training=False), reduce_retracing=True)
            return lambda emg: np.asarray(call(emg), dtype=np.float32)
        if self.kind == "data_parallel" and self.local_devices > 1:
            n = self.local_devices

            def padded(emg):
                emg = np.asarray(emg)
                extra = -len(emg) % n
                if extra:
                    emg = np.concatenate([emg, np.zeros((extra, *emg.shape[1:]), emg.dtype)])
                out = np.asarray(model.predict_on_batch(emg), dtype=np.float32)
                return out[: len(out) - extra]

            return padded
        return None

    def check_same_on_all_hosts(self, cfg, steps: int | None = None) -> None:
        """Stops every host with one line when the hosts were started with different configs or
        their data gives different numbers of ``steps`` per epoch (they would otherwise hang or
        train apart). Called once before the model is built (the configs: JAX refuses weights that
        differ between hosts, with a page of numbers) and once with the steps."""
        if self.pipelines == 1:
            return
        from omegaconf import OmegaConf

        keep = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
                if k not in ("run_dir", "resume", "logger")}
        digest = hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).digest()[:8]
        # int32, byte by byte: JAX computes in 32 bits unless told otherwise.
        mine = np.array([self.pipeline, -1 if steps is None else steps, *digest], np.int32)
        if self.engine_is_tf:
            import tensorflow as tf

            rows = self.engine.gather(self.engine.run(lambda: tf.constant(mine[None])), axis=0).numpy()
        else:
            from jax.experimental import multihost_utils

            rows = np.asarray(multihost_utils.process_allgather(mine))
        for pipeline, other_steps, *other_digest in rows.tolist():
            if other_digest != mine[2:].tolist():
                raise EmgtfError(f"host {pipeline} of the cluster was started with a different config "
                                 f"than host {self.pipeline}; start every host with the same overrides")
            if steps is not None and other_steps != steps:
                raise EmgtfError(f"host {pipeline} of the cluster has {other_steps} steps per epoch, host "
                                 f"{self.pipeline} has {steps}; every host must see the same data.root")

    @property
    def jax_hosts(self) -> bool:
        """Whether this process is one host of a JAX cluster (``KERAS_DISTRIBUTION_*``)."""
        return self.kind == "data_parallel" and self.pipelines > 1

    @contextlib.contextmanager
    def hosts_guard(self):
        """Around a training on a JAX cluster: a failed collective (a peer stopped) becomes
        ``HostLost``, and any one-line error makes this process leave at once (see the module
        docstring), so that the other hosts stop too instead of waiting for it."""
        if not self.jax_hosts:
            yield
            return
        try:
            yield
        except EmgtfError as e:
            e.hard_exit = True
            raise
        except AssertionError as e:
            # JAX's own check that a replicated value is the same on every host (after emgtf's
            # config check, a different emgtf or library version could still differ).
            text = str(e)
            if "not the same on each process" not in text:
                raise
            error = EmgtfError(f"host {self.pipeline} of {self.pipelines}: the hosts hold different values "
                               f"where JAX needs the same ({text.split('. ')[0]}); run the same emgtf, "
                               "libraries and config on every host")
            error.hard_exit = True
            raise error from None
        except (RuntimeError, ValueError) as e:
            if _COLLECTIVE_FAILURE.search(str(e)) is None:
                raise
            raise HostLost(self.pipeline, self.pipelines, e) from None

    def leave(self) -> None:
        """The end of a training on a JAX cluster: every host leaves it together."""
        if self.jax_hosts and not _LEFT:
            import jax

            jax.distributed.shutdown()
            _LEFT.append(self)


# What JAX's collectives say when a peer has gone: Gloo's (CPU) and NCCL's errors, and the
# coordination service's.
_COLLECTIVE_FAILURE = re.compile(r"\bGloo\b|\bNCCL\b|Connection (closed|reset)|heartbeat|UNAVAILABLE")


class HostLost(EmgtfError):
    """Another host of a JAX cluster stopped during the training (see the module docstring)."""

    hard_exit = True

    def __init__(self, host: int, hosts: int, error: BaseException):
        message = first_line(error)
        peer = re.search(r"\[([^\]]+)\]:\d+", message)
        other = (f"host {1 - host}" if hosts == 2 else
                 f"a host at {peer.group(1)}" if peer else "another host")
        super().__init__(
            f"host {host} of {hosts}: {other} of the cluster stopped during training ({message}); "
            "the chief's last checkpoint is kept: start every host again with resume=true")


_LEFT: list = []  # a JAX cluster, once left, cannot be joined again by this process


_STARTED: dict = {}  # engines are made once per process (multi_worker's collectives cannot restart)


def _count_devices(kind: str, devices):
    """(devices to use on this host, their type) for ``trainer.devices`` on this machine."""
    if kind == "data_parallel":
        import jax

        accelerators = [d for d in jax.local_devices() if d.platform != "cpu"]
        have, what = (len(accelerators), "accelerators") if accelerators else (len(jax.local_devices()), "CPU devices")
        hint = "" if accelerators else " (more with XLA_FLAGS=--xla_force_host_platform_device_count=N)"
        if devices == "auto":
            return (have if accelerators else 1), "jax"
        if devices > have:
            raise EmgtfError(f"trainer.devices={devices}: JAX sees {have} {what} on this machine{hint}")
        return devices, "jax"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if devices == "auto":
            return len(gpus), "GPU"
        if devices > len(gpus):
            raise EmgtfError(f"trainer.devices={devices}: this machine has {len(gpus)} GPU(s)")
        return devices, "GPU"
    if devices == "auto":
        return 1, "CPU"
    cores = os.cpu_count() or 1
    if devices > cores:
        raise EmgtfError(f"trainer.devices={devices}: this machine has no GPU and {cores} CPU cores "
                         "(on CPU, trainer.devices splits the cores into logical devices)")
    if kind == "multi_worker" and devices > 1:
        raise EmgtfError(f"trainer.devices={devices} with trainer.strategy=multi_worker on a host "
                         "without GPUs: each host trains on one CPU device; set trainer.devices=1")
    return devices, "CPU"


def _configure_devices(n: int, device_type: str, *, names: bool) -> list[str]:
    """Makes ``n`` devices of ``device_type`` visible (logical CPU devices on a CPU-only host),
    which TensorFlow allows only before it starts; returns their names if ``names`` (listing them
    starts TensorFlow, which multi-worker collectives must come before)."""
    import tensorflow as tf

    try:
        if device_type == "GPU":
            tf.config.set_visible_devices(tf.config.list_physical_devices("GPU")[:n], "GPU")
        elif n > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        pass  # TensorFlow already runs (an earlier run of this process): use what it has
    if not names:
        return []
    have = tf.config.list_logical_devices(device_type)
    if len(have) < n:
        raise EmgtfError(f"trainer.devices={n}: TensorFlow already started in this process with "
                         f"{len(have)} {device_type} device(s); run the training in a new process")
    return [d.name for d in have[:n]]


def _join_hosts(hosts: Cluster) -> None:
    """Joins the JAX cluster of ``KERAS_DISTRIBUTION_*`` (once per process, before JAX starts)."""
    if _LEFT:
        raise EmgtfError("this process already trained on its JAX cluster (KERAS_DISTRIBUTION_*), "
                         "which cannot be joined twice; run each training in its own process")
    import jax
    import keras

    if jax.distributed.is_initialized():
        return
    try:
        keras.distribution.initialize()  # reads KERAS_DISTRIBUTION_*, as the README documents
    except (RuntimeError, ValueError) as e:
        raise EmgtfError(f"could not join the JAX cluster of KERAS_DISTRIBUTION_JOB_ADDRESSES="
                         f"{os.environ['KERAS_DISTRIBUTION_JOB_ADDRESSES']} as process "
                         f"{hosts.task_index} of {hosts.tasks} ({first_line(e)})") from None


def _jax_mesh_devices(n: int) -> list:
    """The first ``n`` devices of every host, host by host: the same list on every host."""
    import jax

    everything = [d for d in jax.devices() if d.platform != "cpu"] or jax.devices()
    hosts = sorted({d.process_index for d in everything})
    return [d for host in hosts for d in sorted((d for d in everything if d.process_index == host),
                                                key=lambda d: d.id)[:n]]


def setup(cfg) -> Distribution:
    """The run's ``Distribution``; call it before anything else starts TensorFlow."""
    kind = check_config(cfg.trainer)
    if kind == "one_device":
        return Distribution()
    hosts = read_hosts() if kind == "data_parallel" else None
    if hosts is not None:
        _join_hosts(hosts)
    try:
        n, device_type = _count_devices(kind, _devices_value(cfg.trainer.get("devices", 1)))
    except EmgtfError as e:
        e.hard_exit = hosts is not None  # the other hosts have joined: see the module docstring
        raise
    key = (kind, n)
    if key in _STARTED:
        return _STARTED[key]
    if kind == "data_parallel":
        import keras

        # emgtf gives each host its own share of the windows (shard), so Keras must not shard again.
        engine = keras.distribution.DataParallel(devices=_jax_mesh_devices(n), auto_shard_dataset=False)
        dist = (Distribution(kind, n, engine=engine) if hosts is None else
                Distribution(kind, n, hosts.tasks, hosts.pipeline, hosts.chief, engine))
    else:
        import tensorflow as tf

        names = _configure_devices(n, device_type, names=kind == "mirrored")
        if kind == "mirrored":
            engine = tf.distribute.MirroredStrategy(names)
            dist = Distribution(kind, n, engine=engine)
        else:
            cluster = read_cluster()
            try:
                engine = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as e:
                raise EmgtfError(f"trainer.strategy=multi_worker must start before TensorFlow does in "
                                 f"this process ({e}); run the training in a new process") from None
            dist = Distribution(kind, n, cluster.tasks, cluster.pipeline, cluster.chief, engine)
    _STARTED[key] = dist
    return dist
