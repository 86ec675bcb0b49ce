"""Pitch labels and the pitch features that condition the model (no TensorFlow here).

A label is a MIDI note 0..127, or ``UNPITCHED`` (128) for sounds with no clear pitch.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

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


PITCH_FEATURES = 4  # unpitched flag, midi / 127, sin and cos of midi / 96 turns


def pitch_features(pitch):
    """Conditioning vector(s) ``[..., 4]`` for label(s) ``pitch`` (int or int array): an 'unpitched'
    flag, the position on the keyboard (the decoder reads f0 from it) and two slow periodic
    features, all continuous in MIDI number, so pitches between the trained ones get embeddings
    between theirs. The unpitched label has only its flag set."""
    p = np.asarray(pitch, dtype=np.int64)
    midi = np.where(p >= UNPITCHED, 0, p).astype(np.float64)
    pitched = (p < UNPITCHED).astype(np.float64)
    out = np.stack([1.0 - pitched, pitched * midi / 127.0, pitched * np.sin(2 * np.pi * midi / 96),
                    pitched * np.cos(2 * np.pi * midi / 96)], axis=-1)
    return out.astype(np.float32)
