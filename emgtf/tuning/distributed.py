"""Distributed search: KerasTuner's chief/worker mode, chosen by KerasTuner's own variables.

Every machine runs the same command with ``KERASTUNER_ORACLE_IP`` / ``KERASTUNER_ORACLE_PORT`` set
to the chief's address and its own ``KERASTUNER_TUNER_ID`` (``chief`` on the machine that serves
the oracle, ``worker0``, ``worker1`` ... elsewhere).
"""

from __future__ import annotations

import os
import time

from emgtf.errors import EmgtfError

ENV_IP, ENV_PORT, ENV_ID = "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"


def distributed_role() -> str:
    """``single`` (no KerasTuner distribution variables), ``chief`` or ``worker``."""
    if ENV_IP not in os.environ:
        return "single"
    for name in (ENV_PORT, ENV_ID):
        if not os.environ.get(name):
            raise EmgtfError(
                f"{ENV_IP} is set, so this is a distributed search, but {name} is not "
                f"(set {ENV_IP}, {ENV_PORT} and {ENV_ID} on every machine)"
            )
    port = os.environ[ENV_PORT]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise EmgtfError(f"{ENV_PORT}={port!r} is not a TCP port number")
    # KerasTuner's rule: the tuner whose ID contains "chief" serves the oracle.
    return "chief" if "chief" in os.environ[ENV_ID] else "worker"


def serve(oracle, *, log=None, poll_s: float = 0.5) -> None:
    """The chief: serves ``oracle`` to the workers over gRPC until every trial has ended and every
    worker has been told to stop (KerasTuner's servicer; polled more often than KerasTuner's own
    loop, which waits 20 s between checks). ``log`` (one argument) hears where it serves."""
    log = log if log is not None else (lambda message: None)
    import grpc
    from concurrent import futures
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    address = f"{os.environ[ENV_IP]}:{os.environ[ENV_PORT]}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as e:
        raise EmgtfError(f"{ENV_IP}/{ENV_PORT}: cannot listen on {address} ({e})") from None
    if not bound:
        raise EmgtfError(f"{ENV_IP}/{ENV_PORT}: cannot listen on {address}")
    oracle.save()
    server.start()
    log(f"emgtf.tune: chief serving the oracle on {address}; waiting for workers")
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(poll_s)
    finally:
        server.stop(grace=2.0).wait()
