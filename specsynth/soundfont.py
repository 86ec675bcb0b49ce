"""NSynth-like notes rendered offline from a General MIDI soundfont (no TensorFlow here).

The default soundfont is TimGM6mb.sf2, which the ``pretty_midi`` package ships; tinysoundfont
renders it. A note is held for ``hold`` seconds and then released, ``seconds`` long in all.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import AudioError, ConfigError

# General MIDI program names (0-based), for labels and the app's sound library.
GM_PROGRAMS = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ",
    "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar",
    "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
    "Fretless Bass", "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola",
    "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs",
    "Voice Oohs", "Synth Choir", "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax",
    "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet", "Piccolo", "Flute",
    "Recorder", "Pan Flute", "Blown bottle", "Shakuhachi", "Whistle", "Ocarina", "Lead 1 (square)",
    "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)",
    "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)",
    "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto",
    "Kalimba", "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise", "Breath Noise",
    "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)


def default_soundfont():
    """Path of the General MIDI soundfont that pretty_midi ships (TimGM6mb.sf2)."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise ConfigError(f"{path}: pretty_midi's soundfont is missing; reinstall pretty_midi")
    return path


def _synth(soundfont, sample_rate):
    # A fresh synth per note (about 10 ms): a reused one keeps channel and voice state between
    # notes, so the same note would not always render to the same samples.
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate, gain=0)
    sfid = synth.sfload(soundfont)
    return synth, sfid


def render_note(program, pitch, *, velocity=100, seconds=4.0, hold=3.0, sample_rate=16000, soundfont=None):
    """One note of a General MIDI program, mono float32 ``[round(seconds * sample_rate)]``.

    Parameters
    ----------
    program : int
        General MIDI program, 0..127 (0 is Acoustic Grand Piano).
    pitch : int
        MIDI note number, 0..127 (60 is middle C).
    velocity : int
        1..127.
    seconds, hold : float
        Total length and the time the key is held, in seconds.
    sample_rate : int
        Hz.
    soundfont : str or None
        An .sf2 file; default :func:`default_soundfont`.

    The result is not normalized (soundfont levels are kept); it may be silent for programs
    and pitches the soundfont does not cover.
    """
    if not 0 <= int(program) <= 127 or not 0 <= int(pitch) <= 127 or not 1 <= int(velocity) <= 127:
        raise ConfigError(f"program and pitch must be 0..127 and velocity 1..127, got {program}, {pitch}, {velocity}")
    synth, sfid = _synth(soundfont or default_soundfont(), int(sample_rate))
    synth.program_select(0, sfid, 0, int(program))
    n_total = int(round(seconds * sample_rate))
    n_hold = min(int(round(hold * sample_rate)), n_total)
    synth.noteon(0, int(pitch), int(velocity))
    held = np.frombuffer(synth.generate(n_hold), dtype=np.float32) if n_hold else np.zeros(0, np.float32)
    synth.noteoff(0, int(pitch))
    rest = np.frombuffer(synth.generate(n_total - n_hold), dtype=np.float32) if n_total > n_hold else np.zeros(0, np.float32)
    stereo = np.concatenate([held, rest]).reshape(-1, 2)
    return stereo.mean(axis=1).astype(np.float32)


def note_name(program, pitch):
    """A readable label, e.g. ``"Cello (042) C4 (60)"``."""
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    return f"{GM_PROGRAMS[program]} ({program:03d}) {names[pitch % 12]}{pitch // 12 - 1} ({pitch})"


def render_gm(note, sample_rate):
    """A :class:`~specsynth.limits.GMNote` rendered at ``sample_rate`` Hz, held for ``note.hold``
    seconds and peak-normalized: mono float32 ``[round(note.seconds * sample_rate)]``.

    Raises AudioError if the soundfont has nothing for that program and pitch (the note is silent).
    """
    from .audio import normalize_audio

    x = render_note(note.program, note.pitch, seconds=note.seconds, hold=note.hold, sample_rate=sample_rate)
    if float(np.abs(x).max(initial=0.0)) < 1e-4:
        raise AudioError(f"soundfont note {note.spec} is silent")
    return normalize_audio(x)
