"""The model layer: the bundle API (encode, decode, reconstruct, prior sampling), bundle validation
on load, and training (atomic bundles, seeds, refusing to overwrite).

Every model here is a tiny real one trained in seconds (tests/tiny_model.py, or trained in the
test on harmonic tones), so these tests check behaviour, not quality.
"""
from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import specsynth
from conftest import REPO, folder_snapshot, harmonic_tone, noise_burst
from specsynth import BundleError, ConfigError, OutputError, phase, spectral
from specsynth.pitch import midi_to_hz
from tiny_model import PITCHES, PROGRAMS, tiny_bundle_fixture

tiny_bundle = tiny_bundle_fixture()


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return specsynth.load(tiny_bundle)


@pytest.fixture(scope="module")
def keras():
    from specsynth.model._keras import keras

    return keras


def tone(midi, seconds=1.0):
    return harmonic_tone(float(midi_to_hz(midi)), seconds)


def glide(start, end, seconds=1.0, sr=16000):
    """A harmonic tone whose pitch glides linearly in MIDI from ``start`` to ``end``."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(midi_to_hz(np.linspace(start, end, len(t)))) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 7))
    return (0.3 * x * np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)).astype(np.float32)


def contour_columns(midi, frames=1, voicing=1.0):
    """``[1, frames, 2]`` contour columns at a steady ``midi`` (f0, voicing)."""
    return np.tile(np.array([[[midi, voicing]]], np.float32), (1, frames, 1))


# ---------------------------------------------------------------------------------------------
# The decoder's output layer


def output_layer(config):
    from specsynth.model.vae import SpectrumOutput

    return SpectrumOutput(config.to_dict(), db_offset=0.0, db_scale=1.0)


def spectrum_frame(config, midi, keras):
    """One frame from a fresh SpectrumOutput with every Dense at its zero start (in dB)."""
    layer = output_layer(config)
    return np.asarray(layer([np.zeros((1, 1, 8), np.float32), contour_columns(midi)]))[0, 0]


@pytest.mark.parametrize("midi", [40, 57, 69, 84])
def test_spectrum_output_draws_partials_at_the_harmonics_of_the_contour(keras, midi):
    config = spectral.SpectralConfig()
    frame = spectrum_frame(config, midi, keras)
    assert frame.shape == (config.n_bins,) and np.all(frame >= config.db_floor)
    bin_hz = config.sample_rate / config.n_fft
    f0 = float(midi_to_hz(midi))
    n = np.arange(1, int(config.sample_rate / 2 / f0) + 1)
    stretch = 1e-3 / (1 + np.exp(4.0))  # the layer's starting stretch: sigmoid(-4) * 1e-3
    partials = n * f0 * np.sqrt(1 + stretch * n**2) / bin_hz
    partials = partials[partials < config.n_bins - 1]
    peaks = [k for k in range(1, config.n_bins - 1)
             if frame[k] > frame.max() - 6 and frame[k] >= frame[k - 1] and frame[k] >= frame[k + 1]]
    # one strong peak per partial, each at most half a bin from it; the first ones on exact harmonics
    assert len(partials) - 1 <= len(peaks) <= len(partials) + 1
    assert all(np.min(np.abs(partials - k)) <= 0.5 for k in peaks)
    assert all(np.min(np.abs(n[:5] * f0 / bin_hz - k)) <= 0.5 for k in peaks[:5])
    # between the first two partials (where a half-partial starts quiet) the frame falls far below them
    midway = int(np.round(1.5 * f0 / bin_hz))
    assert frame[midway] < frame[int(np.round(f0 / bin_hz))] - 20


def test_spectrum_output_follows_a_fractional_contour(keras):
    # a quarter tone up moves the first partial by 2.9 % of its frequency, to the bin the contour says
    config = spectral.SpectralConfig(n_fft=4096, hop=1024)
    bin_hz = config.sample_rate / config.n_fft
    for midi in (57.0, 57.5):
        frame = spectrum_frame(config, midi, keras)
        first = int(np.argmax(frame[: int(1.3 * midi_to_hz(midi) / bin_hz)]))
        assert abs(first - midi_to_hz(midi) / bin_hz) <= 0.5


def test_spectrum_outputs_residual_draws_partials_that_are_not_harmonics(keras):
    # a bell's partials (here at 1, 2.76 and 5.40 times 400 Hz) lie off any harmonic series: the
    # residual draws them at their own bins, whatever the contour's f0
    config = spectral.SpectralConfig()
    layer = output_layer(config)
    h = np.zeros((1, 1, 8), np.float32)
    layer([h, contour_columns(60)])
    bin_hz = config.sample_rate / config.n_fft
    bins = np.round(np.array([400.0, 1104.0, 2160.0]) / bin_hz).astype(int)
    kernel, bias = layer.residual.get_weights()
    bias[bins] = 1.5  # 20 * 1.5 - 40 = -10 dB
    layer.residual.set_weights([kernel, bias])
    slots_kernel, slots_bias = layer.slots.get_weights()
    layer.slots.set_weights([slots_kernel, np.full_like(slots_bias, -8.0)])  # partials 80 dB down
    frame = np.asarray(layer([h, contour_columns(60)]))[0, 0]
    np.testing.assert_allclose(frame[bins], -10.0, atol=0.5)
    others = np.delete(frame, bins)
    assert others.max() < -40


def test_spectrum_output_bounds_a_frames_power_whatever_the_network_says(keras):
    # Latents far from the data drive every Dense far out; each part stays under its ceiling and
    # the frame's power under that of a full-scale sine 6 dB down (noise at that power peaks near
    # +6 dBFS), softly, while a real sound's frame well below it passes unchanged
    from specsynth.model.vae import FRAME_CEILING_DB, SINE_FRAME_POWER

    config = spectral.SpectralConfig()
    layer = output_layer(config)
    quiet = np.asarray(layer([np.zeros((1, 1, 8), np.float32), contour_columns(60)]))[0, 0]
    rng = np.random.default_rng(0)
    loud = np.asarray(layer([rng.normal(0, 30, (1, 50, 8)).astype(np.float32), contour_columns(60, 50)]))[0]
    ceiling = SINE_FRAME_POWER * 10 ** (FRAME_CEILING_DB / 10)
    power = np.sum(10 ** (loud / 10), axis=-1)
    assert np.all(np.isfinite(loud)) and power.max() <= ceiling * 1.001
    assert power.max() > 0.5 * ceiling  # driven hard, it gets there
    # the starting frame (partials at -30 dB over noise at -60 dB in every bin) stays well under it
    assert np.sum(10 ** (quiet / 10)) < 0.15 * ceiling


def test_spectrum_output_for_mel_frames(keras):
    config = spectral.SpectralConfig(representation="mel", n_mels=64)
    frame = spectrum_frame(config, 60, keras)
    assert frame.shape == (64,) and np.all(np.isfinite(frame)) and frame.max() - frame.min() > 10


def test_spectrum_output_with_nan_input_gives_nan_frames_instead_of_an_indexing_crash(keras):
    # NaN weights (a diverged training step) put partials at NaN positions; cast to int, a NaN
    # became -2**31 and indexing the amplitude table crashed the training run, before the
    # non-finite loss could be seen and the epoch trained again
    config = spectral.SpectralConfig()
    layer = output_layer(config)
    frame = np.asarray(layer([np.full((1, 3, 8), np.nan, np.float32), contour_columns(60, 3)]))
    assert frame.shape == (1, 3, config.n_bins) and not np.isfinite(frame).any()


def test_vae_bounds_the_encoders_log_variance_so_a_runaway_one_gives_a_finite_loss(keras):
    # Unbounded, exp(logvar) can run away after a loss spike; bounded above (softly), a runaway
    # encoder gives a finite, modest loss
    from specsynth.model.vae import LOGVAR_MAX, VAE

    config = spectral.SpectralConfig()
    vae = VAE(config.to_dict(), z_dim=4, width=8, beta=1.0, warmup_steps=0)
    x = {"frames": (spectral.analyze(tone(60), config)[None, :32] + 60.0) / 20.0, "contour": contour_columns(60, 32)}
    vae(x)
    logvar_layer = vae.encoder.get_layer("z_logvar")
    kernel, bias = logvar_layer.get_weights()
    logvar_layer.set_weights([kernel, np.full_like(bias, 80.0)])  # exp(80 / 2) = 2e17 as a std
    out = vae(x, training=True)
    loss = float(vae.compute_loss(x=x, y_pred=out))
    assert np.isfinite(loss)
    assert float(np.max(out["logvar"])) <= LOGVAR_MAX
    recon, kl = (float(v) for v in vae._tracked)
    assert kl < 4 * np.exp(LOGVAR_MAX), kl  # at most each dimension's exp(LOGVAR_MAX) term, plus its mean
    # well below the bound the log-variance is the encoder's own (a near-identity)
    logvar_layer.set_weights([np.zeros_like(kernel), np.full_like(bias, -4.0)])
    assert np.allclose(np.asarray(vae(x)["logvar"]), -4.0, atol=0.01)


# ---------------------------------------------------------------------------------------------
# The encoder's view of a frame in partials of its own f0


def contour_view(config, x, midi):
    """ContourView's features of ``x`` read at a steady ``midi``, middle frame: (partial slots, envelope) in dB."""
    from specsynth.model.vae import ContourView

    layer = ContourView(config.to_dict(), db_offset=0.0, db_scale=1.0)
    frames = spectral.analyze(x, config)
    out = np.asarray(layer([frames[None], contour_columns(midi, len(frames))]))[0]
    frame = out[len(out) // 2]
    return frame[: 2 * layer.harmonics], frame[2 * layer.harmonics :]


@pytest.mark.parametrize("midi", [43, 61, 79])
def test_contour_view_reads_each_partial_at_any_pitch(keras, midi):
    config = spectral.SpectralConfig()
    slots, envelope = contour_view(config, tone(midi), midi)
    assert slots.shape == (128,) and envelope.shape == (80,)
    partials, halves = slots[1::2], slots[0::2]  # slot 2n-1 is partial n, slot 2n-2 the half-partial below it
    audible = int(min(8, config.sample_rate / 2 // midi_to_hz(midi)))
    # harmonic_tone's partials have 1/k amplitudes: the levels read fall by 20 log10(k), within 1.5 dB
    expected = partials[0] - 20 * np.log10(np.arange(1, audible + 1))
    np.testing.assert_allclose(partials[:audible], expected, atol=1.5)
    assert np.all(halves[1:audible] < partials[1:audible] - 25)  # nothing between the partials
    assert np.all(partials[audible:] < partials[0] - 40)  # none beyond the eighth


def test_contour_view_is_the_same_at_another_pitch(keras):
    config = spectral.SpectralConfig()
    low, _ = contour_view(config, tone(50), 50)
    high, _ = contour_view(config, tone(61), 61)
    np.testing.assert_allclose(low[1:16:2], high[1:16:2], atol=1.5)  # the same timbre, the same partial levels
    assert np.all(low[0:16:2] < low[1:16:2] - 25) and np.all(high[0:16:2] < high[1:16:2] - 25)
    # read at the wrong pitch, the partials are not where the view looks
    wrong, _ = contour_view(config, tone(61), 64)
    assert wrong[3] < high[3] - 20
    mel = spectral.SpectralConfig(representation="mel", n_mels=64)
    slots, envelope = contour_view(mel, tone(61), 61)
    assert np.all(np.isfinite(slots)) and slots[1] > slots[3] > slots[0]  # partials 1, 2 above the half-partial


# ---------------------------------------------------------------------------------------------
# The bundle API


def test_load_returns_a_model(model, tiny_bundle):
    from specsynth.model.bundle import Model

    assert isinstance(model, Model)
    assert model.path == Path(tiny_bundle)
    assert model.sample_rate == 16000 and model.config == specsynth.SpectralConfig()
    assert model.z_dim == model.meta["model"]["z_dim"] == 4  # what tiny_model trains
    assert model.latent_width == 6  # and the contour's two columns
    assert model.frame_rate == pytest.approx(16000 / 256)


@pytest.mark.parametrize("seconds", [0.3, 1.0, 1.37])
def test_encode_gives_one_latent_row_per_spectral_frame_with_the_contour(model, seconds):
    x = tone(60, seconds)
    z = model.encode(x)
    assert z.dtype == np.float32
    assert z.shape == (spectral.n_frames(len(x), model.config), model.latent_width)
    assert np.all(np.isfinite(z))
    f0, voicing = z[:, -2], z[:, -1]
    voiced = voicing >= 0.5
    assert voiced.mean() > 0.7 and np.all(np.abs(f0[voiced] - 60) < 0.2)


def test_encode_carries_a_moving_pitch_and_a_given_pitch_transposes_it(model):
    x = glide(55, 67, 1.0)
    z = model.encode(x)
    f0, voiced = z[:, -2], z[:, -1] >= 0.5
    t = np.arange(len(z))[voiced]
    slope, _ = np.polyfit(t, f0[voiced], 1)
    assert slope * model.frame_rate == pytest.approx(12.0, rel=0.15)  # an octave a second, frame by frame
    moved = model.encode(x, pitch=72)
    np.testing.assert_array_equal(moved[:, :-2], z[:, :-2])  # the timbre is what the sound gave
    np.testing.assert_allclose(moved[:, -2] - z[:, -2], 72 - np.median(f0[voiced]), atol=1e-4)  # the glide kept
    np.testing.assert_array_equal(moved[:, -1], z[:, -1])
    # 128 marks the sound unpitched
    assert np.all(model.encode(x, pitch=128)[:, -1] == 0)


def test_encode_depends_on_the_sound(model):
    a = model.encode(tone(60))
    assert not np.allclose(a[:, :-2], model.encode(noise_burst(1.0, burst=(0.0, 1.0)))[:, :-2], atol=1e-4)
    np.testing.assert_array_equal(a, model.encode(tone(60)))


def test_noise_and_silence_encode_unvoiced(model):
    for x in (noise_burst(1.0, burst=(0.0, 1.0)), np.zeros(16000, np.float32), np.zeros(100, np.float32)):
        z = model.encode(x)
        assert np.all(np.isfinite(z)) and (z[:, -1] >= 0.5).mean() < 0.1


def test_encode_with_pitch_auto_keeps_the_tracked_contour(model):
    x = tone(57, 0.5)  # 220 Hz
    assert model.pitch_label("auto", x) == 57
    np.testing.assert_array_equal(model.encode(x, pitch="auto"), model.encode(x))
    np.testing.assert_allclose(model.encode(x, pitch=57)[:, -2], model.encode(x)[:, -2], atol=0.2)


def test_decode_gives_db_frames_above_the_floor(model):
    z = model.encode(tone(60))
    frames = model.decode(z)
    assert frames.shape == (len(z), model.config.n_features)
    assert np.all(np.isfinite(frames))
    assert frames.min() >= model.config.db_floor
    # a batch [b, time, z + 2] decodes to [b, time, F], each row as if decoded alone
    batch = model.decode(np.stack([z, z[::-1]]))
    assert batch.shape == (2,) + frames.shape
    np.testing.assert_allclose(batch[0], frames, atol=1e-2)  # dB; float32 sums in another order


def test_decode_at_another_pitch_moves_the_partials(model):
    z = model.encode(tone(60))
    assert not np.allclose(model.decode(z, pitch=60), model.decode(z, pitch=72), atol=1e-3)
    # a latent file needs no pitch: decode(z) is decode at its own contour
    np.testing.assert_array_equal(model.decode(z), model.decode(z, pitch=None))


@pytest.mark.parametrize("bad", [129, -1, 127.5, "x"])
def test_bad_pitch_is_refused(model, bad):
    with pytest.raises(ConfigError, match="pitch"):
        model.encode(tone(60), pitch=bad)


def test_latents_of_the_wrong_width_are_refused(model):
    with pytest.raises(ConfigError, match="columns"):
        model.decode(np.zeros((10, model.z_dim), np.float32))


def test_resynthesize_keeps_the_length_and_the_level(model):
    x = tone(60, 0.77)
    y = model.resynthesize(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.all(np.isfinite(y))
    rms = lambda a: 20 * np.log10(np.sqrt(np.mean(a**2)))  # noqa: E731
    assert abs(rms(y) - rms(x)) < 1.0


def test_synthesize_circular_gives_one_loop_period(model):
    z = model.encode(tone(60))
    t, hop, q = len(z), model.config.hop, model.config.n_fft // model.config.hop
    loop = model.synthesize(z, circular=True, method="fgla", n_iter=4)
    plain = model.synthesize(z, method="fgla", n_iter=4)
    assert loop.shape == (t * hop,)  # circular frames wrap: one frame per hop, no lead-in
    assert plain.shape == ((t - q + 1) * hop,)
    assert np.all(np.isfinite(loop)) and np.sqrt(np.mean(loop**2)) > 1e-4
    # and the length option crops or pads
    assert model.synthesize(z, circular=True, method="fgla", n_iter=2, length=1000).shape == (1000,)


def test_no_latent_edit_gives_output_above_six_dbfs(model):
    z = model.encode(tone(60))
    rng = np.random.default_rng(0)
    edits = [z * np.r_[np.full(model.z_dim, 3.0), 1.0, 1.0],
             np.concatenate([rng.normal(0, 1, (len(z), model.z_dim)), z[:, -2:]], axis=1),
             np.concatenate([rng.normal(0, 10, (len(z), model.z_dim)), z[:, -2:]], axis=1)]
    for edit in edits:
        # the decoder's own output, before Model.frames_to_audio turns anything down
        y = phase.frames_to_audio(model.decode(edit.astype(np.float32)), config=model.config, method="fgla", n_iter=8)
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 10 ** (6 / 20)


# ---------------------------------------------------------------------------------------------
# The prior


def test_sample_prior_shape_and_seed(model):
    a = model.sample_prior(40, pitch=60, temperature=1.0, seed=3)
    assert a.shape == (40, model.latent_width) and a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, model.sample_prior(40, pitch=60, temperature=1.0, seed=3))
    b = model.sample_prior(40, pitch=60, temperature=1.0, seed=4)
    assert not np.allclose(a, b)


def test_sample_prior_temperature_zero_ignores_the_seed(model):
    a = model.sample_prior(30, pitch=60, temperature=0, seed=1)
    b = model.sample_prior(30, pitch=60, temperature=0, seed=99)
    np.testing.assert_array_equal(a, b)
    # while a warm temperature does not
    assert not np.allclose(model.sample_prior(30, pitch=60, temperature=1.0, seed=1),
                           model.sample_prior(30, pitch=60, temperature=1.0, seed=99))


def test_sample_prior_spread_grows_with_temperature(model):
    cold = model.sample_prior(300, pitch=60, temperature=0.05, seed=0)
    hot = model.sample_prior(300, pitch=60, temperature=2.0, seed=0)
    assert np.std(np.diff(hot, axis=0)) > np.std(np.diff(cold, axis=0))


def test_sample_prior_honours_prime(model):
    prime = model.encode(tone(60))
    other = model.encode(noise_burst(1.0, burst=(0.0, 1.0)))
    kw = dict(pitch=60, temperature=0, seed=0)
    free = model.sample_prior(20, **kw)
    primed = model.sample_prior(20, prime=prime, **kw)
    assert primed.shape == (20, model.latent_width)
    assert not np.allclose(free, primed)
    assert not np.allclose(primed, model.sample_prior(20, prime=other, **kw))
    # the continuation depends on the whole prime (the LSTM state), not only its last frame
    # (the frames just before the last: an LSTM this small forgets what lies tens of frames back)
    changed_before_last = prime.copy()
    changed_before_last[-10:-1] += 3.0
    assert not np.allclose(primed, model.sample_prior(20, prime=changed_before_last, **kw))
    np.testing.assert_array_equal(primed, model.sample_prior(20, prime=prime, **kw))


def test_sample_prior_depends_on_pitch(model):
    assert not np.allclose(model.sample_prior(20, pitch=48, temperature=0), model.sample_prior(20, pitch=72, temperature=0))


def test_prior_trained_with_sampled_inputs_sees_its_own_samples(keras):
    """Scheduled sampling: in training, part of the history is the prior's own one-step samples,
    the first frame always the true one; at inference it reads the true history unchanged."""
    from specsynth.model.prior import LatentPrior

    rng = np.random.default_rng(0)
    x = {"z": rng.standard_normal((2, 12, 3)).astype(np.float32), "pitch": np.full((2, 2), 0.5, np.float32)}
    for rate in (0.0, 1.0):
        prior = LatentPrior(3, units=8, mixtures=2, sampled_inputs=rate, seed=1)
        taught, trained = prior(x, training=False)["means"], prior(x, training=True)["means"]
        taught, trained = np.asarray(taught), np.asarray(trained)
        np.testing.assert_allclose(trained[:, 0], taught[:, 0], atol=1e-6)  # after the true first frame
        if rate == 0.0:
            np.testing.assert_allclose(trained, taught, atol=1e-6)
        else:
            assert np.all(np.abs(trained[:, 1:] - taught[:, 1:]).max(axis=-1) > 1e-4)
    # the rate travels with the saved model; a config without it reads as 0
    again = LatentPrior.from_config(prior.get_config())
    assert again.sampled_inputs == 1.0 and again.seed_generator is not None
    old = {k: v for k, v in LatentPrior(3, units=8).get_config().items()
           if k not in ("sampled_inputs", "sampled_passes", "seed")}
    old = LatentPrior.from_config(old)
    assert old.seed_generator is None and old.sampled_passes == 1


def test_prior_sampled_passes_each_read_the_history_of_the_pass_before(keras, monkeypatch):
    """With several passes of scheduled sampling, each pass reads a history resampled from the
    predictions of the pass before (the first pass reads the true one), and the loss sees the last."""
    from specsynth.model.prior import LatentPrior

    rng = np.random.default_rng(0)
    x = {"z": rng.standard_normal((2, 12, 3)).astype(np.float32), "pitch": np.full((2, 2), 0.5, np.float32)}
    prior = LatentPrior(3, units=8, mixtures=2, sampled_inputs=1.0, sampled_passes=3, seed=1)
    histories, predictions, real = [], [], prior._predict

    def spy(history, pitch, training):
        out = real(history, pitch, training)
        histories.append(np.asarray(history))
        predictions.append(np.asarray(out["means"]))
        return out

    monkeypatch.setattr(prior, "_predict", spy)
    final = np.asarray(prior(x, training=True)["means"])
    assert len(histories) == 4  # the true history, then three resampled ones
    np.testing.assert_array_equal(histories[0], x["z"][:, :-1])
    np.testing.assert_array_equal(final, predictions[-1])
    for before, after in zip(histories, histories[1:]):
        np.testing.assert_array_equal(after[:, 0], x["z"][:, 0])  # the first frame stays the true one
        assert np.all(np.abs(after[:, 1:] - before[:, 1:]).max(axis=-1) > 1e-4)
    del histories[:]
    prior(x, training=False)
    assert len(histories) == 1  # inference reads the true history once
    assert LatentPrior.from_config(prior.get_config()).sampled_passes == 3


def test_prior_windows_start_each_sound_and_mask_padding():
    from specsynth.model.prior import START, windows

    short = np.arange(1, 11, dtype=np.float32)[:, None].repeat(2, axis=1)  # frames 1..10
    long = np.arange(1, 31, dtype=np.float32)[:, None].repeat(2, axis=1)  # frames 1..30
    w = windows([short, long], [60, 128], 16, starts=True)
    assert w["z"].shape == (4, 16, 2) and w["mask"].shape == (4, 15) and w["pitch"].shape == (4, 2)
    # the short sound: start frame, its 10 frames, then padding that no loss term sees
    np.testing.assert_array_equal(w["z"][0, :11, 0], [START] + list(range(1, 11)))
    np.testing.assert_array_equal(w["mask"][0], np.arange(1, 16) < 11)
    # the long one: a window from its start frame, one half a window on, the last ending with the sound
    np.testing.assert_array_equal(w["z"][1, :, 0], [START] + list(range(1, 16)))
    for row, first in zip((2, 3), (8, 15)):
        np.testing.assert_array_equal(w["z"][row, :, 0], np.arange(first, first + 16))
    assert w["mask"][1:].all() and w["pitch"][3, 1] == 1.0  # the unpitched label
    assert windows([short], [60], 16, starts=False)["z"][0, 0, 0] == 1.0
    # a sound's first frames can weigh more: only those after the start frame, padding still 0
    weighted = windows([short, long], [60, 128], 16, starts=True, onset_weight=3.0, onset_frames=2.0)
    onset = 1 + 3 * np.exp(-np.arange(15) / 2)
    np.testing.assert_allclose(weighted["mask"][0], (np.arange(1, 16) < 11) * onset, rtol=1e-6)
    np.testing.assert_allclose(weighted["mask"][1], onset, rtol=1e-6)
    np.testing.assert_array_equal(weighted["mask"][2:], w["mask"][2:])


def test_prior_loss_ignores_masked_padding(keras):
    from specsynth.model.prior import LatentPrior, windows

    rng = np.random.default_rng(0)
    x = windows([rng.standard_normal((9, 3)).astype(np.float32)], [60], 14, starts=True)
    prior = LatentPrior(3, units=8, mixtures=2, starts=True)
    loss = float(prior.compute_loss(x=x, y_pred=prior(x)))
    changed = {**x, "z": x["z"].copy()}
    changed["z"][0, 10:] += 5.0  # the padding after the sound's last frame
    assert float(prior.compute_loss(x=changed, y_pred=prior(changed))) == pytest.approx(loss, rel=1e-6)
    unmasked = {k: v for k, v in changed.items() if k != "mask"}
    assert float(prior.compute_loss(x=unmasked, y_pred=prior(unmasked))) != pytest.approx(loss, rel=1e-3)


@pytest.mark.parametrize("starts", [True, False])
def test_numpy_prior_reads_a_prime_after_the_start_frame(keras, starts):
    """Sampling runs the trained LSTM: at temperature 0 the first sampled frame is the network's
    prediction after the prime, read after the start frame when the prior was trained with one."""
    from specsynth.model.prior import START, LatentPrior, NumpyPrior, prior_pitch_features

    rng = np.random.default_rng(1)
    prior = LatentPrior(3, units=8, mixtures=2, starts=starts)
    prime = rng.standard_normal((5, 3)).astype(np.float32)
    pf = prior_pitch_features(60)
    history = np.concatenate([np.full((1, 3), START, np.float32), prime]) if starts else prime
    out = prior._predict(history[None], pf[None], False)
    j = int(np.argmax(np.asarray(out["logits"])[0, -1]))
    expected = np.asarray(out["means"])[0, -1].reshape(2, 3)[j]
    got = NumpyPrior(prior).sample(1, pitch_features=pf, temperature=0, prime=prime)[0]
    np.testing.assert_allclose(got, np.clip(expected, -3.5, 3.5), atol=1e-5)
    # an unprimed walk begins from the start frame (the mean latent for a prior trained without one)
    first = np.full((1, 1, 3), START if starts else 0.0, np.float32)
    out = prior._predict(first, pf[None], False)
    j = int(np.argmax(np.asarray(out["logits"])[0, 0]))
    got = NumpyPrior(prior).sample(1, pitch_features=pf, temperature=0)[0]
    np.testing.assert_allclose(got, np.clip(np.asarray(out["means"])[0, 0].reshape(2, 3)[j], -3.5, 3.5), atol=1e-5)
    assert LatentPrior.from_config(prior.get_config()).starts == starts


def test_walk_calibration_maps_walks_onto_the_datas_moments_and_leaves_the_walk_alone(keras):
    """The calibrated walks have the sequences' per-dimension mean and spread, and each is the
    uncalibrated walk (same seed) through the map: the LSTM reads its own samples, not the map's."""
    from specsynth.model.prior import CLIP, LatentPrior, NumpyPrior, prior_pitch_features, walk_calibration

    prior = LatentPrior(3, units=8, mixtures=2, starts=True)
    prior({"z": np.zeros((1, 5, 3), np.float32), "pitch": np.zeros((1, 2), np.float32)})
    lengths, pitches = (300, 400, 500), [48, 60, 72]
    raw = NumpyPrior(prior)
    before = np.concatenate([raw.sample(n, pitch_features=prior_pitch_features(p), seed=(7, i))
                             for i, (n, p) in enumerate(zip(lengths, pitches))])
    # sequences off the (untrained) prior's walks by 0.3-0.5 of their std in mean, 0.6-1.1x in spread
    rng = np.random.default_rng(0)
    spread = before.std(0) * [0.6, 1.1, 0.8]
    target = before.mean(0) + before.std(0) * [0.5, -0.4, 0.3]
    seqs = [rng.normal(target, spread, size=(n, 3)).astype(np.float32) for n in lengths]
    scale, shift = walk_calibration(raw, seqs, pitches, seed=7)
    assert scale.shape == shift.shape == (3,) and scale.dtype == np.float32
    calibrated = NumpyPrior(prior, walk_scale=scale, walk_shift=shift)
    walks = [calibrated.sample(n, pitch_features=prior_pitch_features(p), seed=(7, i))
             for i, (n, p) in enumerate(zip(lengths, pitches))]
    pooled, data = np.concatenate(walks), np.concatenate(seqs)
    assert np.all(np.abs(pooled.mean(0) - data.mean(0)) < 0.02 * data.std(0))  # a few clipped at +-CLIP
    np.testing.assert_allclose(pooled.std(0), data.std(0), rtol=0.02)
    np.testing.assert_allclose(pooled, np.clip(before * scale + shift, -CLIP, CLIP), atol=1e-5)
    # a walk far narrower than the data is a broken prior, not one to stretch without bound
    wide = [10 * s for s in seqs]
    assert walk_calibration(raw, wide, pitches)[0].max() == pytest.approx(2.0)


def test_a_trained_bundle_calibrates_its_walks_and_one_without_calibration_walks_as_before(tiny_bundle, bundle_copy):
    from specsynth.model.prior import NumpyPrior, prior_pitch_features
    from specsynth.pitch import Contour

    with np.load(Path(tiny_bundle) / "norm.npz") as data:
        scale, shift = data["walk_scale"], data["walk_shift"]
    model = specsynth.load(tiny_bundle)
    assert scale.shape == shift.shape == (model.latent_width,) and not np.allclose(scale, 1.0)
    mean, std = model.norm["latent_mean"], model.norm["latent_std"]

    def as_latents(walk):  # the contour's columns are kept a contour (MIDI 0..127, voicing 0..1)
        walk = walk * std + mean
        walk[:, -2:] = Contour.from_columns(walk[:, -2:]).columns()
        return walk

    raw = NumpyPrior(model.prior).sample(30, pitch_features=prior_pitch_features(60), seed=3)
    expected = as_latents(np.clip(raw * scale + shift, -3.5, 3.5))
    np.testing.assert_allclose(model.sample_prior(30, pitch=60, seed=3), expected, rtol=1e-5, atol=1e-5)
    _edit_norm(bundle_copy, lambda n: [n.pop("walk_scale"), n.pop("walk_shift")])
    np.testing.assert_allclose(specsynth.load(bundle_copy).sample_prior(30, pitch=60, seed=3), as_latents(raw),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(n_frames=0), dict(n_frames=2.5), dict(n_frames=10, temperature=-1),
                                    dict(n_frames=10, temperature=11), dict(n_frames=10, pitch=200)])
def test_sample_prior_bad_arguments(model, kwargs):
    n = kwargs.pop("n_frames")
    with pytest.raises(ConfigError):
        model.sample_prior(n, **kwargs)


# ---------------------------------------------------------------------------------------------
# "pretrained"


def test_pretrained_name_resolves_to_the_shipped_bundle_or_the_environment(monkeypatch, tmp_path):
    from specsynth.model.bundle import resolve

    monkeypatch.delenv("SPECSYNTH_PRETRAINED", raising=False)
    assert resolve("pretrained") == REPO / "pretrained" and resolve(None) == REPO / "pretrained"
    assert resolve("some/folder") == Path("some/folder")
    monkeypatch.setenv("SPECSYNTH_PRETRAINED", str(tmp_path))
    assert resolve("pretrained") == tmp_path


def test_load_pretrained():
    if not (REPO / "pretrained" / "config.json").exists():
        pytest.skip("pretrained/config.json does not exist yet (the pretrained model has not been trained)")
    model = specsynth.load("pretrained")
    assert model.path == REPO / "pretrained"
    x = tone(60)
    assert model.encode(x).shape == (spectral.n_frames(len(x), model.config), model.latent_width)


# ---------------------------------------------------------------------------------------------
# Bundle validation: each problem refused with a BundleError that says why


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst


def edit_config(bundle, change):
    meta = json.loads((bundle / "config.json").read_text())
    change(meta)
    (bundle / "config.json").write_text(json.dumps(meta))


def refused(path, *words):
    with pytest.raises(BundleError) as info:
        specsynth.load(path)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_the_copy_itself_loads(bundle_copy):
    assert specsynth.load(bundle_copy).path == bundle_copy


def test_a_bundle_saves_its_architecture_and_one_without_it_takes_the_defaults(bundle_copy):
    from specsynth.model.settings import ARCHITECTURE

    meta = json.loads((bundle_copy / "config.json").read_text())
    assert {k: meta["model"][k] for k in ARCHITECTURE} == ARCHITECTURE
    edit_config(bundle_copy, lambda m: [m["model"].pop(k) for k in ARCHITECTURE])
    model = specsynth.load(bundle_copy)
    assert model.architecture == model.vae.architecture == ARCHITECTURE


@pytest.mark.parametrize("change, word", [({"harmonics": 32}, "architecture"),
                                          ({"warp": "wide"}, "config.json is invalid")])
def test_config_json_whose_architecture_disagrees_with_the_weights(bundle_copy, change, word):
    edit_config(bundle_copy, lambda m: m["model"].update(change))
    refused(bundle_copy, word)


def test_missing_folder(tmp_path):
    refused(tmp_path / "nowhere", "no such model bundle", str(tmp_path / "nowhere"))


def test_a_file_is_not_a_bundle(tmp_path):
    (tmp_path / "model.zip").write_bytes(b"PK\x03\x04 not a folder")
    refused(tmp_path / "model.zip", "is a folder")


@pytest.mark.parametrize("name", ["config.json", "vae.keras", "prior.keras", "norm.npz", "metrics.json"])
def test_missing_file(bundle_copy, name):
    (bundle_copy / name).unlink()
    refused(bundle_copy, "missing", name)


@pytest.mark.parametrize("version", [1, 2, 4, 0, None, "3"])
def test_unknown_format_version(bundle_copy, version):
    edit_config(bundle_copy, lambda m: m.update(format_version=version))
    refused(bundle_copy, "format version", repr(version))


def test_config_json_not_json(bundle_copy):
    (bundle_copy / "config.json").write_text("{format_version: 1")
    refused(bundle_copy, "not valid JSON")


def test_config_json_without_spectral_config(bundle_copy):
    edit_config(bundle_copy, lambda m: m.pop("spectral"))
    refused(bundle_copy, "config.json is invalid")


def test_config_json_with_an_invalid_spectral_config(bundle_copy):
    edit_config(bundle_copy, lambda m: m["spectral"].update(n_fft=1000, hop=300))
    refused(bundle_copy, "config.json is invalid", "hop")


@pytest.mark.parametrize("change, features", [({"representation": "mel"}, 128), ({"n_fft": 2048, "hop": 512}, 1025),
                                              ({"n_fft": 512, "hop": 128}, 257)])
def test_spectral_config_that_does_not_match_the_weights(bundle_copy, change, features):
    edit_config(bundle_copy, lambda m: m["spectral"].update(change))
    refused(bundle_copy, "does not match the weights", "513 features", f"has {features}")


def test_latent_size_that_does_not_match_the_weights(bundle_copy):
    edit_config(bundle_copy, lambda m: m["model"].update(z_dim=7))
    refused(bundle_copy, "latent sizes disagree")


def _save_plain_model(keras, path, layer):
    inp = keras.Input((4,))
    keras.Model(inp, layer(inp)).save(path)


def test_lambda_layer_is_refused(bundle_copy, keras):
    _save_plain_model(keras, bundle_copy / "vae.keras", keras.layers.Lambda(lambda x: x * 2.0))
    refused(bundle_copy, "vae.keras", "Lambda", "refused")


def test_unregistered_custom_class_is_refused(bundle_copy, keras):
    class Sneaky(keras.layers.Layer):
        def call(self, x):
            return x

    _save_plain_model(keras, bundle_copy / "prior.keras", Sneaky())
    refused(bundle_copy, "prior.keras", "unknown class", "Sneaky")


def test_custom_class_registered_elsewhere_is_refused(bundle_copy, keras):
    @keras.saving.register_keras_serializable(package="elsewhere")
    class Registered(keras.layers.Layer):
        def call(self, x):
            return x

    _save_plain_model(keras, bundle_copy / "vae.keras", Registered())
    refused(bundle_copy, "vae.keras", "unknown class", "elsewhere>Registered")


def test_keras_file_of_the_wrong_model_is_refused(bundle_copy, keras):
    _save_plain_model(keras, bundle_copy / "vae.keras", keras.layers.Dense(3))
    refused(bundle_copy, "vae.keras", "not a specsynth VAE")


def test_weights_that_do_not_fit_the_saved_architecture(bundle_copy):
    """A .keras whose config no longer matches its weights (as when the model code changes
    between versions) is refused, not loaded with some layers left at random weights."""
    path = bundle_copy / "vae.keras"
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = files["config.json"].decode()
    match = re.search(r'"units": (\d+)', config)
    assert match, "the VAE has a Dense layer"
    files["config.json"] = (config[: match.start()] + f'"units": {int(match.group(1)) + 1}' + config[match.end():]).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    refused(bundle_copy, "vae.keras")


def test_swapped_keras_files_are_refused(bundle_copy):
    vae = (bundle_copy / "vae.keras").read_bytes()
    shutil.copy(bundle_copy / "prior.keras", bundle_copy / "vae.keras")
    (bundle_copy / "prior.keras").write_bytes(vae)
    refused(bundle_copy, "not a specsynth")


@pytest.mark.parametrize("content", [b"not a zip at all", b"", b"PK\x03\x04truncated"])
def test_corrupt_keras_file(bundle_copy, content):
    (bundle_copy / "vae.keras").write_bytes(content)
    refused(bundle_copy, "vae.keras", "not a valid .keras archive")


def test_keras_zip_without_config(bundle_copy):
    with zipfile.ZipFile(bundle_copy / "prior.keras", "w") as z:
        z.writestr("metadata.json", "{}")
    refused(bundle_copy, "prior.keras", "not a valid .keras archive")


def _edit_norm(bundle, change):
    with np.load(bundle / "norm.npz") as data:
        norm = dict(data)
    change(norm)
    np.savez(bundle / "norm.npz", **norm)


@pytest.mark.parametrize("key, size", [("frame_mean", 512), ("frame_std", 10), ("latent_mean", 5), ("latent_std", 3)])
def test_norm_with_wrong_shapes(bundle_copy, key, size):
    _edit_norm(bundle_copy, lambda n: n.update({key: np.ones(size, np.float32)}))
    refused(bundle_copy, "norm.npz shapes do not match")


@pytest.mark.parametrize("value", [np.ones(3, np.float32), np.full(6, np.nan, np.float32)])
def test_norm_with_a_bad_walk_calibration(bundle_copy, value):
    _edit_norm(bundle_copy, lambda n: n.update({"walk_shift": value}))
    refused(bundle_copy, "walk_scale and walk_shift must be 6 finite numbers")


def test_norm_missing_an_array(bundle_copy):
    _edit_norm(bundle_copy, lambda n: n.pop("latent_std"))
    refused(bundle_copy, "norm.npz is invalid", "latent_std")


def test_norm_not_an_npz(bundle_copy):
    (bundle_copy / "norm.npz").write_text("mean = 0")
    refused(bundle_copy, "norm.npz is invalid")


def test_loading_uses_keras_safe_mode(bundle_copy, keras, monkeypatch):
    """Even with our own archive check switched off, Keras's safe mode refuses a Lambda layer."""
    from specsynth.model import bundle

    calls = []
    real = keras.saving.load_model

    def spy(*args, **kwargs):
        calls.append(kwargs.get("safe_mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", spy)
    specsynth.load(bundle_copy)
    assert calls == [True, True]

    monkeypatch.setattr(bundle, "check_keras_file", lambda path: None)
    _save_plain_model(keras, bundle_copy / "vae.keras", keras.layers.Lambda(lambda x: x * 2.0))
    message = refused(bundle_copy, "vae.keras cannot be loaded")
    assert "safe" in message.lower(), message


# ---------------------------------------------------------------------------------------------
# Training


def tiny_settings(seed=0, **changes):
    from specsynth.model.train import TrainSettings

    # segments of 32 frames, prior windows of 16 at 62.5 frames/s
    settings = dict(z_dim=4, width=8, epochs=1, prior_epochs=0, prior_units=8, prior_mixtures=1,
                    segment_seconds=0.512, prior_segment_seconds=0.256, batch_size=4, val_fraction=0.0,
                    warmup_steps=10, seed=seed)
    settings.update(changes)
    return TrainSettings(**settings)


@pytest.fixture(scope="module")
def tone_dataset():
    from specsynth.data import Dataset

    items = [(f"tone_{m}.wav", m, tone(m)) for m in (48, 60, 72)]
    return Dataset.from_items(items, specsynth.SpectralConfig(), summary={"files": 3, "skipped": 0})


@pytest.fixture(scope="module")
def seed_runs(tone_dataset, tmp_path_factory):
    """Three tiny trainings on the same data: seed 0, seed 0 again, seed 1 (over an existing folder,
    with overwrite=True)."""
    from specsynth.model.train import train

    root = tmp_path_factory.mktemp("seeds")
    (root / "c").mkdir()
    (root / "c" / "stale.txt").write_text("from before")
    logs = {}
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        logs[name] = []
        runs[name] = train(tone_dataset, root / name, settings=tiny_settings(seed), overwrite=name == "c", verbose=0,
                           log=logs[name].append)
    return root, runs, logs


def test_train_writes_a_complete_bundle(seed_runs):
    from specsynth.model.bundle import FILES, Model

    root, runs, logs = seed_runs
    out = root / "a"
    assert isinstance(runs["a"], Model)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert not (root / "a.partial").exists(), "the work folder was left behind"
    assert sorted(p.name for p in root.iterdir()) == ["a", "b", "c"]  # no temporary folders either
    meta = json.loads((out / "config.json").read_text())
    assert meta["format_version"] == 3
    assert meta["model"]["z_dim"] == 4 and meta["model"]["width"] == 8
    assert meta["training"]["items"] == 3 and meta["training"]["seed"] == 0
    assert len(meta["training"]["history"]["vae"]) == 1
    assert any(line.startswith("wrote ") for line in logs["a"])
    # the returned model works, and is what loading the folder gives
    x = tone(60)
    np.testing.assert_array_equal(runs["a"].encode(x), specsynth.load(out).encode(x))


@pytest.mark.parametrize("counts, label", [({"48": 1, "60": 1, "72": 1}, 60), ({"40": 5, "60": 1, "72": 1}, 40),
                                           ({"60": 2, "128": 3}, 128), ({"60": 3, "128": 2}, 60), (None, 128)])
def test_a_walk_without_seed_or_pitch_takes_the_training_sounds_median_pitch(counts, label):
    from types import SimpleNamespace

    from specsynth.model.bundle import Model

    training = {} if counts is None else {"pitch_counts": counts}  # None: a bundle from before the counts
    assert Model.walk_pitch.fget(SimpleNamespace(meta={"training": training})) == label


def test_tiny_bundle_has_held_out_metrics_and_history(tiny_bundle):
    meta = json.loads((Path(tiny_bundle) / "config.json").read_text())
    metrics = json.loads((Path(tiny_bundle) / "metrics.json").read_text())
    n_items = len(PROGRAMS) * len(PITCHES)
    assert meta["training"]["items"] == n_items
    assert meta["training"]["val_items"] == round(n_items * meta["model"]["val_fraction"]) >= 1
    assert len(meta["training"]["val_names"]) == meta["training"]["val_items"]
    assert set(metrics["val_vae"]) == {"loss", "recon", "kl"}
    assert np.isfinite(metrics["val_prior_nll"])
    history = meta["training"]["history"]
    assert len(history["vae"]) == meta["model"]["epochs"] and len(history["prior"]) == meta["model"]["prior_epochs"]
    assert "val_loss" in history["vae"][0]


def test_same_seed_same_weights_other_seed_other_weights(seed_runs):
    _, runs, _ = seed_runs
    x = tone(60)
    za, zb, zc = (runs[k].encode(x) for k in "abc")
    np.testing.assert_array_equal(za, zb)
    for wa, wb in zip(runs["a"].vae.get_weights(), runs["b"].vae.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert np.abs(za - zc).max() > 1e-3


@pytest.mark.parametrize("anywhere, every", [(0.128, 1), (0.0, 1), (0.128, 2)])
def test_prior_trains_on_windows_from_the_onset_and_cut_anywhere(tone_dataset, tmp_path, anywhere, every):
    from specsynth.model.train import train

    logs = []
    settings = tiny_settings(prior_epochs=1, prior_anywhere_seconds=anywhere, prior_every=every)
    model = train(tone_dataset, tmp_path / "m", settings=settings, verbose=0, log=logs.append)
    line = next(line for line in logs if line.startswith("prior: "))
    # each of the 3 tones sounds for 65 frames: 8 half-overlapping onset windows of 16 frames (0.256 s, after
    # the start frame) and 15 windows of 8 frames (0.128 s) cut anywhere; every 2nd tone: the 1st and the 3rd
    tones = 3 if every == 1 else 2
    assert line.startswith(f"prior: {8 * tones} onset windows of up to 16 frames")
    assert line.endswith(f", {15 * tones} of 8") if anywhere else line.endswith(" frames")
    assert model.prior.starts and len(model.meta["training"]["history"]["prior"]) == 1


def test_a_trainer_runs_step_by_step_and_calibrates_on_at_most_calibration_walks_sounds(tone_dataset, tmp_path):
    from specsynth.model.train import Trainer

    logs = []
    out = tmp_path / "m"
    trainer = Trainer(tone_dataset, out, settings=tiny_settings(prior_epochs=1), verbose=0, log=logs.append,
                      calibration_walks=2)
    trainer.prepare()
    state = json.loads((tmp_path / "m.partial" / "state.json").read_text())
    assert state["vae_epochs_done"] == 0 and state["train_items"] == [0, 1, 2]
    trainer.fit_vae()
    assert json.loads((tmp_path / "m.partial" / "state.json").read_text())["vae_epochs_done"] == 1
    trainer.fit_prior()
    walk = trainer.calibrate()
    assert any(line.startswith("walk calibration over 2 sounds ") for line in logs)  # every 2nd of the 3 tones
    assert walk["walk_scale"].shape == (6,) and not out.exists()
    model = trainer.save()
    np.testing.assert_array_equal(model.norm["walk_scale"], walk["walk_scale"])
    assert not (tmp_path / "m.partial").exists()


def test_existing_output_is_refused_and_untouched(seed_runs, tone_dataset):
    from specsynth.model.train import train

    root, _, _ = seed_runs
    before = folder_snapshot(root / "a")
    with pytest.raises(OutputError, match="already exists"):
        train(tone_dataset, root / "a", settings=tiny_settings(), verbose=0, log=lambda *a: None)
    assert folder_snapshot(root / "a") == before
    assert not (root / "a.partial").exists()


def test_overwrite_replaces_the_bundle_but_keeps_the_users_files(seed_runs):
    from specsynth.model.bundle import FILES

    root, runs, _ = seed_runs
    # the bundle's own files are new; a file of the user's in the folder (a model card, notes) is kept
    assert sorted(p.name for p in (root / "c").iterdir()) == sorted(FILES + ("stale.txt",))
    assert (root / "c" / "stale.txt").read_text() == "from before"
    assert runs["c"].meta["training"]["seed"] == 1


@pytest.mark.parametrize("change, word", [({"epochs": 0}, "epochs"), ({"val_fraction": 0.6}, "val_fraction"),
                                          ({"strategy": "tpu"}, "strategy"), ({"z_dim": 0}, "z_dim"),
                                          ({"prior_sampled_passes": 0}, "prior_sampled_passes"),
                                          ({"learning_rate": 0.0}, "learning_rate"),
                                          ({"clip_norm": 0.0}, "clip_norm"), ({"prior_every": 0}, "prior_every")])
def test_bad_settings_are_refused_before_anything_is_written(tone_dataset, tmp_path, change, word):
    from specsynth.model.train import train

    with pytest.raises(ConfigError, match=word):
        train(tone_dataset, tmp_path / "model", settings=tiny_settings(**change), verbose=0, log=lambda *a: None)
    assert list(tmp_path.iterdir()) == []


def test_the_vaes_optimizer_clips_gradients_at_the_settings_norm(tone_dataset, tmp_path):
    from specsynth.model.train import Trainer

    trainer = Trainer(tone_dataset, tmp_path / "model", settings=tiny_settings(clip_norm=123.0), verbose=0,
                      log=lambda *a: None)
    trainer.prepare()
    assert trainer.fit_vae().optimizer.global_clipnorm == 123.0
    trainer.fit_prior()
    trainer.calibrate()
    assert trainer.save().meta["model"]["clip_norm"] == 123.0


def test_a_run_whose_loss_keeps_going_non_finite_stops_with_a_clear_error(tone_dataset, tmp_path):
    from specsynth import TrainingError
    from specsynth.model.train import RESTARTS, train

    logs = []
    # Adam at this rate moves every weight by ~1e30 in the first step: the next batch overflows
    with pytest.raises(TrainingError) as error:
        train(tone_dataset, tmp_path / "model", settings=tiny_settings(learning_rate=1e30), verbose=0, log=logs.append)
    assert str(error.value) == (f"{tmp_path / 'model'}: the vae's loss went non-finite 3 times in epoch 1 "
                                "(a lower --learning-rate may help)")
    assert sum("going back to epoch 0" in line for line in logs) == RESTARTS == 2
    assert list(tmp_path.iterdir()) == []  # no epoch was saved: nothing to resume from is left behind


def test_a_diverging_prior_keeps_the_trained_vae_for_resume(tone_dataset, tmp_path):
    from specsynth import TrainingError
    from specsynth.model.train import Trainer, train

    out, work = tmp_path / "model", tmp_path / "model.partial"
    logs = []
    trainer = Trainer(tone_dataset, out, settings=tiny_settings(prior_epochs=1), verbose=0, log=logs.append)
    trainer.prepare()
    trainer.fit_vae()
    # the prior's optimizer is made by fit_prior: at this rate its loss overflows after the first step
    trainer.settings.learning_rate = 1e30
    with pytest.raises(TrainingError) as error:
        trainer.fit_prior()
    assert str(error.value) == (f"{out}: the prior's loss went non-finite 3 times in epoch 1 (a lower "
                                f"--learning-rate may help); {work} keeps the last complete epoch for --resume")
    assert sum(line.startswith("prior: the loss went non-finite in epoch 1") for line in logs) == 2
    state = json.loads((work / "state.json").read_text())
    assert not out.exists() and state["vae_epochs_done"] == 1 and state["prior_epochs_done"] == 0
    # the resumed run takes the settings it started with, from the state file
    model = train(tone_dataset, out, resume=True, verbose=0, log=logs.append)
    assert len(model.meta["training"]["history"]["prior"]) == 1 and not work.exists()
    assert all(np.isfinite(w).all() for w in model.prior.get_weights())


def test_an_epoch_whose_loss_goes_non_finite_is_trained_again_from_the_last_saved_one(keras, tmp_path):
    import tensorflow as tf

    from specsynth.model.checkpoint import fit_guarded

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = x @ rng.normal(size=(4, 1)).astype(np.float32)
    path, state_path = tmp_path / "m.keras", tmp_path / "state.json"
    state, logs, attempts = {"m_epochs_done": 0}, [], []

    def build():
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        return m

    def restore():
        return keras.saving.load_model(path, safe_mode=True) if state["m_epochs_done"] else build()

    def train_data(attempt):
        attempts.append(attempt)
        epochs = []

        def batches():  # the first attempt's third epoch meets a NaN, as a loss spike would give
            epochs.append(len(epochs))
            for i in range(0, 64, 16):
                xb = x[i:i + 16].copy()
                if attempt == 0 and len(epochs) == 3 and i == 32:
                    xb[0] = np.nan
                yield xb, y[i:i + 16]

        return tf.data.Dataset.from_generator(batches, output_signature=(
            tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None, 1), tf.float32)))

    first = build()
    model = fit_guarded(first, restore=restore, path=path, stage="m", state=state, state_path=state_path,
                        train_data=train_data, validation=None, epochs=5, log=logs.append)
    assert attempts == [0, 1] and model is not first
    assert [line for line in logs if "non-finite" in line] == [
        "m: the loss went non-finite in epoch 3; going back to epoch 2 and trying again with another shuffle order"]
    assert state["m_epochs_done"] == 5 and json.loads(state_path.read_text())["m_epochs_done"] == 5
    losses = [epoch["loss"] for epoch in state["history"]["m"]]
    assert len(losses) == 5 and np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(np.isfinite(w).all() for w in model.get_weights())
    saved = keras.saving.load_model(path, safe_mode=True).get_weights()
    for a, b in zip(saved, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_with_nothing_to_resume(tone_dataset, tmp_path):
    from specsynth.model.train import train

    with pytest.raises(ConfigError, match="nothing to resume"):
        train(tone_dataset, tmp_path / "model", settings=tiny_settings(), resume=True, verbose=0, log=print)
    assert list(tmp_path.iterdir()) == []
