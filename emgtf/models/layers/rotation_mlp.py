"""The rotation-invariant MLP: Meta's per-band front end over the spectrogram features."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from emgtf.models.layers.base import PER_FRAME, Reach, register, serialize_regularizer


@register
class RotationInvariantMLP(keras.layers.Layer):
    """Per-band MLP pooled over small rotations of the electrode ring (Meta's front end).

    Input ``(batch, frames, bands, channels, bins)``; output ``(batch, frames, bands * f)`` with
    ``f = features[-1]``. For each band, the ``channels x bins`` features are rolled along the
    channel axis by each of ``offsets``; every roll goes through the same MLP (Linear + ReLU for
    each entry of ``features``) and the results are averaged (or max-pooled) over the rolls. The
    bands do not share weights (they are mirror images, not copies) unless ``share_bands``, when
    one MLP serves both (SplashNet).
    """

    def __init__(
        self,
        features=(384,),
        offsets=(-1, 0, 1),
        pooling="mean",
        kernel_regularizer=None,
        share_bands=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")
        self.features = [int(f) for f in features]
        self.offsets = [int(o) for o in offsets]
        self.pooling = pooling
        self.share_bands = bool(share_bands)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        _, _, bands, channels, bins = input_shape
        self._bands, self._channels, self._bins = bands, channels, bins
        self.kernels, self.biases = [], []
        fan_in = channels * bins
        mlps = 1 if self.share_bands else bands
        for i, fan_out in enumerate(self.features):
            # Glorot for each band's (fan_in, fan_out) matrix; Keras would otherwise count the
            # band axis as a receptive field and shrink the scale by the number of bands.
            init = keras.initializers.VarianceScaling(
                scale=float(mlps), mode="fan_avg", distribution="uniform"
            )
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{i}",
                    shape=(mlps, fan_in, fan_out),
                    initializer=init,
                    regularizer=self.kernel_regularizer,
                )
            )
            self.biases.append(
                self.add_weight(name=f"bias_{i}", shape=(mlps, fan_out), initializer="zeros")
            )
            fan_in = fan_out
        # Row index of the kernel that input (channel c, bin f) meets after a roll by o:
        # roll(x, o)[c] = x[c - o], so x[c, f] meets row ((c + o) mod C) * bins + f.
        channel = np.arange(channels)[:, None]
        bin_ = np.arange(bins)[None, :]
        self._roll_rows = [
            (((channel + o) % channels) * bins + bin_).reshape(-1).astype("int32") for o in self.offsets
        ]
        # ... and the input column that roll(x, o) takes at (channel c, bin f): x[c - o, f].
        self._roll_columns = [
            (((channel - o) % channels) * bins + bin_).reshape(-1).astype("int32") for o in self.offsets
        ]

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        rolls, fan_in = len(self.offsets), self._channels * self._bins
        # (batch * frames, band, channel * bin), channel-major like Meta's flattening.
        x = ops.reshape(inputs, (-1, self._bands, fan_in))
        # A few frames known when traced (a streaming step's): rolled copies of the input cost
        # less than permuted copies of the kernel, which are made on every call.
        roll_inputs = x.shape[0] is not None and x.shape[0] < self.features[0]
        outputs = []
        for band in range(self._bands):
            mlp = 0 if self.share_bands else band
            if roll_inputs:
                rolled = ops.stack([ops.take(x[:, band], index, axis=1) for index in self._roll_columns], axis=1)
                h = ops.matmul(ops.reshape(rolled, (-1, fan_in)), self.kernels[0][mlp])
                h = ops.relu(h + self.biases[0][mlp])  # (batch * frames * roll, features[0])
            else:
                # roll(x, o) @ K == x @ K[rows permuted by o]: the first layer of every roll is
                # one matmul with the row-permuted kernels side by side, and no rolled copy of
                # the input is made (3x less memory; one large matmul is fast on CPU and GPU).
                first = ops.concatenate(
                    [ops.take(self.kernels[0][mlp], index, axis=0) for index in self._roll_rows], axis=1
                )
                h = ops.relu(ops.matmul(x[:, band], first) + ops.tile(self.biases[0][mlp], (rolls,)))
                h = ops.reshape(h, (-1, self.features[0]))  # (batch * frames * roll, features[0])
            for kernel, bias in zip(self.kernels[1:], self.biases[1:]):
                h = ops.relu(ops.matmul(h, kernel[mlp]) + bias[mlp])
            h = ops.reshape(h, (-1, rolls, self.features[-1]))
            outputs.append(ops.mean(h, axis=1) if self.pooling == "mean" else ops.max(h, axis=1))
        x = ops.concatenate(outputs, axis=-1) if self._bands > 1 else outputs[0]
        return ops.reshape(x, (batch, -1, self._bands * self.features[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[2] * self.features[-1])

    def temporal_reach(self) -> Reach:
        """Each frame alone."""
        return PER_FRAME

    def get_config(self):
        return {
            **super().get_config(),
            "features": list(self.features),
            "offsets": list(self.offsets),
            "pooling": self.pooling,
            "share_bands": self.share_bands,
            "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
        }
