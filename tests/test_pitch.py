"""Pitch contour tracking (specsynth.pitch.track) on audio made here, and the contour helpers."""
from __future__ import annotations

import numpy as np
import pytest

from specsynth import pitch, spectral
from specsynth.errors import ConfigError

SR, HOP, N_FFT = 16000, 256, 1024
CONFIG = spectral.SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop=HOP)


def frame_times(n_frames, *, sr=SR, hop=HOP, n_fft=N_FFT):
    """Centre of each analysis frame, seconds (frame k is centred at k*hop + hop - n_fft/2)."""
    return (np.arange(n_frames) * hop + hop - n_fft / 2) / sr


def tone(midi_of_t, seconds=2.0, *, sr=SR, harmonics=(1.0,), amplitude=0.5):
    """A tone following the MIDI contour ``midi_of_t(t)`` (phase integrated), with the given
    harmonic amplitudes (harmonic 1 first)."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(pitch.midi_to_hz(midi_of_t(t))) / sr
    x = sum(a * np.sin(k * phase + 0.4 * k) for k, a in enumerate(harmonics, start=1) if a)
    return (amplitude * x / np.max(np.abs(x))).astype(np.float32)


def cents_error(contour, midi_of_t):
    """Cents error on voiced frames, and the voiced fraction."""
    truth = midi_of_t(frame_times(len(contour)))
    voiced = contour.voiced
    return 100 * np.abs(contour.f0[voiced] - truth[voiced]), voiced.mean()


def test_frame_count_matches_analyze():
    for n in (500, 16000, 16001, 40000):
        x = np.zeros(n, np.float32)
        for config in (CONFIG, CONFIG.replace(n_fft=512, hop=128)):
            contour = pitch.track(x, sample_rate=config.sample_rate, hop=config.hop, n_fft=config.n_fft)
            assert len(contour) == spectral.analyze(x, config).shape[0]
    assert len(pitch.track(np.zeros(1000), sample_rate=SR, hop=HOP)) == spectral.n_frames(1000, CONFIG)


@pytest.mark.parametrize("midi", [33, 45, 57, 69, 81, 93])
def test_sines_within_20_cents(midi):
    contour = pitch.track(tone(lambda t: np.full_like(t, midi)), sample_rate=SR, hop=HOP, n_fft=N_FFT)
    error, voiced = cents_error(contour, lambda t: np.full_like(t, midi))
    assert voiced > 0.9 and error.max() < 20
    assert contour.f0.dtype == np.float32 and contour.voicing.dtype == np.float32


@pytest.mark.parametrize("harmonics", [(0.0, 1.0, 0.8, 0.6, 0.4), (0.2, 1.0, 0.3, 0.3)],
                         ids=["missing-fundamental", "strong-2nd"])
def test_harmonic_tone_has_no_octave_error(harmonics):
    contour = pitch.track(tone(lambda t: np.full_like(t, 50.0), harmonics=harmonics),
                          sample_rate=SR, hop=HOP, n_fft=N_FFT)
    error, voiced = cents_error(contour, lambda t: np.full_like(t, 50.0))
    assert voiced > 0.9 and error.max() < 20


def vibrato(t):
    return 64.0 + 0.5 * np.sin(2 * np.pi * 5.5 * t)


def glide(t):
    return 48.0 + 12.0 * np.clip(t / 2.0, 0, 1)


@pytest.mark.parametrize("shape", [vibrato, glide], ids=["vibrato", "glide"])
def test_moving_pitch_is_followed(shape):
    contour = pitch.track(tone(shape, harmonics=(1.0, 0.5, 0.3)), sample_rate=SR, hop=HOP, n_fft=N_FFT)
    error, voiced = cents_error(contour, shape)
    assert voiced > 0.9 and error.max() < 20
    if shape is vibrato:  # the vibrato itself survives (not smoothed away): +-50 cents
        f0 = contour.f0[contour.voiced]
        assert 80 < 100 * (np.percentile(f0, 98) - np.percentile(f0, 2)) < 120


def test_44k_framing_and_accuracy():
    sr, hop, n_fft = 44100, 512, 2048
    contour = pitch.track(tone(vibrato, sr=sr), sample_rate=sr, hop=hop, n_fft=n_fft)
    truth = vibrato(frame_times(len(contour), sr=sr, hop=hop, n_fft=n_fft))
    assert len(contour) == spectral.n_frames(2 * sr, spectral.SpectralConfig(sample_rate=sr, hop=hop, n_fft=n_fft))
    assert contour.voiced.mean() > 0.9
    assert np.max(np.abs(contour.f0 - truth)[contour.voiced]) * 100 < 20


@pytest.mark.parametrize("kind", ["noise", "silence", "quiet"])
def test_noise_and_silence_are_unvoiced(kind):
    rng = np.random.default_rng(1)
    x = {"noise": 0.3 * rng.standard_normal(2 * SR), "silence": np.zeros(2 * SR),
         "quiet": 1e-5 * tone(lambda t: np.full_like(t, 60.0))}[kind]
    contour = pitch.track(x, sample_rate=SR, hop=HOP, n_fft=N_FFT)
    assert np.mean(contour.voicing < 0.5) >= 0.9
    assert np.all(np.isfinite(contour.f0))
    if kind != "noise":
        assert not contour.voiced.any() and np.all(contour.f0 == pitch.HOLD_PITCH)


def test_short_clip_is_unvoiced_with_the_right_frame_count():
    x = tone(lambda t: np.full_like(t, 60.0))[:500]
    contour = pitch.track(x, sample_rate=SR, hop=HOP, n_fft=N_FFT)
    assert len(contour) == spectral.analyze(x, CONFIG).shape[0] == 5
    assert not contour.voiced.any()
    assert len(pitch.track(np.zeros(0), sample_rate=SR, hop=HOP, n_fft=N_FFT)) == N_FFT // HOP - 1


def test_unvoiced_frames_hold_the_nearest_voiced_value():
    x = np.concatenate([np.zeros(SR // 2), tone(lambda t: np.full_like(t, 62.0), 1.0), np.zeros(SR // 2)])
    contour = pitch.track(x, sample_rate=SR, hop=HOP, n_fft=N_FFT)
    assert not contour.voiced[:10].any() and not contour.voiced[-10:].any()
    np.testing.assert_allclose(contour.f0, 62.0, atol=0.2)


@pytest.mark.parametrize("program, note", [(73, 72), (42, 48), (0, 60)], ids=["flute", "cello", "piano"])
def test_soundfont_notes(program, note):
    from specsynth import soundfont

    x = soundfont.render_note(program, note, seconds=1.0, hold=0.7, sample_rate=SR)
    contour = pitch.track(x, sample_rate=SR, hop=HOP, n_fft=N_FFT)
    assert contour.voiced.mean() > 0.3
    assert abs(np.median(contour.f0[contour.voiced]) - note) * 100 < 20


def test_bad_input_is_a_config_error():
    x = np.zeros(SR, np.float32)
    with pytest.raises(ConfigError, match="mono"):
        pitch.track(np.zeros((2, SR)), sample_rate=SR, hop=HOP)
    for options in ({"hop": 0}, {"fmin": 500.0, "fmax": 100.0}, {"fmax": 5000.0}, {"threshold": 0.0},
                    {"smooth": 2}, {"n_fft": 1000}):
        with pytest.raises(ConfigError):
            pitch.track(x, **{"sample_rate": SR, "hop": HOP, **options})
    with pytest.raises(ConfigError, match="NaN"):
        pitch.track(np.full(SR, np.nan), sample_rate=SR, hop=HOP)


def test_flat_transpose_and_blend():
    line = pitch.flat(10, 60.5)
    assert len(line) == 10 and np.all(line.f0 == 60.5) and np.all(line.voicing == 1)
    wobble = pitch.Contour(f0=60 + 0.5 * np.sin(np.arange(40)), voicing=np.r_[np.zeros(5), np.ones(35)])
    up = pitch.transpose(wobble, 67)
    assert abs(np.median(up.f0[up.voiced]) - 67) < 1e-4
    np.testing.assert_allclose(np.diff(up.f0), np.diff(wobble.f0), atol=1e-5)  # vibrato kept
    np.testing.assert_array_equal(up.voicing, wobble.voicing)
    # blending is linear in MIDI (log-frequency): halfway between C4 and C5 is F#4, not 3/2 * 261 Hz
    mid = pitch.blend([pitch.flat(4, 60), pitch.flat(4, 72)], [1, 1])
    np.testing.assert_allclose(mid.f0, 66.0)
    quiet = pitch.Contour(f0=np.full(4, 50.0), voicing=np.zeros(4))
    mixed = pitch.blend([pitch.flat(4, 60), quiet], [3, 1])
    np.testing.assert_allclose(mixed.f0, 60.0)  # an unvoiced contour's held f0 does not pull a voiced one
    np.testing.assert_allclose(mixed.voicing, 0.75)
    half = pitch.Contour(f0=np.full(4, 72.0), voicing=np.full(4, 0.5))
    np.testing.assert_allclose(pitch.blend([pitch.flat(4, 60), half], [1, 1]).f0, 64.0)  # (60 + 0.5 * 72) / 1.5
    np.testing.assert_allclose(pitch.blend([quiet, quiet], [1, 3]).f0, 50.0)  # none voiced: plain weights
    cols = pitch.Contour.from_columns(np.array([[61.0, 0.2], [200.0, 1.5]]))
    np.testing.assert_allclose(cols.columns(), [[61.0, 0.2], [127.0, 1.0]])
    with pytest.raises(ConfigError, match="equal length"):
        pitch.blend([pitch.flat(4, 60), pitch.flat(5, 60)], [1, 1])
    with pytest.raises(ConfigError):
        pitch.blend([pitch.flat(4, 60)], [-1])
    with pytest.raises(ConfigError):
        pitch.transpose(line, 200)
    with pytest.raises(ConfigError):
        pitch.Contour(f0=np.full(3, np.nan), voicing=np.zeros(3))
