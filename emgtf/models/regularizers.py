"""The regularisers every model family can switch on from its hyperparameters.

``dropout`` (rate), ``batch_norm`` (bool), ``l2`` and ``l1`` (both together = elastic net). The
weight penalties go on the weights a user means by "the weights": every Dense, convolution,
attention and recurrent kernel, never biases or normalisation scales, so the penalty does not
fight the normalisation layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class Regularization:
    """Regularisation settings shared by every layer of one model."""

    dropout: float = 0.0
    batch_norm: bool = False
    l2: float = 0.0
    l1: float = 0.0

    @classmethod
    def from_hyperparameters(cls, hp: dict) -> "Regularization":
        return cls(
            dropout=float(hp["dropout"]),
            batch_norm=bool(hp["batch_norm"]),
            l2=float(hp["l2"]),
            l1=float(hp["l1"]),
        )

    def kernel_regularizer(self):
        """A fresh weight penalty for one layer's kernels, or None when l1 and l2 are 0."""
        if self.l1 == 0.0 and self.l2 == 0.0:
            return None
        return keras.regularizers.L1L2(l1=self.l1, l2=self.l2)

    def dense(self, units: int, *, activation=None, name: str) -> keras.layers.Dense:
        return keras.layers.Dense(
            units, activation=activation, kernel_regularizer=self.kernel_regularizer(), name=name
        )

    def dropout_layer(self, name: str, seed: int | None = None):
        """A Dropout layer, or None when the rate is 0 (keeps the summary free of no-ops)."""
        if self.dropout <= 0.0:
            return None
        return keras.layers.Dropout(self.dropout, seed=seed, name=name)

    def apply_dropout(self, x, name: str, seed: int | None = None):
        layer = self.dropout_layer(name, seed)
        return x if layer is None else layer(x)

    def apply_batch_norm(self, x, name: str):
        if not self.batch_norm:
            return x
        # PyTorch's BatchNorm defaults (momentum 0.1 there = 0.9 here, eps 1e-5), as in Meta's code.
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(x)
