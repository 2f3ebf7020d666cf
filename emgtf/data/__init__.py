"""Data: emg2qwerty session files, split files and the tf.data input pipeline."""

from emgtf.data.session import EMGSession, GroundTruth, write_session

__all__ = ["EMGSession", "GroundTruth", "write_session", "make_dataset", "data_errors", "Augmentations"]


def __getattr__(name):
    # The pipeline imports TensorFlow; load it only when asked for, so that reading session files
    # (inspect, transcribe's file checks, tests of the file format) stays light.
    if name in ("make_dataset", "data_errors"):
        from emgtf.data import pipeline

        return getattr(pipeline, name)
    if name in ("Augmentations", "as_augmentations"):
        from emgtf.data import augment

        return getattr(augment, name)
    raise AttributeError(f"module 'emgtf.data' has no attribute {name!r}")
