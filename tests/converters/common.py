"""What the converter tests share: the emissions of a Keras model, and the one-line error check."""

import numpy as np
import pytest
from keras import ops

from emgtf.errors import EmgtfError


def log_probs(model, emg: np.ndarray) -> np.ndarray:
    return ops.convert_to_numpy(model(emg, training=False))


def one_line_error(call, *needles) -> str:
    """Runs ``call``, which must raise a one-line EmgtfError containing every one of ``needles``."""
    with pytest.raises(EmgtfError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert str(needle) in message, (needle, message)
    return message
