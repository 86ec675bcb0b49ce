"""The app's pure helpers (specsynth/ui.py, specsynth/pictures.py), without Streamlit: the upload
handler one bad input at a time, WAV bytes, spectrogram pictures and their axes, the pad's clicks."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, harmonic_tone
from specsynth import pictures, ui


def wav(x, sr=SR, subtype="PCM_16"):
    buf = io.BytesIO()
    sf.write(buf, np.asarray(x), sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def read(data, name="sound.wav", **kwargs):
    return ui.read_upload(data, name, sample_rate=SR, **kwargs)


def test_read_upload_accepts_audio_and_resamples():
    result = read(wav(harmonic_tone(220.0, seconds=0.5, sr=44100), sr=44100), "take 1.wav")
    assert result.ok and result.error is None
    assert result.samples.dtype == np.float32 and len(result.samples) == SR // 2
    assert 0.8 < np.max(np.abs(result.samples)) <= 1.0  # peak-normalized like library notes


@pytest.mark.parametrize("case, expected", [
    ("not audio", "not a readable audio file"),
    ("empty", "the file is empty"),
    ("no samples", "contains no samples"),
    ("too long", "is 31.0 s long; the limit is 30 s"),
    ("too large", "uploads are limited to 10 MB"),
    ("nan", "contains NaN or infinite samples"),
    ("silent", "the audio is silent"),
])
def test_read_upload_rejects_bad_input_with_one_line(case, expected):
    data = {
        "not audio": lambda: b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4,
        "empty": lambda: b"",
        "no samples": lambda: wav(np.zeros(0, np.float32)),
        "too long": lambda: wav(np.zeros(31 * 4000, np.float32) + 0.1, sr=4000),
        "too large": lambda: b"\0" * (ui.MAX_UPLOAD_BYTES + 1),
        "nan": lambda: wav(np.full(1000, np.nan, np.float32), subtype="FLOAT"),
        "silent": lambda: wav(np.zeros(SR, np.float32)),
    }[case]()
    result = read(data, "upload.wav")
    assert not result.ok and result.samples is None
    assert result.error.startswith("upload.wav: ") and expected in result.error, result.error
    assert "\n" not in result.error and "specsynth-upload-" not in result.error


def test_wav_bytes_keep_the_level():
    x = 0.25 * np.sin(np.linspace(0, 200, SR)).astype(np.float32)
    y, sr = sf.read(io.BytesIO(ui.wav_bytes(x, SR)), dtype="float32")
    info = sf.info(io.BytesIO(ui.wav_bytes(x, SR)))
    assert sr == SR and info.subtype == "PCM_16"
    assert abs(np.max(np.abs(y)) - np.max(np.abs(x))) < 1e-3  # not rescaled to full scale
    # a render above full scale is turned down as a whole, not clipped
    loud, _ = sf.read(io.BytesIO(ui.wav_bytes(4 * x, SR)), dtype="float32")
    np.testing.assert_allclose(loud, y / np.max(np.abs(y)) * np.max(np.abs(loud)), atol=2e-4)
    assert 0.99 < np.max(np.abs(loud)) <= 1.0


def test_spectrogram_picture(config):
    from specsynth import spectral

    frames = spectral.analyze(harmonic_tone(440.0, seconds=0.5), config)
    rgb = pictures.spectrogram_rgb(frames, config, height=120)
    assert rgb.shape == (120, len(frames), 3) and rgb.dtype == np.uint8
    # the tone's energy is low on a log axis: the bottom half is brighter than the top rows
    assert rgb[60:].mean() > rgb[:20].mean()
    png = pictures.spectrogram_png(frames, config, width=300, height=100, axes=False)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert pictures.xy_pad_rgb(0.25, 0.75, size=64).shape == (64, 64, 3)


def test_spectrogram_axes(config):
    from PIL import Image

    from specsynth import spectral

    frames = spectral.analyze(harmonic_tone(440.0, seconds=1.0), config)
    bare = Image.open(io.BytesIO(pictures.spectrogram_png(frames, config, width=300, height=100, axes=False)))
    framed = Image.open(io.BytesIO(pictures.spectrogram_png(frames, config, width=300, height=100)))
    assert bare.size == (300, 100) and framed.width > bare.width and framed.height > bare.height
    rgb = np.asarray(framed.convert("RGB")).astype(int)
    left = rgb[:, :pictures.LEFT - 4]  # the frequency labels
    below = rgb[pictures.TOP + 100 + 3:, pictures.LEFT:]  # the time labels
    for margin in (left, below):
        assert (np.abs(margin - 255).sum(axis=2) > 100).sum() > 50  # ink, not just background
    # the plot itself is the bare picture
    np.testing.assert_array_equal(rgb[pictures.TOP:pictures.TOP + 100, pictures.LEFT:pictures.LEFT + 300],
                                  np.asarray(bare.convert("RGB")))
    # labels read in Hz on a log axis and in seconds
    assert [pictures.hz_label(f) for f in (100, 1000, 2500)] == ["100", "1k", "2.5k"]


def test_pad_click_maps_pixels_to_the_pad():
    layout = pictures.PadLayout(pad=101, side=50)
    w, h = layout.size
    assert ui.pad_click({"x": 50, "y": 100, "width": w, "height": h}, layout) == (0.0, 0.0)
    assert ui.pad_click({"x": 150, "y": 0, "width": w, "height": h}, layout) == (1.0, 1.0)
    # shown at half size: pixels of the shown picture
    assert ui.pad_click({"x": 50, "y": 25, "width": w / 2, "height": h / 2}, layout) == (0.5, 0.5)
    # a click on a corner's thumbnail goes to that corner; a drag to its release point
    assert ui.pad_click({"x": 3, "y": 5, "width": w, "height": h}, layout) == (0.0, 0.95)
    assert ui.pad_click({"x1": 0, "y1": 0, "x2": 75, "y2": 75, "width": w, "height": h}, layout) == (0.25, 0.25)
    assert ui.pad_click(None, layout) is None and ui.pad_click({"width": 3}, layout) is None
