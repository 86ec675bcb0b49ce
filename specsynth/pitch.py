"""Pitch labels and the pitch features that condition the model (no TensorFlow here).

A label is a MIDI note 0..127, or ``UNPITCHED`` (128) for sounds with no clear pitch.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from . import spectral
from .errors import ConfigError

UNPITCHED = 128
_NAME_PITCH = re.compile(r"[_-](\d{1,3})(?:[_-]\d{1,3})?$")  # name_60 or NSynth's name-060-100


def midi_to_hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69) / 12)


def check_pitch(pitch):
    """Validate a label: int 0..128 (128 = unpitched). Returns it as int."""
    message = f"pitch must be a MIDI note 0..127 or {UNPITCHED} (unpitched), got {pitch!r}"
    try:
        value = int(pitch)
    except (TypeError, ValueError):
        raise ConfigError(message) from None
    if isinstance(pitch, bool) or (isinstance(pitch, float) and pitch != value) or not 0 <= value <= UNPITCHED:
        raise ConfigError(message)
    return value


def pitch_from_name(path):
    """MIDI pitch from an NSynth-style file name (``cello_60.wav``, ``guitar-062-100.wav``), or None."""
    match = _NAME_PITCH.search(Path(path).stem)
    if not match:
        return None
    value = int(match.group(1))
    return value if 0 <= value <= 127 else None


def estimate_pitch(samples, sample_rate):
    """Median f0 of the voiced frames by ``librosa.pyin``, rounded to a MIDI note; UNPITCHED if
    fewer than 20% of frames are voiced."""
    import librosa

    f0, voiced, prob = librosa.pyin(
        np.asarray(samples, np.float32), fmin=librosa.note_to_hz("C1"), fmax=librosa.note_to_hz("C7"),
        sr=sample_rate, frame_length=2048,
    )
    # pyin's HMM can sit in its voiced state through white noise at ~1% voicing probability;
    # such frames are not evidence of a pitch
    voiced = voiced & (prob >= 0.1)
    if voiced.mean() < 0.2 or not np.any(np.isfinite(f0[voiced])):
        return UNPITCHED
    return int(np.clip(np.round(librosa.hz_to_midi(np.nanmedian(f0[voiced]))), 0, 127))


COMB_FLOOR_DB = -60.0
PITCH_EXTRA = 4  # after the comb: unpitched flag, midi / 127, sin and cos of midi / 96 turns


def _hann_kernel(d):
    """Power response of a Hann window ``d`` bins away from a sinusoid (1 at d = 0)."""
    d = np.asarray(d, np.float64)
    near_one = np.isclose(np.abs(d), 1.0)
    safe = np.where(near_one, 0.5, d)
    k = np.sinc(safe) / (1.0 - safe**2)
    return np.where(near_one, 0.25, k**2)


@functools.lru_cache(maxsize=8)
def _feature_table(config):
    """[129, n_features + 4]: for each MIDI note, the dB shape a perfectly harmonic sound leaves in a
    frame (the Hann window's response summed over every partial below Nyquist, 0 dB on the
    partials, floored at -60 dB between them) divided by 20; then an 'unpitched' flag and three
    smooth pitch features."""
    bins = np.arange(config.n_bins)
    bin_hz = config.sample_rate / config.n_fft
    table = np.zeros((UNPITCHED + 1, config.n_features + PITCH_EXTRA), np.float32)
    for midi in range(128):
        f0 = float(midi_to_hz(midi))
        partials = f0 * np.arange(1, int(config.sample_rate / 2 / f0) + 1) / bin_hz
        if partials.size == 0:
            continue
        power = np.zeros(config.n_bins)
        for start in range(0, partials.size, 64):  # chunks keep the [bins, partials] array small
            d = bins[:, None] - partials[None, start : start + 64]
            power += np.where(np.abs(d) < 12, _hann_kernel(d), 0.0).sum(axis=1)
        if config.representation == "mel":
            basis = spectral.mel_basis(config)
            power = (basis @ power) / np.maximum(basis.sum(axis=1), 1e-9)
        db = 10 * np.log10(np.maximum(power / power.max(), 10 ** (COMB_FLOOR_DB / 10)))
        table[midi, : config.n_features] = db / 20.0
    # The smooth description of pitch the networks embed (the comb above only shapes the output):
    # position on the keyboard and two slow periodic features, all continuous in MIDI number,
    # so pitches between the trained ones get embeddings between theirs.
    midi = np.arange(128, dtype=np.float64)
    smooth = np.stack([midi / 127.0, np.sin(2 * np.pi * midi / 96), np.cos(2 * np.pi * midi / 96)], axis=1)
    table[:128, config.n_features + 1 :] = smooth
    table[UNPITCHED, config.n_features] = 1.0
    table.setflags(write=False)
    return table


def pitch_features(pitch, config):
    """Conditioning vector(s) ``[..., n_features + 4]`` for label(s) ``pitch`` (int or int array)."""
    return _feature_table(config)[np.asarray(pitch, dtype=np.int64)]
