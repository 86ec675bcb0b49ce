"""Helpers for user interfaces (the Streamlit app, notebooks): the sound library, uploads,
WAV bytes, the XY pad's clicks and export jobs; pictures come from :mod:`specsynth.pictures`.

Nothing here imports Streamlit or TensorFlow, so every function can be tested on its own
(tests/test_app.py) and the app stays a thin layer over :mod:`specsynth.ops`.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from specsynth import audio
from specsynth.errors import SpecsynthError
from specsynth.limits import GMNote, is_gm, parse_gm
from specsynth.pictures import PadLayout
from specsynth.soundfont import GM_PROGRAMS

# -- the bundled sound library ----------------------------------------------------------------
# A handful of General MIDI programs that sound unlike each other, at three octaves.
LIBRARY_PROGRAMS = (0, 11, 19, 24, 33, 40, 42, 56, 71, 73, 81, 89)
LIBRARY_PITCHES = (48, 60, 72)
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# -- uploads ----------------------------------------------------------------------------------
MAX_UPLOAD_MB = 10
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_UPLOAD_SECONDS = 30.0
UPLOAD_TYPES = ("wav", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "aifc")  # what audio.load reads


def midi_name(pitch):
    """``60 -> "C4"``."""
    pitch = int(pitch)
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def library_id(program, pitch, seconds=GMNote.seconds):
    """The identity of a soundfont note: its ``gm:PROGRAM:PITCH:SECONDS`` spec, as manifests
    write it (stable across sessions: a cache key)."""
    return GMNote(int(program), int(pitch), float(seconds)).spec


def parse_library_id(sound_id):
    """A soundfont note's :class:`~specsynth.limits.GMNote`; None for anything else (an upload)."""
    return parse_gm(sound_id) if is_gm(sound_id) else None


def note_label(note):
    """``"Flute · C4"`` (with the length when it is not the default 4 s)."""
    length = "" if note.seconds == GMNote.seconds else f" · {note.seconds:g} s"
    return f"{GM_PROGRAMS[note.program]} · {midi_name(note.pitch)}{length}"


def library():
    """``{sound_id: label}`` for every library note, ordered by instrument, then pitch."""
    return {library_id(p, k): note_label(GMNote(p, k)) for p in LIBRARY_PROGRAMS for k in LIBRARY_PITCHES}


def bundle_choices(path):
    """``{label: bundle folder}`` for the app's model picker: the pretrained bundle, and every
    bundle folder directly inside ``path`` if it holds any, else ``path`` itself (loading it says
    what is wrong if it is not a bundle)."""
    choices = {"pretrained": "pretrained"}
    if path and str(path) != "pretrained":
        path = Path(path)
        inside = sorted(p for p in path.iterdir() if (p / "config.json").is_file()) if path.is_dir() else []
        for folder in inside if not (path / "config.json").exists() and inside else [path]:
            choices[folder.name or str(folder)] = str(folder)
    return choices


def upload_id(data):
    """The identity of an uploaded file: a hash of its bytes (the same file twice is one sound)."""
    return "up:" + hashlib.sha1(data).hexdigest()[:16]


@dataclass
class UploadResult:
    """What :func:`read_upload` made of a file: ``samples`` [n] float32, or a one-line ``error``."""

    name: str
    samples: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self):
        return self.error is None


def read_upload(data, name, *, sample_rate, max_bytes=MAX_UPLOAD_BYTES, max_seconds=MAX_UPLOAD_SECONDS):
    """Decode an uploaded file's bytes into mono float32 samples at ``sample_rate``.

    The bytes go through a temporary file and :func:`specsynth.audio.load`, so every check the
    library makes applies (not audio, corrupt, no samples, NaN or infinite samples, too many
    channels, odd rates, too long). Never raises for bad input: the problem comes back as a
    one-line ``error`` naming the file, for the page to show.
    """
    name = Path(str(name or "upload")).name or "upload"
    data = bytes(data or b"")
    if not data:
        return UploadResult(name, error=f"{name}: the file is empty")
    if len(data) > max_bytes:
        return UploadResult(name, error=f"{name}: the file is {len(data) / 2**20:.1f} MB; "
                                        f"uploads are limited to {max_bytes / 2**20:.0f} MB")
    suffix = Path(name).suffix.lower()
    if not suffix or len(suffix) > 6:
        suffix = ".audio"
    fd, tmp = tempfile.mkstemp(prefix="specsynth-upload-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        samples, _ = audio.load(tmp, sample_rate=sample_rate, max_seconds=max_seconds)
    except SpecsynthError as exc:
        message = str(exc)
        if exc.path and message.startswith(f"{exc.path}: "):
            message = message[len(exc.path) + 2:]
        # the temporary name means nothing to the user (libsndfile quotes it in its messages)
        message = message.replace(tmp, name).splitlines()[0] if message else "unreadable"
        return UploadResult(name, error=f"{name}: {message}")
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    if float(np.max(np.abs(samples))) < 1e-6:
        return UploadResult(name, error=f"{name}: the audio is silent")
    return UploadResult(name, samples=samples)


# -- output -----------------------------------------------------------------------------------
def wav_bytes(samples, sample_rate):
    """Mono float samples -> 16-bit PCM WAV bytes (what every player and download gets).

    Players are given bytes, not float arrays, because Streamlit rescales a float array to full
    scale: the levels the library chose would be lost. Only a render that peaks above full scale
    is turned down (to a peak of 1), so it does not clip.
    """
    x = audio.fit_full_scale(samples)
    buf = io.BytesIO()
    sf.write(buf, x, int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


# -- the XY pad -------------------------------------------------------------------------------
def pad_click(value, layout=PadLayout()):
    """The pad's (x, y) for a value of the pad component (streamlit-image-coordinates), or None.

    A click is ``{x, y, width, height, unix_time}`` in pixels of the picture as shown (which may be
    scaled); a drag (``click_and_drag``) gives the press as x1, y1 and the release as x2, y2, and
    the point goes where the mouse was released.
    """
    if not isinstance(value, dict):
        return None
    px, py = (value.get("x2"), value.get("y2")) if "x2" in value else (value.get("x"), value.get("y"))
    if px is None or py is None:
        return None
    full_w, full_h = layout.size
    scale_x = full_w / float(value.get("width") or full_w)
    scale_y = full_h / float(value.get("height") or full_h)
    return layout.point(float(px) * scale_x, float(py) * scale_y)
