"""Audio input and output: load, mix down, resample, normalize, and write atomically.

File and folder writing in general lives in :mod:`specsynth.files`.

All audio inside specsynth is mono float32 in [-1, 1] at an int sample rate in Hz.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, ConfigError, OutputError
from .files import atomic_output, why_unreadable
from .limits import MAX_INPUT_SECONDS

MIN_RATE = 4_000
MAX_RATE = 384_000
MAX_CHANNELS = 8
WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def load(path, *, sample_rate=None, max_seconds=MAX_INPUT_SECONDS, normalize="peak"):
    """Read an audio file as mono float32, optionally resampled and normalized.

    Parameters
    ----------
    path : str or Path
        WAV, FLAC, OGG, MP3 or anything else libsndfile reads.
    sample_rate : int or None
        Resample to this rate in Hz; ``None`` keeps the file's rate.
    max_seconds : float or None
        Refuse files longer than this (seconds); ``None`` for no limit.
    normalize : {"peak", "loudness", None}
        See :func:`normalize`.

    Returns
    -------
    samples : np.ndarray, float32, shape [n]
    sample_rate : int

    Raises
    ------
    AudioError
        Missing file, a directory, not audio, a corrupt header, no samples, NaN or infinite
        samples, more than 8 channels, a rate outside 4 kHz..384 kHz, or too long.
    """
    path = Path(path)
    check_input(path, max_seconds=max_seconds)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"audio data is corrupt or truncated ({_first_line(exc)})", path=path) from None
    if data.shape[0] == 0:
        raise AudioError("contains no samples", path=path)
    if not np.all(np.isfinite(data)):
        raise AudioError("contains NaN or infinite samples", path=path)
    samples = data.mean(axis=1).astype(np.float32)
    rate = int(rate)
    if sample_rate is not None and int(sample_rate) != rate:
        samples = resample(samples, rate, int(sample_rate))
        rate = int(sample_rate)
    return normalize_audio(samples, mode=normalize, sample_rate=rate), rate


def check_input(path, *, max_seconds=MAX_INPUT_SECONDS):
    """Check an audio input from its header alone (what :func:`load` checks before reading the
    samples), so a command can refuse a bad file before any model loads. Returns the file's
    ``soundfile`` info."""
    info = _header(path)
    _check_info(info, path, max_seconds)
    return info


def _header(path):
    path = Path(path)
    problem = why_unreadable(path)
    if problem is not None:
        raise AudioError(problem, path=path)
    if path.is_dir():
        raise AudioError("is a directory, not an audio file", path=path)
    try:
        return sf.info(str(path))
    except Exception as exc:  # libsndfile's messages vary by format; one line is enough
        raise AudioError(f"not a readable audio file ({_first_line(exc)})", path=path) from None


def check_output(path):
    """Refuse an audio output whose extension is neither .wav nor .flac (before any work is done)."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_FORMATS:
        raise OutputError(f"cannot write {path.suffix or 'files without an extension'}; use .wav or .flac", path=path)
    return path


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_info(info, path, max_seconds):
    if info.channels > MAX_CHANNELS:
        raise AudioError(f"has {info.channels} channels; at most {MAX_CHANNELS} are supported", path=path)
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(
            f"sample rate {info.samplerate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz", path=path
        )
    if info.frames == 0:
        raise AudioError("contains no samples", path=path)
    seconds = info.frames / info.samplerate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"is {seconds:.1f} s long; the limit is {max_seconds:g} s", path=path)


def resample(samples, orig_rate, target_rate):
    """Resample mono float32 audio with soxr (high quality). Shapes: [n] -> [round(n*target/orig)]."""
    if orig_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(samples.astype(np.float32, copy=False), orig_rate, target_rate, quality="HQ").astype(
        np.float32
    )


