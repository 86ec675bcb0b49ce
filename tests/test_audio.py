"""Audio in and out: formats, mix-down, resampling, normalization, atomic writes."""
from __future__ import annotations

import os
import stat

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from conftest import SR, folder_snapshot, harmonic_tone, noise_burst, peak_frequency, sine, write_wav
from specsynth import AudioError, ConfigError, OutputError, audio, files

PEAK_MINUS_1_DB = 10 ** (-1 / 20)

FORMATS = {
    "wav": dict(format="WAV", subtype="PCM_16"),
    "flac": dict(format="FLAC", subtype="PCM_16"),
    "ogg": dict(format="OGG", subtype="VORBIS"),
    "mp3": dict(format="MP3", subtype="MPEG_LAYER_III"),
}


def _temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith(".write-test")]


# ---------------------------------------------------------------------------------------------
# Loading


def _text_file(path):
    path.write_text("these are notes, not audio\n")
    return path


@pytest.mark.parametrize("ext", list(FORMATS))
def test_load_formats(tmp_path, ext):
    if FORMATS[ext]["format"] not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot handle {ext}")
    x = sine(440.0, 1.0, SR, amplitude=0.5)
    path = tmp_path / f"tone.{ext}"
    sf.write(str(path), x, SR, **FORMATS[ext])
    y, rate = audio.load(path, normalize=None)
    assert rate == SR and isinstance(rate, int)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == len(x)  # measured exact for all four formats here
    assert peak_frequency(y, rate) == pytest.approx(440.0, abs=0.5)
    # the level survives (lossy codecs measured within 0.03 dB)
    level_db = 20 * np.log10(np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)))
    assert abs(level_db) < 0.5
    # and the waveform lines up with the original (no codec delay left in)
    corr = np.dot(y, x) / np.sqrt(np.dot(x, x) * np.dot(y, y))
    assert corr > (0.999 if ext in ("wav", "flac") else 0.98)


def test_load_default_is_peak_normalized(tmp_path):
    path = write_wav(tmp_path / "quiet.wav", sine(440.0, 0.5, amplitude=0.05), subtype="FLOAT")
    y, _ = audio.load(path)
    assert np.max(np.abs(y)) == pytest.approx(PEAK_MINUS_1_DB, rel=1e-5)


def test_stereo_mixes_to_mono(tmp_path):
    left = sine(440.0, 0.5, amplitude=0.5)
    right = sine(660.0, 0.5, amplitude=0.3)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    y, rate = audio.load(path, normalize=None)
    assert y.shape == left.shape and rate == SR
    assert np.allclose(y, (left + right) / 2, atol=1e-6)


def test_opposite_channels_cancel_to_silence(tmp_path):
    x = sine(440.0, 0.5, amplitude=0.5)
    path = write_wav(tmp_path / "antiphase.wav", np.stack([x, -x], axis=1), subtype="FLOAT")
    y, _ = audio.load(path)  # peak normalization of silence must not divide by zero
    assert np.all(np.isfinite(y)) and np.all(y == 0)


