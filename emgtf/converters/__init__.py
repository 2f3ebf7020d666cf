"""Published model files of other projects as emgtf Keras models, one module per source.

    model = from_emg2qwerty("generic.ckpt")      # Meta's or SplashNet's weights
    convert("generic.ckpt", "generic.keras")     # the same model as a .keras file

- ``emgtf.converters.torch_checkpoint``: reads a Lightning ``.ckpt`` with PyTorch's
  weights-only unpickler and an allowlist, so a file cannot run code;
- ``emgtf.converters.meta``: Meta's emg2qwerty TDS-Conv CTC (``.ckpt``, braindecode's
  ``.safetensors``), and the reading, checking and weight assignment SplashNet shares;
- ``emgtf.converters.splashnet``: SplashNet's ``TDSConvCTCModule`` hyperparameters and layouts.
"""

from emgtf.converters.meta import convert, from_emg2qwerty, read_checkpoint

__all__ = ["convert", "from_emg2qwerty", "read_checkpoint"]
