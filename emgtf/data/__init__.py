"""Data: emg2qwerty session files, split files and the tf.data input pipeline."""

from emgtf.data.session import EMGSession, GroundTruth, write_session

__all__ = ["EMGSession", "GroundTruth", "write_session"]
