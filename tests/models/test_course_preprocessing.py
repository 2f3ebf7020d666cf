"""The course reports' preprocessing as model options (model.electrode_start, electrode_count,
channels, downsample, anti_alias, minmax, lowpass_hz, random_crop): what each adds to a model, its
emission arithmetic, bad values, and a model trained with a subset and a lower rate through
evaluate, stream and export with the same preprocessing."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import ops

from emgtf import models
from emgtf.cli import evaluate, fit, run
from emgtf.cli import export as export_cli
from emgtf.cli import stream as stream_cli
from emgtf.errors import EmgtfError
from emgtf.inference.runners import keras_runner
from emgtf.inference.streaming import StreamingDecoder
from emgtf.models import frontend
from emgtf.models.emission import EmissionRule
from emgtf.models.hyperparameters import family_defaults
from emgtf.models.streaming import incremental_step, model_reach, state_layout
from tests.helpers import make_tiny_split, random_emg

TINY = dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4)


def kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def test_defaults_add_no_layer():
    model = models.build("tds_conv_ctc")
    assert models.trainable_parameters(model) == 5_293_315
    assert not {"MinMaxNormalization", "LowPassFilter", "Downsample", "ElectrodeSubset",
                "RandomTimeCrop"} & set(kinds(model))


def test_each_option_adds_its_layer_in_order():
    model = models.build("tds_conv_ctc", **TINY, minmax=True, lowpass_hz=30.0, lowpass_taps=33,
                         downsample=2, random_crop=40, electrode_start=2, electrode_count=10)
    order = [k for k in kinds(model) if k in {
        "MinMaxNormalization", "LowPassFilter", "Downsample", "LogSpectrogram", "RandomTimeCrop",
        "SpecAugment", "SpectrogramNorm", "ElectrodeSubset", "RotationInvariantMLP"}]
    assert order == ["MinMaxNormalization", "LowPassFilter", "Downsample", "LogSpectrogram",
                     "RandomTimeCrop", "SpecAugment", "SpectrogramNorm", "ElectrodeSubset",
                     "RotationInvariantMLP"]
    subset = model.get_layer("electrode_subset")
    assert subset.channels == list(range(2, 12))
    assert model.get_layer("lowpass").cutoff_hz == 30.0
    assert model.get_layer("downsample").anti_alias is True
    # The same parameters as without the options: dropped electrodes keep their (zeroed) slots.
    plain = models.build("tds_conv_ctc", **TINY)
    assert models.trainable_parameters(model) == models.trainable_parameters(plain)
    explicit = models.build("tds_conv_ctc", **TINY, electrodes=[5, 0, 9])
    assert explicit.get_layer("electrode_subset").channels == [0, 5, 9]


@pytest.mark.parametrize("norm, layer", [("batch", "SpectrogramNorm"), ("rolling", "RollingTimeNorm"),
                                         ("none", None)])
def test_the_electrode_subset_comes_after_each_norm_and_none(norm, layer):
    """SplashNet's norm='none' ablation and the subset together: the subset reads the spectrogram
    (no norm) directly, and its zeros reach the front."""
    model = models.build("splashnet", mlp_features=[16], block_channels=[4, 4], kernel_width=4,
                         norm=norm, electrode_count=8)
    order = [k for k in kinds(model) if k in {"LogSpectrogram", "SpectrogramNorm", "RollingTimeNorm",
                                              "ElectrodeSubset"}]
    assert order == ["LogSpectrogram", *([layer] if layer else []), "ElectrodeSubset"]
    before = type(model.get_layer("electrode_subset").input._keras_history[0]).__name__
    assert before == layer if layer else before not in {"SpectrogramNorm", "RollingTimeNorm"}
    probe = keras.Model(model.input, model.get_layer("electrode_subset").output)
    out = keras.ops.convert_to_numpy(probe(random_emg(1, 800)))
    assert np.all(out[:, :, :, 8:] == 0) and np.all(out[:, :, :, :8] != 0)


@pytest.mark.parametrize("hp", [
    dict(downsample=2, anti_alias=False), dict(downsample=4), dict(lowpass_hz=30.0),
    dict(lowpass_hz=100.0, lowpass_taps=65, downsample=2), dict(downsample=2, hop_length=8),
])
def test_emission_rule_counts_filters_and_downsampling_in_input_samples(hp):
    model = models.build("tds_conv_ctc", **TINY, **hp)
    rule = EmissionRule.from_model(model)
    assert (rule.n_fft, rule.hop_length) == frontend.sample_geometry({**family_defaults("tds_conv_ctc"), **hp})
    assert rule.hop_length == hp["downsample"] * hp.get("hop_length", 16) if "downsample" in hp \
        else rule.hop_length == 16
    first = rule.samples_for(1)
    assert rule.emissions(first - 1) == int(models.emission_lengths(model, first - 1)) == 0
    for samples in (first, first + rule.hop_length - 1, first + rule.hop_length, 3001, 4567):
        out = model(random_emg(1, samples))
        assert out.shape[1] == rule.emissions(samples) == int(models.emission_lengths(model, samples))


def test_frame_rate_with_downsampling_is_documented_rate():
    # Every other sample, hop 16 at 1 kHz: 62.5 frames a second; hop 8 keeps 125.
    assert EmissionRule.from_model(models.build("tds_conv_ctc", **TINY, downsample=2)).emission_rate == 62.5
    assert EmissionRule.from_model(
        models.build("tds_conv_ctc", **TINY, downsample=2, hop_length=8)).emission_rate == 125.0


def test_dropped_electrodes_do_not_reach_the_output_kept_ones_do():
    keras.utils.set_random_seed(1)
    model = models.build("tds_conv_ctc", **TINY, electrode_count=6)
    x = random_emg(1, 3000, seed=1)
    out = ops.convert_to_numpy(model(x))
    changed = x.copy()
    changed[:, :, :, 6:] = random_emg(1, 3000, seed=2)[:, :, :, 6:]
    np.testing.assert_array_equal(ops.convert_to_numpy(model(changed)), out)
    changed = x.copy()
    changed[:, :, 1, 5] *= 3
    assert not np.allclose(ops.convert_to_numpy(model(changed)), out)


@pytest.mark.parametrize("hp, message", [
    (dict(electrode_start=16), "hyperparameter 'electrode_start': expected an electrode index in 0..15"),
    (dict(electrode_start=-1), "'electrode_start'"),
    (dict(electrode_count=0), "hyperparameter 'electrode_count': electrodes 0..0+0-1 are not"),
    (dict(electrode_start=10, electrode_count=8), "'electrode_count': electrodes 10..10+8-1 are not a non-empty range in 0..15"),
    (dict(electrodes=[]), "hyperparameter 'electrodes': expected distinct electrode indices in 0..15"),
    (dict(electrodes=[3, 16]), "'electrodes'"),
    (dict(electrodes=[1], electrode_start=2), "give electrodes or electrode_start / electrode_count, not both"),
    (dict(lowpass_hz=1000), "hyperparameter 'lowpass_hz': 1000 Hz is not below the Nyquist frequency (1000 Hz)"),
    (dict(lowpass_hz=-5.0), "'lowpass_hz': expected a cutoff in Hz > 0"),
    (dict(downsample=0), "hyperparameter 'downsample': expected an integer >= 1"),
    (dict(lowpass_hz=30.0, lowpass_taps=255), "hyperparameter 'lowpass_taps': expected 1 + a "
     "multiple of the frame hop (16 input samples), so that a frame reads whole hops (streaming), "
     "e.g. 257; got 255"),
    (dict(random_crop=-1), "hyperparameter 'random_crop'"),
    (dict(minmax="yes"), "hyperparameter 'minmax': expected true or false"),
])
def test_bad_values_are_one_line_naming_the_key(hp, message):
    with pytest.raises(EmgtfError) as error:
        models.build("tds_conv_ctc", **TINY, **hp)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_window_too_short_for_the_factor_and_crop_too_long_name_the_key():
    model = models.build("tds_conv_ctc", downsample=4)
    rule = EmissionRule.from_model(model)
    with pytest.raises(EmgtfError, match=r"^model.downsample=4: a training window of 8000 samples .*"
                                         r"keeps 2000 samples, fewer than model"):
        frontend.check_preprocessing_fits(model, rule, 8000)
    frontend.check_preprocessing_fits(model, rule, rule.samples_for(1))
    cropped = models.build("tds_conv_ctc", random_crop=512)
    rule = EmissionRule.from_model(cropped)
    with pytest.raises(EmgtfError, match=r"^model.random_crop=512: not shorter than the 497 "
                                         "spectrogram frames of a training window of 8000 samples"):
        frontend.check_preprocessing_fits(cropped, rule, 8000)
    frontend.check_preprocessing_fits(cropped, rule, 10000)  # 622 frames
    short = models.build("tds_conv_ctc", random_crop=100)
    with pytest.raises(EmgtfError, match="model.random_crop=100: model 'tds_conv_ctc' emits nothing"):
        frontend.check_preprocessing_fits(short, EmissionRule.from_model(short), 10000)


@pytest.mark.parametrize("hp", [dict(downsample=2, anti_alias=False), dict(downsample=2),
                                dict(lowpass_hz=30.0, lowpass_taps=65, downsample=4),
                                dict(electrode_count=9, downsample=2)])
def test_incremental_step_with_filters_gives_the_whole_session_emissions(hp):
    keras.utils.set_random_seed(8)
    model = models.build("tds_conv_ctc", **TINY, **hp)
    layout = state_layout(model)
    rule = EmissionRule.from_model(model)
    hop = layout.hop_length
    assert hop == rule.hop_length and rule.n_fft % hop == 0
    emg = random_emg(1, 60 * hop + 10, seed=8)[0]  # the 10 samples after the last hop give nothing
    offline = keras_runner(model).log_probs(emg)
    state, outputs, start = ops.convert_to_tensor(layout.initial_state()), [], 0
    for hops in [1, 7, 2, 40, 10]:
        state, log_probs = incremental_step(model, layout, state, emg[start : start + hops * hop])
        assert tuple(log_probs.shape) == (hops, 99)
        outputs.append(ops.convert_to_numpy(log_probs))
        start += hops * hop
    streamed = np.concatenate(outputs)[layout.warmup_emissions :]
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


def test_minmax_cannot_stream_one_line():
    model = models.build("tds_conv_ctc", **TINY, minmax=True)
    with pytest.raises(EmgtfError) as error:
        model_reach(model)
    text = str(error.value)
    assert "layer 'minmax' (MinMaxNormalization) scales each channel by the minimum and maximum of " \
        "the whole input (model.minmax=true)" in text and "\n" not in text
    with pytest.raises(EmgtfError, match="MinMaxNormalization"):
        StreamingDecoder.from_model(model)


# --- trained, then evaluated, streamed and exported -------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny TDS trained one epoch on 6 of each band's electrodes at 1 kHz (anti-aliased)."""
    root = tmp_path_factory.mktemp("course")
    data = make_tiny_split(root / "data", num_samples=8000)
    run_dir = root / "run"
    overrides = [
        f"data.root={data[0]}", f"data.split={data[1]}", f"run_dir={run_dir}", "logger=none",
        "model=tds_conv_ctc", "model.mlp_features=[16]", "model.block_channels=[4,8]",
        "model.kernel_width=4", "model.spec_augment=false", "augment=none",
        "model.electrode_count=6", "model.downsample=2",
        "trainer.epochs=1", "trainer.batch_size=4", "trainer.window_length=2000",
        "trainer.padding=[200,100]", "trainer.val_batch_size=8", "trainer.verbose=0",
    ]
    assert fit.main(overrides) == 0
    return {"root": root, "run": run_dir, "session": data[0] / "test.hdf5"}


