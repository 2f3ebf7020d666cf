"""The Conformer block (Gulati et al. 2020) with rotary positions (Su et al. 2021)."""

from __future__ import annotations

import math

import keras
from keras import ops

from emgtf.models.layers.base import MaskedInputBuild, NORM_EPSILON, Reach, register, serialize_regularizer

ROTARY_BASE = 10000.0


def rotary(x, base: float = ROTARY_BASE):
    """Rotary position code of ``x`` ``(batch, frames, heads, dim)`` (``dim`` even): the pair
    ``(x_i, x_{i + dim/2})`` of frame t rotated by ``t * base^(-2i / dim)``, so the dot product of a
    query and a key depends on their distance only."""
    half = x.shape[-1] // 2
    positions = ops.cast(ops.arange(ops.shape(x)[1]), "float32")[:, None]
    rates = ops.exp(ops.cast(ops.arange(half), "float32") * (-math.log(base) / half))
    angles = (positions * rates[None, :])[None, :, None, :]
    cos, sin = ops.cast(ops.cos(angles), x.dtype), ops.cast(ops.sin(angles), x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return ops.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


@register
class ConformerBlock(MaskedInputBuild, keras.layers.Layer):
    """Conformer encoder block: ``x + FFN/2``, ``+ MHSA``, ``+ conv module``, ``+ FFN/2``,
    LayerNorm.

    Input ``(batch, frames, d_model)`` and an optional ``padding_mask`` ``(batch, frames)`` (1 =
    signal, 0 = padding; padded keys get no attention and are zeroed before the depthwise
    convolution); output ``(batch, frames, d_model)``. Each sub-block reads ``LayerNorm(x)``. FFN:
    ``ff_size`` units, swish, back to ``d_model``, added with weight 1/2. MHSA: ``num_heads``
    heads, rotary positions on queries and keys (relative, any length). Conv module: pointwise
    conv + GLU, depthwise conv of ``conv_kernel`` frames, BatchNorm (``batch_norm``) or
    LayerNorm, swish, pointwise conv. ``causal``: each frame attends to itself and earlier
    frames only and the depthwise convolution reads ``conv_kernel - 1`` earlier frames, so no
    output depends on a later input frame.
    """

    def __init__(
        self,
        num_heads=4,
        ff_size=1024,
        conv_kernel=31,
        dropout=0.1,
        causal=False,
        batch_norm=False,
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.ff_size = int(ff_size)
        self.conv_kernel = int(conv_kernel)
        self.dropout = float(dropout)
        self.causal = bool(causal)
        self.batch_norm = bool(batch_norm)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        if self.conv_kernel < 1:
            raise ValueError(f"conv_kernel must be >= 1, got {conv_kernel}")
        self.drop = keras.layers.Dropout(self.dropout, seed=seed) if self.dropout > 0 else None
        self.attention_drop = (
            keras.layers.Dropout(self.dropout, seed=seed) if self.dropout > 0 else None
        )

    def _norm(self, name):
        return keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name=name)

    def _dense(self, units, name):
        return keras.layers.Dense(units, kernel_regularizer=self.kernel_regularizer, name=name)

    def build(self, input_shape):
        self._built_input_shape = tuple(input_shape)
        d_model = input_shape[-1]
        if d_model % self.num_heads or (d_model // self.num_heads) % 2:
            raise ValueError(
                f"{self.num_heads} heads must divide d_model {d_model} into even head sizes "
                "(rotary positions rotate pairs)"
            )
        self.head_size = d_model // self.num_heads
        hidden = tuple(input_shape[:-1]) + (self.ff_size,)
        # Lists of layers (tracked by Keras, so saved); one entry per FFN.
        self.ff_norms = [self._norm(f"ff{i}_norm") for i in (1, 2)]
        self.ff_ins = [self._dense(self.ff_size, f"ff{i}_in") for i in (1, 2)]
        self.ff_outs = [self._dense(d_model, f"ff{i}_out") for i in (1, 2)]
        for norm, dense_in, dense_out in zip(self.ff_norms, self.ff_ins, self.ff_outs):
            norm.build(input_shape)
            dense_in.build(input_shape)
            dense_out.build(hidden)
        self.attention_norm = self._norm("attention_norm")
        self.qkv = self._dense(3 * d_model, "qkv")
        self.attention_out = self._dense(d_model, "attention_out")
        self.conv_norm = self._norm("conv_norm")
        self.conv_in = self._dense(2 * d_model, "conv_in")
        self.depthwise = keras.layers.DepthwiseConv1D(
            self.conv_kernel, padding="valid", depthwise_regularizer=self.kernel_regularizer,
            name="depthwise",
        )
        self.depthwise_norm = (
            keras.layers.BatchNormalization(momentum=0.9, epsilon=NORM_EPSILON, name="depthwise_batch_norm")
            if self.batch_norm
            else self._norm("depthwise_norm")
        )
        self.conv_out = self._dense(d_model, "conv_out")
        self.final_norm = self._norm("final_norm")
        for layer in (self.attention_norm, self.qkv, self.attention_out, self.conv_norm,
                      self.conv_in, self.depthwise, self.depthwise_norm, self.conv_out,
                      self.final_norm):
            layer.build(input_shape)

    def _dropped(self, h, training):
        return h if self.drop is None else self.drop(h, training=training)

    def _ffn(self, x, index, training):
        h = self.ff_ins[index](self.ff_norms[index](x))
        h = self._dropped(ops.silu(h), training)
        return x + 0.5 * self._dropped(self.ff_outs[index](h), training)

    def _attention(self, x, padding_mask, training):
        batch, frames = ops.shape(x)[0], ops.shape(x)[1]
        d_model = x.shape[-1]
        qkv = ops.reshape(self.qkv(self.attention_norm(x)),
                          (batch, frames, 3, self.num_heads, self.head_size))
        q, k, v = rotary(qkv[:, :, 0]), rotary(qkv[:, :, 1]), qkv[:, :, 2]
        # Scores in float32 even under mixed precision: the mask's large negative must not overflow.
        scores = ops.einsum("bqhd,bkhd->bhqk", ops.cast(q, "float32"), ops.cast(k, "float32"))
        scores = scores / math.sqrt(self.head_size)
        allowed = None
        if padding_mask is not None:
            allowed = ops.greater(padding_mask, 0.5)[:, None, None, :]
        if self.causal:
            position = ops.arange(frames)
            earlier = ops.greater_equal(position[:, None], position[None, :])[None, None]
            allowed = earlier if allowed is None else ops.logical_and(allowed, earlier)
        if allowed is not None:
            scores = ops.where(allowed, scores, -1e9)
        weights = ops.cast(ops.softmax(scores, axis=-1), v.dtype)
        if self.attention_drop is not None:
            weights = self.attention_drop(weights, training=training)
        h = ops.reshape(ops.einsum("bhqk,bkhd->bqhd", weights, v), (batch, frames, d_model))
        return x + self._dropped(self.attention_out(h), training)

    def _conv(self, x, padding_mask, training):
        h = self.conv_in(self.conv_norm(x))
        value, gate = ops.split(h, 2, axis=-1)
        h = value * ops.sigmoid(gate)
        if padding_mask is not None:
            # Padding must not leak into real frames through the depthwise kernel.
            h = h * ops.cast(padding_mask, h.dtype)[:, :, None]
        before = self.conv_kernel - 1 if self.causal else (self.conv_kernel - 1) // 2
        h = self.depthwise(ops.pad(h, ((0, 0), (before, self.conv_kernel - 1 - before), (0, 0))))
        if self.batch_norm:
            h = self.depthwise_norm(h, training=training)
        else:
            h = self.depthwise_norm(h)
        h = self.conv_out(ops.silu(h))
        return x + self._dropped(h, training)

    def call(self, inputs, padding_mask=None, training=None):
        x = self._ffn(inputs, 0, training)
        x = self._attention(x, padding_mask, training)
        x = self._conv(x, padding_mask, training)
        x = self._ffn(x, 1, training)
        return self.final_norm(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def temporal_reach(self) -> Reach:
        """Attention over the whole input, or the whole past when causal."""
        if self.causal:
            return Reach(unbounded_past=True)
        return Reach(unbounded_future=True,
                     why="attends over the whole input (full self-attention), so no emission is "
                     "final before the session ends",
                     fix="stream a causal conformer (model.causal=true)")

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ff_size": self.ff_size,
            "conv_kernel": self.conv_kernel,
            "dropout": self.dropout,
            "causal": self.causal,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
            "seed": self.seed,
        }