def test_eight_channels_are_accepted(tmp_path):
    chans = np.stack([sine(200.0 * (k + 1), 0.25, amplitude=0.1) for k in range(8)], axis=1)
    path = write_wav(tmp_path / "octo.wav", chans, subtype="FLOAT")
    y, _ = audio.load(path, normalize=None)
    assert np.allclose(y, chans.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("n", [44100, 66157])
def test_resample_44k1_to_16k_keeps_pitch_and_length(tmp_path, n):
    x = sine(440.0, n / 44100, 44100, amplitude=0.5)[:n]
    path = write_wav(tmp_path / "cd.wav", x, 44100, subtype="FLOAT")
    y, rate = audio.load(path, sample_rate=16000, normalize=None)
    assert rate == 16000
    assert len(y) == round(n * 16000 / 44100)
    assert peak_frequency(y, 16000) == pytest.approx(440.0, abs=0.5)
    assert np.sqrt(np.mean(y[100:-100] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_resample_removes_content_above_the_new_nyquist():
    x = sine(440.0, 1.0, 44100, amplitude=0.3) + sine(12000.0, 1.0, 44100, amplitude=0.3)
    y = audio.resample(x, 44100, 16000)
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    # 12 kHz would alias to 4 kHz if it were not filtered out
    near_4k = spec[(freqs > 3900) & (freqs < 4100)].max()
    near_440 = spec[(freqs > 400) & (freqs < 480)].max()
    assert 20 * np.log10(near_4k / near_440) < -60


def test_same_rate_is_untouched():
    x = harmonic_tone(220.0, 0.25)
    assert np.array_equal(audio.resample(x, SR, SR), x)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: d, "directory"),
        (lambda d: _text_file(d / "notes.wav"), "not a readable audio file"),
        (lambda d: write_wav(d / "empty.wav", np.zeros(0, np.float32)), "no samples"),
        (lambda d: write_wav(d / "nan.wav", np.array([0.1, np.nan] * 100, np.float32), subtype="FLOAT"), "NaN"),
        (lambda d: write_wav(d / "nine.wav", np.zeros((100, 9), np.float32)), "9 channels"),
        (lambda d: write_wav(d / "slow.wav", np.zeros(100, np.float32), 2000), "2000 Hz"),
        (lambda d: write_wav(d / "long.wav", np.zeros(3 * SR, np.float32)), "limit"),
    ],
)
def test_load_rejects_bad_files_with_one_line_naming_them(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(AudioError) as err:
        audio.load(path, max_seconds=2.0)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


# ---------------------------------------------------------------------------------------------
# Normalization


@pytest.mark.parametrize("peak_db", [-1.0, -6.0, 0.0])
def test_peak_normalization(peak_db):
    x = harmonic_tone(220.0, 0.5, amplitude=0.2)
    y = audio.normalize_audio(x, mode="peak", peak_db=peak_db)
    assert y.dtype == np.float32
    assert np.max(np.abs(y)) == pytest.approx(10 ** (peak_db / 20), rel=1e-5)
    assert np.allclose(y / np.max(np.abs(y)), x / np.max(np.abs(x)), atol=1e-6)  # only a gain


@pytest.mark.parametrize("make", [lambda: harmonic_tone(220.0, 2.0), lambda: noise_burst(2.0, burst=(0.1, 1.9))])
@pytest.mark.parametrize("target", [-20.0, -26.0])
def test_loudness_normalization_hits_the_target(make, target):
    x = make()
    y = audio.normalize_audio(x, mode="loudness", loudness_lufs=target, sample_rate=SR)
    lufs = pyloudnorm.Meter(SR).integrated_loudness(y.astype(np.float64))
    assert lufs == pytest.approx(target, abs=0.2)  # measured within 1e-6 LU
    assert np.max(np.abs(y)) <= PEAK_MINUS_1_DB + 1e-6


def test_loudness_normalization_never_clips():
    x = sine(440.0, 2.0, amplitude=0.01)
    x[SR] = 1.0  # one spike: reaching -20 LUFS would push it far over full scale
    y = audio.normalize_audio(x, mode="loudness", sample_rate=SR)
    assert np.max(np.abs(y)) == pytest.approx(PEAK_MINUS_1_DB, rel=1e-5)
    assert pyloudnorm.Meter(SR).integrated_loudness(y.astype(np.float64)) < -20.0


def test_loudness_of_a_very_short_sound_is_only_peak_limited():
    # shorter than one 400 ms BS.1770 gating block: no loudness to measure, so only the peak limit
    # applies (a quiet one is left as it is, a loud one is brought down to -1 dBFS)
    quiet = sine(440.0, 0.2, amplitude=0.1)
    y = audio.normalize_audio(quiet, mode="loudness", sample_rate=SR)
    assert np.all(np.isfinite(y)) and np.allclose(y, quiet)
    loud = sine(440.0, 0.2, amplitude=1.0)
    y = audio.normalize_audio(loud, mode="loudness", sample_rate=SR)
    assert np.max(np.abs(y)) == pytest.approx(PEAK_MINUS_1_DB, rel=1e-5)


@pytest.mark.parametrize("mode", ["peak", "loudness"])
def test_silence_normalizes_to_silence(mode):
    for x in (np.zeros(SR, np.float32), np.full(SR, 1e-12, np.float32)):
        y = audio.normalize_audio(x, mode=mode, sample_rate=SR)
        assert y.shape == x.shape and np.all(np.isfinite(y)) and np.all(y == 0)


def test_normalize_parameters():
    x = harmonic_tone(220.0, 0.5)
    assert audio.normalize_audio(x, mode=None) is x
    with pytest.raises(ConfigError, match="normalize"):
        audio.normalize_audio(x, mode="rms")
    with pytest.raises(ConfigError, match="sample rate"):
        audio.normalize_audio(x, mode="loudness")


# ---------------------------------------------------------------------------------------------
# Writing


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_write_round_trip(tmp_path, ext):
    x = harmonic_tone(220.0, 0.5)
    path = audio.write(tmp_path / f"out.{ext}", x, SR)
    assert path == tmp_path / f"out.{ext}"
    y, rate = sf.read(str(path), dtype="float32")
    assert rate == SR and len(y) == len(x)
    assert np.max(np.abs(y - x)) <= 1.0 / 32768 + 1e-7  # 16-bit PCM
    assert _temp_files(tmp_path) == []


def test_write_turns_down_instead_of_clipping_and_removes_nan(tmp_path):
    x = np.array([0.5, 2.0, -3.0, np.nan, np.inf, -0.25], np.float32)
    y, _ = sf.read(str(audio.write(tmp_path / "wild.wav", x, SR, subtype="FLOAT")), dtype="float32")
    np.testing.assert_allclose(y, [0.5 / 3, 2.0 / 3, -1.0, 0.0, 0.0, -0.25 / 3], atol=1e-6)


def test_write_refuses_to_replace_without_overwrite(tmp_path):
    path = tmp_path / "keep.wav"
    audio.write(path, harmonic_tone(220.0, 0.3), SR)
    original = path.read_bytes()
    with pytest.raises(OutputError, match="already exists") as err:
        audio.write(path, harmonic_tone(330.0, 0.3), SR)
    assert str(path) in str(err.value)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]


