"""pytest fixtures and session hooks; shared helper functions live in tests/helpers.py."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# As the commands do (emgtf.cli.configure_process); CI also runs the kernel-sensitive tests with 0.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import pytest

from tests.helpers import make_session_file

@pytest.fixture(scope="module")
def small_lm(tmp_path_factory):
    """A word-internal character LM written by emgtf's own estimator, so no shared file is needed."""
    from emgtf.decoding.lm_build import build_word_internal_arpa

    path = tmp_path_factory.mktemp("lm") / "words-4gram.arpa"
    words = {"the": 50, "and": 30, "that": 20, "with": 15, "have": 10, "this": 10, "from": 8}
    build_word_internal_arpa(words, path, order=4)
    return path


@pytest.fixture
def session_file(tmp_path):
    """A small session file (8000 samples, keys 'hello') and its timestamps."""
    return make_session_file(tmp_path / "session.hdf5")


def pytest_sessionfinish(session, exitstatus):
    session.config._emgtf_exitstatus = int(exitstatus)


def pytest_unconfigure(config):
    # TF 2.21 can hang at interpreter exit when a tf.data numpy_function thread is still alive
    # (see emgtf/data/pipeline.py, _let_readers_finish). By now pytest has printed its summary;
    # leave without running interpreter finalisers, so a finished test run can never hang CI.
    status = getattr(config, "_emgtf_exitstatus", None)
    if status is not None and os.environ.get("EMGTF_TEST_CLEAN_EXIT", "1") == "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