@pytest.mark.slow
def test_trained_model_evaluates_streams_and_exports_with_its_preprocessing(trained, capsys):
    checkpoint = trained["run"] / "best.keras"
    model = keras.saving.load_model(checkpoint, compile=False)
    assert model.get_layer("electrode_subset").channels == list(range(6))
    assert model.get_layer("downsample").factor == 2
    report = trained["root"] / "eval.json"
    assert run(evaluate.main, "emgtf.evaluate", [f"checkpoint={checkpoint}", f"output={report}"]) == 0
    assert json.loads(report.read_text())["overall"]["CER"] >= 0
    # Streamed: the incremental step (hops of 32 input samples) gives the whole-session emissions.
    from emgtf.data import EMGSession

    with EMGSession(trained["session"]) as session:
        emg = session.read()
    offline = keras_runner(model).log_probs(emg)
    streamer = StreamingDecoder.load(checkpoint)
    assert streamer.step is not None and streamer.rule.hop_length == 32
    parts = [streamer.push(emg[s : s + 100]).log_probs for s in range(0, len(emg), 100)]
    parts.append(streamer.finish().log_probs)
    np.testing.assert_allclose(np.concatenate(parts), offline, atol=1e-5)
    capsys.readouterr()
    assert run(stream_cli.main, "emgtf.stream", ["--model", str(checkpoint), str(trained["session"])]) == 0
    assert "CER: " in capsys.readouterr().out
    # Exported: the SavedModel (checked against the Keras model by the export itself) and its
    # streaming step, which needs chunks of whole 32-sample hops.
    out = trained["root"] / "exported"
    argv = [f"checkpoint={checkpoint}", f"out={out}", "streaming=true", "stream_chunk_samples=96"]
    assert run(export_cli.main, "emgtf.export", argv) == 0
    doc = json.loads((out / "export.json").read_text())
    assert doc["verification"]["max_abs_log_prob_difference"] < 1e-4
    assert doc["verification"]["stream_step_max_abs_log_prob_difference"] < 1e-4
    assert doc["emission"]["hop_length"] == 32
    import tensorflow as tf

    served = tf.saved_model.load(str(out)).signatures["serving_default"](emg=tf.constant(emg[None]))
    np.testing.assert_allclose(served["log_probs"].numpy()[0], offline, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("fmt, hp", [
    ("onnx", dict(downsample=2, lowpass_hz=30.0, lowpass_taps=33, electrode_count=8)),
    ("tflite", dict(downsample=2, anti_alias=False, electrode_count=8)),
])
def test_onnx_and_tflite_exports_run_the_preprocessing(fmt, hp, tmp_path):
    """ONNX computes the spectrogram itself (as a DFT) after the model's own filters; TFLite is the
    streaming step, in chunks of whole 32-sample hops. Each export checks itself against Keras."""
    from emgtf.export import export_model

    keras.utils.set_random_seed(4)
    model = models.build("tds_conv_ctc", **TINY, **hp)
    extra = {"stream_chunk_samples": 64, "tflite_int8": "none"} if fmt == "tflite" else {}
    if fmt == "tflite":
        with pytest.raises(EmgtfError, match=r"stream_chunk_samples must be a positive multiple of "
                                             r"the hop length \(32 samples\), got 80"):
            export_model(model, tmp_path / "bad", fmt, stream_chunk_samples=80)
    doc = export_model(model, tmp_path / fmt, fmt, **extra)
    assert doc["emission"]["hop_length"] == 32
    if fmt == "onnx":
        assert doc["verification"]["max_abs_log_prob_difference"] < 1e-3
        return
    from emgtf.export.stream_step import StepLayout, run_step_stream, tflite_step

    layout = StepLayout.from_json(doc["streaming"], "export.json")
    emg = random_emg(1, 64 * 40, seed=9)[0]
    offline = keras_runner(model).log_probs(emg)
    streamed = run_step_stream(tflite_step(tmp_path / fmt / "model.tflite", None), layout, emg,
                               len(offline))
    np.testing.assert_allclose(streamed, offline, atol=1e-4)


def test_transformer_padding_mask_counts_the_downsampling():
    # Its mask marks the frames whose input samples reach the zero padding: in input samples, a
    # frame reads 192 of them every 32 here, not the spectrogram's own 64 every 16.
    keras.utils.set_random_seed(2)
    model = models.build("transformer", mlp_features=[16], d_model=16, num_heads=2, num_layers=1,
                         ff_size=32, conv_kernel=0, downsample=2)
    x = random_emg(1, 3000, seed=3)
    for samples in (1500, 1530):
        padded = np.zeros_like(x)
        padded[:, :samples] = x[:, :samples]
        alone = ops.convert_to_numpy(model(x[:, :samples], training=False))[0]
        batched = ops.convert_to_numpy(model(np.concatenate([x, padded]), training=False))[1]
        frames = int(models.emission_lengths(model, samples))
        assert alone.shape[0] == frames == EmissionRule.from_model(model).emissions(samples)
        np.testing.assert_allclose(batched[:frames], alone, atol=1e-4)