def normalize_audio(samples, *, mode="peak", peak_db=-1.0, loudness_lufs=-20.0, sample_rate=None):
    """Scale audio to a peak (default -1 dBFS) or an integrated loudness (ITU-R BS.1770, LUFS).

    Silence stays silence: nothing is divided by zero. ``mode=None`` returns the input unchanged.
    Loudness normalization is followed by a peak limit at ``peak_db`` so it never clips.
    """
    if mode is None:
        return samples
    if mode not in ("peak", "loudness"):
        raise ConfigError(f"normalize must be 'peak', 'loudness' or None, not {mode!r}")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak < 1e-9:
        return np.zeros_like(samples, dtype=np.float32)
    target_peak = 10 ** (peak_db / 20)
    if mode == "loudness":
        if sample_rate is None:
            raise ConfigError("loudness normalization needs the sample rate")
        import pyloudnorm

        meter = pyloudnorm.Meter(sample_rate)
        if samples.size >= int(0.4 * sample_rate):  # BS.1770 gates need at least one 400 ms block
            lufs = meter.integrated_loudness(samples.astype(np.float64))
            if np.isfinite(lufs):
                samples = samples * np.float32(10 ** ((loudness_lufs - lufs) / 20))
                peak = float(np.max(np.abs(samples)))
        if peak <= target_peak:
            return samples.astype(np.float32)
    return (samples * np.float32(target_peak / peak)).astype(np.float32)


def fit_full_scale(samples, *, ceiling=1.0):
    """``samples`` as they are, or turned down as a whole to a peak of ``ceiling`` (default 1.0,
    full scale) if they would exceed it: outputs are never clipped. Non-finite samples become
    silence."""
    x = np.nan_to_num(np.asarray(samples, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x * np.float32(ceiling / peak) if peak > ceiling else x


def match_rms(samples, reference):
    """``samples`` scaled as a whole to the RMS level of ``reference``; silence (in either) stays
    as it is."""
    x = np.asarray(samples, np.float32)
    have = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    want = float(np.sqrt(np.mean(np.square(np.asarray(reference, np.float64))))) if np.size(reference) else 0.0
    return x * np.float32(want / have) if have > 0 and want > 0 else x


def write(path, samples, sample_rate, *, overwrite=False, subtype="PCM_16"):
    """Write mono audio to WAV or FLAC atomically: a temporary file in the same folder, then rename.

    Audio above full scale is turned down as a whole (:func:`fit_full_scale`), never clipped.
    Raises OutputError if the file exists and ``overwrite`` is false, if the folder is not
    writable or full, or if the extension is neither .wav nor .flac. Nothing is left behind on
    failure.
    """
    path = check_output(path)
    fmt = WRITE_FORMATS[path.suffix.lower()]
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ConfigError(f"expected mono samples of shape [n], got shape {samples.shape}")
    samples = fit_full_scale(samples)
    with atomic_output(path, overwrite=overwrite) as tmp:
        sf.write(tmp, samples, int(sample_rate), format=fmt, subtype=subtype)
    return path


def measure(samples, sample_rate):
    """Levels and bandwidth of mono audio: a dict of ``peak_dbfs``, ``rms_dbfs``, ``loudness_lufs``
    (ITU-R BS.1770; None under 0.4 s or for silence) and ``bandwidth_hz`` (the frequency below
    which 99% of the energy lies). Silence reads -inf dBFS and 0 Hz."""
    x = np.asarray(samples, np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    db = lambda v: 20 * np.log10(v) if v > 0 else float("-inf")  # noqa: E731
    lufs = None
    if x.size >= int(0.4 * sample_rate) and peak > 0:
        import pyloudnorm

        value = pyloudnorm.Meter(sample_rate).integrated_loudness(x)
        lufs = float(value) if np.isfinite(value) else None
    power = np.abs(np.fft.rfft(x)) ** 2 if x.size else np.zeros(1)
    total = float(power.sum())
    bandwidth = 0.0
    if total > 0:
        k = int(np.searchsorted(np.cumsum(power), 0.99 * total))
        bandwidth = k * sample_rate / max(1, len(x))
    return {"peak_dbfs": db(peak), "rms_dbfs": db(rms), "loudness_lufs": lufs, "bandwidth_hz": bandwidth}


def file_info(path):
    """A dict describing an audio file without decoding it all (for `specsynth info`)."""
    path = Path(path)
    info = _header(path)
    return {
        "path": str(path),
        "format": info.format,
        "subtype": info.subtype,
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "frames": int(info.frames),
        "seconds": info.frames / info.samplerate if info.samplerate else 0.0,
    }
