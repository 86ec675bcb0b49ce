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

    f0, voiced, _ = librosa.pyin(
        np.asarray(samples, np.float32), fmin=librosa.note_to_hz("C1"), fmax=librosa.note_to_hz("C7"),
        sr=sample_rate, frame_length=2048,
    )
    if voiced.mean() < 0.2 or not np.any(np.isfinite(f0[voiced])):
        return UNPITCHED
    return int(np.clip(np.round(librosa.hz_to_midi(np.nanmedian(f0[voiced]))), 0, 127))


@functools.lru_cache(maxsize=8)
def _feature_table(config):
    """[129, n_features + 1]: a harmonic comb over the model's feature axis for each MIDI note
    (peaks at every harmonic below Nyquist, one bin wide), plus an 'unpitched' flag column."""
    freqs = np.arange(config.n_bins) * config.sample_rate / config.n_fft
    bin_hz = config.sample_rate / config.n_fft
    table = np.zeros((UNPITCHED + 1, config.n_features + 1), np.float32)
    for midi in range(128):
        f0 = midi_to_hz(midi)
        harmonics = f0 * np.arange(1, int(config.sample_rate / 2 / f0) + 1)
        if harmonics.size == 0:
            continue
        dist = np.abs(freqs[:, None] - harmonics[None, :]).min(axis=1) / bin_hz
        comb = np.exp(-0.5 * dist**2)
        if config.representation == "mel":
            basis = spectral.mel_basis(config)
            comb = (basis @ comb) / np.maximum(basis.sum(axis=1), 1e-9)
        table[midi, :-1] = comb
    table[UNPITCHED, -1] = 1.0
    table.setflags(write=False)
    return table


def pitch_features(pitch, config):
    """Conditioning vector(s) ``[..., n_features + 1]`` for label(s) ``pitch`` (int or int array)."""
    return _feature_table(config)[np.asarray(pitch, dtype=np.int64)]