def test_write_with_overwrite_replaces(tmp_path):
    path = tmp_path / "replace.wav"
    audio.write(path, harmonic_tone(220.0, 0.3), SR)
    original = path.read_bytes()
    new = sine(1000.0, 0.2, amplitude=0.4)
    audio.write(path, new, SR, overwrite=True)
    assert path.read_bytes() != original
    y, _ = sf.read(str(path), dtype="float32")
    assert len(y) == len(new) and peak_frequency(y, SR) == pytest.approx(1000.0, abs=1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replace.wav"]


def test_failed_write_leaves_the_original_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "precious.wav"
    audio.write(path, harmonic_tone(220.0, 0.3), SR)
    original = path.read_bytes()

    real_write = sf.write

    def write_half_then_fail(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audio.sf, "write", write_half_then_fail)
    with pytest.raises(OutputError, match="disk is full"):
        audio.write(path, harmonic_tone(330.0, 0.3), SR, overwrite=True)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.wav"]
    monkeypatch.undo()
    # an encoder that refuses the request outright (WAV has no Vorbis subtype) leaves nothing either
    with pytest.raises(Exception):
        audio.write(path, harmonic_tone(330.0, 0.3), SR, overwrite=True, subtype="VORBIS")
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.wav"]


def test_atomic_output_cleans_up_after_an_exception(tmp_path):
    target = tmp_path / "index.json"
    with pytest.raises(RuntimeError):
        with files.atomic_output(target) as tmp:
            with open(tmp, "w") as f:
                f.write("{half")
            raise RuntimeError("crash in the middle")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with files.atomic_output(target) as tmp:
        with open(tmp, "w") as f:
            f.write("{}")
    assert target.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_written_files_get_ordinary_permissions(tmp_path):
    """Temporary files are private (0600); the renamed output must get what open() would give."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    expected = stat.S_IMODE(plain.stat().st_mode)
    path = audio.write(tmp_path / "out.wav", harmonic_tone(220.0, 0.2), SR)
    assert stat.S_IMODE(path.stat().st_mode) == expected
    # replacing a file keeps that file's permissions
    os.chmod(path, 0o640)
    audio.write(path, harmonic_tone(330.0, 0.2), SR, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_write_errors(tmp_path):
    x = harmonic_tone(220.0, 0.2)
    with pytest.raises(OutputError, match=".mp3"):
        audio.write(tmp_path / "out.mp3", x, SR)
    with pytest.raises(ConfigError, match="mono"):
        audio.write(tmp_path / "stereo.wav", np.stack([x, x], axis=1), SR)
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file")
    with pytest.raises(OutputError) as err:
        audio.write(blocker / "sub" / "out.wav", x, SR)
    assert str(blocker / "sub" / "out.wav") in str(err.value)
    with pytest.raises(OutputError, match="not a folder"):
        files.check_writable_dir(blocker)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_check_writable_dir_creates_and_leaves_nothing(tmp_path):
    folder = files.check_writable_dir(tmp_path / "a" / "b")
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_file_info(tmp_path):
    path = write_wav(tmp_path / "info.wav", np.zeros((24000, 2), np.float32), 48000)
    info = audio.file_info(path)
    assert info["sample_rate"] == 48000 and info["channels"] == 2 and info["frames"] == 24000
    assert info["seconds"] == pytest.approx(0.5) and info["format"] == "WAV"
    with pytest.raises(AudioError, match="no such file"):
        audio.file_info(tmp_path / "nope.wav")
    assert folder_snapshot(tmp_path).keys() == {"info.wav"}


def test_write_turns_loud_audio_down_instead_of_clipping(tmp_path):
    x = 2.0 * sine(440.0, 0.2)
    path = audio.write(tmp_path / "loud.wav", x, SR)
    y, _ = sf.read(str(path), dtype="float32")
    assert np.max(np.abs(y)) <= 1.0
    np.testing.assert_allclose(y, x / np.max(np.abs(x)), atol=1e-3)  # the same shape, not clipped
