"""The model zoo: shapes, output lengths, training, serialisation, regularisers, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from emgtf import models
from emgtf.errors import EmgtfError
from emgtf.models.ctc import CTCLoss, pack_targets
from emgtf.cli.models import main as models_main

FAMILIES = ["tds_conv_ctc", "rnn", "tcn", "tds_rnn", "conv_resnet", "transformer", "conformer", "splashnet",
            "splashnet_mini"]

# Small enough to build and run in well under a second each; every structural option that the
# family has is switched on (GRU on the ConvResNet, conformer module on the transformer).
TINY = {
    "tds_conv_ctc": dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4),
    "rnn": dict(mlp_features=[16], hidden_size=8, num_layers=2),
    "tcn": dict(mlp_features=[16], hidden_size=16, num_layers=3),
    "tds_rnn": dict(
        mlp_features=[16], block_channels=[4], kernel_width=5, cell="gru", hidden_size=8
    ),
    "conv_resnet": dict(mlp_features=[16], channels=16, num_blocks=2, kernel_size=3, gru_size=8),
    "transformer": dict(
        mlp_features=[16], d_model=16, num_heads=2, num_layers=2, ff_size=32, conv_kernel=3
    ),
    "conformer": dict(mlp_features=[16], d_model=16, num_heads=2, num_layers=2, ff_size=32, conv_kernel=3),
    "splashnet": dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4),
    "splashnet_mini": dict(mlp_features=[16], block_channels=[4, 4], kernel_width=4),
}

LENGTHS = [1000, 1111, 1500]  # samples; a spread of frame counts and parities


def tiny(name, **overrides):
    return models.build(name, **{**TINY[name], **overrides})


def emg(batch, samples, seed=0):
    # White noise of std 2.5: the scale of real emg2qwerty signals (DATA.md).
    return np.random.default_rng(seed).normal(0.0, 2.5, (batch, samples, 2, 16)).astype("float32")


def kernel_weights(model):
    return [w for w in model.trainable_weights if "kernel" in w.name]


def test_available_lists_the_families():
    assert models.available() == FAMILIES


def test_each_family_is_a_family_object_in_the_module_named_after_it():
    import importlib
    from pathlib import Path

    from emgtf.models.splashnet import SPLASHNET, SPLASHNET_MINI

    modules = {p.stem for p in Path(models.__file__).parent.glob("*.py")}
    variants = {SPLASHNET.name: SPLASHNET, SPLASHNET_MINI.name: SPLASHNET_MINI}
    for name in models.available():
        if name in variants:  # settings of tds_conv_ctc, declared together in splashnet.py
            assert models._family(name) is variants[name]
            continue
        assert name in modules, f"family {name!r} has no module emgtf/models/{name}.py"
        family = importlib.import_module(f"emgtf.models.{name}").FAMILY
        assert isinstance(family, models.Family) and family.name == name
        assert models._family(name) is family


def test_baseline_has_meta_parameter_count_and_structure():
    model = models.build("tds_conv_ctc")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 5_293_315
    assert model.name == "tds_conv_ctc"
    assert [layer.name for layer in model.layers if "tds" in layer.name] == [
        f"tds_{kind}_{i}" for i in range(1, 5) for kind in ("conv", "fc")
    ]
    # Meta's rule: each of the four 32-frame convolutions drops 31 frames.
    frames = 1 + (10_000 - 64) // 16
    assert models.emission_lengths(model, 10_000) == frames - 124
    assert models.emission_rule("tds_conv_ctc") == "frames - 124"
    # The defaults are Meta's recipe: no extra regularisation.
    assert not model.losses
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_gives_log_distribution_of_predicted_length(name):
    model = tiny(name)
    assert model.name == name
    assert model.input.name == "emg"
    for samples in LENGTHS:
        out = ops.convert_to_numpy(model(emg(2, samples), training=False))
        assert out.shape == (2, models.emission_lengths(model, samples), 99)
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(np.log(np.exp(out.astype(np.float64)).sum(-1)), 0.0, atol=1e-5)
    # Every kind of length goes through: numpy arrays and tensors give the same numbers.
    expected = [models.emission_lengths(model, n) for n in LENGTHS]
    assert models.emission_lengths(model, np.array(LENGTHS)).tolist() == expected
    tensor = models.emission_lengths(model, ops.convert_to_tensor(np.array(LENGTHS, "int32")))
    assert ops.convert_to_numpy(tensor).tolist() == expected


@pytest.mark.parametrize("name", FAMILIES)
def test_keras_round_trip_keeps_outputs_and_emission_lengths(name, tmp_path):
    # Optional parts switched on too, so that their sublayers' state must survive the reload.
    model = tiny(
        name,
        temporal_crop=5,
        front="dense" if name == "tcn" else "rotation_mlp",
        batch_norm=name in ("tds_conv_ctc", "transformer"),
        dropout=0.1,
    )
    x = emg(2, 1100, seed=1)
    before = ops.convert_to_numpy(model(x, training=False))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == name
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(x, training=False)), before)
    for samples in LENGTHS:
        out = loaded(emg(1, samples), training=False)
        assert out.shape[1] == models.emission_lengths(loaded, samples)


def test_short_inputs_give_zero_frames_not_negative():
    model = tiny("tds_conv_ctc")  # loses 2 x 3 frames after the spectrogram
    assert models.emission_lengths(model, 10) == 0
    assert models.emission_lengths(model, np.array([10, 64 + 16 * 6])).tolist() == [0, 1]
    assert type(models.emission_lengths(model, 500)) is int


def _ctc_batch(model, batch=4, samples=1200, label_length=5, seed=0):
    rng = np.random.default_rng(seed)
    x = emg(batch, samples, seed)
    labels = rng.integers(0, 98, (batch, label_length))
    y = pack_targets(
        [models.emission_lengths(model, samples)] * batch, labels, [label_length] * batch
    )
    return x, y


# The recurrent and attention families train slowly on 2 cores: their training steps run with -m slow.
QUICK_TO_TRAIN = ("tds_conv_ctc", "tcn", "splashnet_mini")


@pytest.mark.parametrize(
    "name", [n if n in QUICK_TO_TRAIN else pytest.param(n, marks=pytest.mark.slow) for n in FAMILIES]
)
def test_training_steps_with_ctc_loss_lower_the_loss(name):
    keras.utils.set_random_seed(0)
    model = tiny(name, spec_augment=False)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=CTCLoss())
    x, y = _ctc_batch(model)
    before = model.evaluate(x, y, verbose=0)
    for _ in range(15):
        model.train_on_batch(x, y)
    after = model.evaluate(x, y, verbose=0)
    assert np.isfinite(before) and np.isfinite(after)
    assert after < 0.8 * before


@pytest.mark.parametrize("name", FAMILIES)
def test_weight_penalties_cover_exactly_the_kernels(name):
    for l1, l2 in [(0.0, 1e-3), (1e-4, 0.0), (1e-5, 1e-4)]:  # L2, L1, elastic net
        model = tiny(name, l1=l1, l2=l2)
        kernels = kernel_weights(model)
        assert len(model.losses) == len(kernels) > 0
        values = [ops.convert_to_numpy(w) for w in kernels]
        expected = sum(l1 * np.abs(v).sum() + l2 * np.square(v).sum() for v in values)
        total = sum(float(ops.convert_to_numpy(loss)) for loss in model.losses)
        np.testing.assert_allclose(total, expected, rtol=1e-5)
    assert not tiny(name).losses


@pytest.mark.parametrize("name", FAMILIES)
def test_dropout_and_batch_norm_switch_on(name):
    x = emg(2, 1000)

    def two_training_calls(model):
        return [ops.convert_to_numpy(model(x, training=True)) for _ in range(2)]

    plain = tiny(name, spec_augment=False, dropout=0.0, batch_norm=False)
    a, b = two_training_calls(plain)
    np.testing.assert_allclose(a, b, atol=1e-6)
    dropped = tiny(name, spec_augment=False, dropout=0.5, batch_norm=False)
    a, b = two_training_calls(dropped)
    assert np.abs(a - b).max() > 1e-3

    def batch_norms(model):
        return sum(isinstance(x, keras.layers.BatchNormalization) for x in _all_layers(model))

    assert batch_norms(tiny(name, batch_norm=True)) > batch_norms(plain)


def _all_layers(layer):
    yield layer
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        yield sub


def test_spec_augment_and_temporal_crop_are_switchable():
    names = {layer.name for layer in tiny("rnn", spec_augment=False).layers}
    assert "spec_augment" not in names and "temporal_crop" not in names
    names = {layer.name for layer in tiny("rnn", temporal_crop=10).layers}
    assert {"spec_augment", "temporal_crop", "spectrogram_norm"} <= names


def test_dense_front_has_the_width_of_the_rotation_mlp():
    dense = tiny("rnn", front="dense")
    assert "flatten_bands" in {layer.name for layer in dense.layers}
    assert dense.get_layer("front_dense_1").output.shape[-1] == 32  # 2 bands x 16
    assert tiny("rnn").get_layer("rotation_mlp").output.shape[-1] == 32


def test_transformer_padding_mask_makes_batching_invisible():
    model = tiny("transformer")
    x = emg(1, 2000, seed=3)
    for samples in (1500, 1517):  # both parities of the frame count
        padded = np.zeros_like(x)
        padded[:, :samples] = x[:, :samples]
        alone = ops.convert_to_numpy(model(x[:, :samples], training=False))[0]
        batched = ops.convert_to_numpy(model(np.concatenate([x, padded]), training=False))[1]
        frames = models.emission_lengths(model, samples)
        assert alone.shape[0] == frames
        np.testing.assert_allclose(batched[:frames], alone, atol=1e-4)
    unmasked = tiny("transformer", padding_mask=False)
    alone = ops.convert_to_numpy(unmasked(x[:, :1500], training=False))[0]
    batched = ops.convert_to_numpy(unmasked(np.concatenate([x, padded]), training=False))[1]
    assert np.abs(batched[: len(alone)] - alone).max() > 1e-2


def test_transformer_subsampling_lengths():
    for factor in (1, 2, 4):
        model = tiny("transformer", subsampling=factor, conv_kernel=0)
        for samples in LENGTHS:
            frames = 1 + (samples - 64) // 16
            assert models.emission_lengths(model, samples) == -(-frames // factor)
            assert model(emg(1, samples), training=False).shape[1] == -(-frames // factor)


def test_rnn_subsampling_lengths_and_round_trip(tmp_path):
    model = tiny("rnn", subsampling=4)
    for samples in LENGTHS:
        frames = 1 + (samples - 64) // 16
        assert models.emission_lengths(model, samples) == -(-frames // 4)
        assert model(emg(1, samples), training=False).shape[1] == -(-frames // 4)
    path = tmp_path / "rnn_sub4.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    x = emg(2, 1500)
    np.testing.assert_allclose(reloaded(x, training=False), model(x, training=False), atol=1e-6)
    assert models.emission_lengths(reloaded, 1500) == models.emission_lengths(model, 1500)
    with pytest.raises(EmgtfError, match="subsampling"):
        tiny("rnn", subsampling=3)


def test_unknown_and_invalid_hyperparameters_are_one_line_errors():
    with pytest.raises(EmgtfError, match=r"model 'rnn': unknown hyperparameter 'hidden'"):
        models.build("rnn", hidden=3)
    with pytest.raises(EmgtfError, match=r"unknown model 'lstm'.*tds_conv_ctc"):
        models.build("lstm")
    with pytest.raises(EmgtfError, match=r"'tds_conv_ctc'.*'block_channels'.*does not divide"):
        models.build("tds_conv_ctc", block_channels=[25])
    with pytest.raises(EmgtfError, match=r"'rnn'.*'cell'"):
        models.build("rnn", cell="transformer")
    with pytest.raises(EmgtfError, match=r"'transformer'.*'subsampling'"):
        models.build("transformer", subsampling=3)
    with pytest.raises(EmgtfError, match=r"'tcn'.*'dropout'"):
        models.build("tcn", dropout=1.5)
    with pytest.raises(EmgtfError, match=r"'tcn'.*'front'"):
        models.build("tcn", front="cnn")


def test_default_hyperparameters_are_complete_and_fresh():
    for name in FAMILIES:
        hp = models.default_hyperparameters(name)
        for key in ("n_fft", "hop_length", "spec_augment", "temporal_crop", "dropout",
                    "batch_norm", "l2", "l1", "front", "mlp_features", "norm", "spectrum"):
            assert key in hp
        before = list(hp["mlp_features"])
        hp["mlp_features"].append(1)
        assert models.default_hyperparameters(name)["mlp_features"] == before
    assert models.default_hyperparameters("tds_conv_ctc")["mlp_features"] == [384]
    assert models.default_hyperparameters("splashnet")["mlp_features"] == [528]
    assert models.default_hyperparameters("rnn")["dropout"] == 0.2
    assert models.default_hyperparameters("tds_conv_ctc")["block_channels"] == [24] * 4


def test_summary_names_the_layers():
    lines = []
    tiny("tds_rnn").summary(print_fn=lambda line, **_: lines.append(line))
    text = "\n".join(lines)
    for name in ("log_spectrogram", "rotation_mlp", "tds_conv_1", "rnn_1", "classifier"):
        assert name in text


def test_cli_table_lists_every_family_with_its_parameters(capsys):
    assert models_main([]) == 0
    out = capsys.readouterr().out
    assert "5,293,315" in out
    for name in FAMILIES:
        assert name in out
    assert "frames - 124" in out


def test_splashnet_shares_one_encoder_between_the_hands_and_matches_its_parameter_counts():
    assert abs(models.build("splashnet").count_params() / 5_293_315 - 0.5) < 0.05
    assert abs(models.build("splashnet_mini").count_params() / 5_293_315 - 0.25) < 0.03
    model = tiny("splashnet")
    names = [layer.name for layer in model.layers]
    assert {"spectrum_bands", "rolling_time_norm", "fold_hands", "unfold_hands"} <= set(names)
    assert "spectrogram_norm" not in names
    # Swapping the hands swaps the halves of the features the classifier sees: with one shared
    # encoder, the right hand's features computed alone equal the left's of the mirrored input.
    x = emg(1, 1200)
    probe = keras.Model(model.input, model.get_layer("unfold_hands").output)
    a = ops.convert_to_numpy(probe(x))
    b = ops.convert_to_numpy(probe(x[:, :, ::-1]))
    np.testing.assert_allclose(a[..., :16], b[..., 16:], atol=1e-4)


def test_each_splashnet_change_is_one_override_of_the_baseline():
    for overrides, layer in ((dict(norm="rolling"), "rolling_time_norm"), (dict(spectrum="6band"), "spectrum_bands"),
                             (dict(share_hands=True), "fold_hands")):
        names = [lay.name for lay in tiny("tds_conv_ctc", **overrides).layers]
        assert layer in names, overrides


def test_unsharing_the_hands_keeps_the_outputs_then_trains_each_hand_apart():
    keras.utils.set_random_seed(3)
    shared = tiny("splashnet_mini", spec_augment=False)
    unshared = tiny("splashnet_mini", spec_augment=False, share_hands=False)
    names = {layer.name for layer in unshared.layers}
    assert {"split_hands", "hand0_tds_conv_1", "hand1_tds_fc_2", "join_hands"} <= names
    assert "fold_hands" not in names
    models.initialize_from(unshared, shared)
    x = emg(2, 1200)
    np.testing.assert_allclose(ops.convert_to_numpy(unshared(x)), ops.convert_to_numpy(shared(x)), atol=1e-6)
    # Every weight of the shared MLP and TDS stack now exists once per hand; the classifier once.
    per_hand = shared.get_layer("rotation_mlp").count_params() + sum(
        layer.count_params() for layer in shared.layers if layer.name.startswith("tds_"))
    assert unshared.count_params() == shared.count_params() + per_hand
    unshared.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CTCLoss(), run_eagerly=True)  # one step: no tracing
    xb, yb = _ctc_batch(unshared)
    before = {w.path: ops.convert_to_numpy(w) for w in unshared.trainable_weights}
    unshared.train_on_batch(xb, yb)

    def step(layer_name):  # the change of the layer's first weight (its kernel)
        kernel = unshared.get_layer(layer_name).trainable_weights[0]
        return ops.convert_to_numpy(kernel) - before[kernel.path]

    for name in ("tds_conv_1", "tds_fc_2"):
        left, right = step(f"hand0_{name}"), step(f"hand1_{name}")
        assert np.abs(left).max() > 0 and np.abs(right).max() > 0
        assert np.abs(left - right).max() > 1e-6, name
    mlp = unshared.get_layer("rotation_mlp")
    moved = ops.convert_to_numpy(mlp.kernels[0]) - before[mlp.kernels[0].path]
    assert np.abs(moved[0] - moved[1]).max() > 1e-6


def test_unsharing_refuses_a_model_that_differs_otherwise():
    shared = tiny("splashnet_mini")
    with pytest.raises(EmgtfError, match="hand0_tds_conv_1"):
        models.initialize_from(tiny("splashnet_mini", share_hands=False, block_channels=[8, 8]), shared)
    with pytest.raises(ValueError):  # joint hands (the baseline): nothing to un-share into
        models.initialize_from(tiny("splashnet_mini", share_hands=False, split_hands=False), shared)


def test_conformer_is_sized_like_the_baseline_and_its_causal_option_never_reads_ahead():
    assert abs(models.build("conformer").count_params() / 5_293_315 - 1) < 0.1
    x = emg(1, 1600)
    later = x.copy()
    later[:, 1000:] = emg(1, 600, seed=7)
    # Spectrogram frames whose 64-sample windows end before sample 1000: 0 .. 58; at 2x
    # subsampling, emissions 0 .. 29 read only those.
    for causal in (True, False):
        model = tiny("conformer", causal=causal, dropout=0.0)
        a = ops.convert_to_numpy(model(x, training=False))
        b = ops.convert_to_numpy(model(later, training=False))
        early = np.abs(a[:, :30] - b[:, :30]).max()
        assert (early < 1e-5) if causal else (early > 1e-3), (causal, early)
        assert np.abs(a[:, 40:] - b[:, 40:]).max() > 1e-3
    names = {layer.name for layer in tiny("conformer", causal=True).layers}
    assert "padding_mask" not in names and "frame_mask" not in names
