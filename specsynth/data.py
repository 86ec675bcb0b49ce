"""Training data: a folder of audio or General MIDI soundfont notes -> a dataset folder.

A dataset folder holds ``dataset.json`` (SpectralConfig, one entry per item: name, pitch,
frame offset and count; and a summary with skipped files) and ``frames.npy`` (all items' model
frames stacked, float16 dB, ``[total_frames, n_features]``). No TensorFlow here: the training
pipeline over a dataset is :mod:`specsynth.model.dataset`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import audio, spectral
from .files import atomic_folder
from .errors import AudioError, ConfigError, SpecsynthError
from .pitch import UNPITCHED, estimate_pitch, pitch_from_name

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"}
FORMAT_VERSION = 1


def trim_silence(samples, *, top_db=60.0, frame=1024, hop=256):
    """Drop leading and trailing audio quieter than ``top_db`` below the peak."""
    import librosa

    if not np.any(samples):
        return samples[:0]
    _, (start, end) = librosa.effects.trim(samples, top_db=top_db, frame_length=frame, hop_length=hop)
    return samples[start:end]


def chunk(samples, length, *, min_length):
    """Cut into pieces of ``length`` samples; a last piece shorter than ``min_length`` is dropped."""
    pieces = [samples[i : i + length] for i in range(0, len(samples), length)]
    return [p for p in pieces if len(p) >= min_length]


def scan_audio(folder):
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def items_from_folder(folder, config, *, pitch="auto", chunk_seconds=4.0, progress=None):
    """``(items, summary)``: items are ``(name, pitch_label, samples)`` for every usable chunk of
    every audio file under ``folder``; the summary counts the files and says why any were skipped.

    ``pitch`` is ``"auto"`` (the note an NSynth-style file name carries, ``cello_60.wav``, else
    the median f0 :func:`~specsynth.pitch.estimate_pitch` hears), ``"name"`` (names only, else
    unpitched) or ``"none"`` (all unpitched).
    """
    if pitch not in ("name", "auto", "none"):
        raise ConfigError(f"--pitch must be name, auto or none, got {pitch!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError("is not a folder", path=folder)
    files = scan_audio(folder)
    items, skipped = [], []
    min_len = config.n_fft
    for path in progress(files) if progress else files:
        try:
            x, _ = audio.load(path, sample_rate=config.sample_rate)
        except SpecsynthError as exc:
            skipped.append(str(exc))
            continue
        x = trim_silence(x)
        pieces = chunk(x, int(chunk_seconds * config.sample_rate), min_length=min_len)
        if not pieces:
            skipped.append(f"{path}: shorter than one frame ({config.n_fft} samples) after trimming silence")
            continue
        label = pitch_from_name(path) if pitch in ("name", "auto") else None
        if label is None:
            label = estimate_pitch(x, config.sample_rate) if pitch == "auto" else UNPITCHED
        rel = path.relative_to(folder)
        for i, piece in enumerate(pieces):
            items.append((f"{rel}#{i}" if len(pieces) > 1 else str(rel), label, audio.normalize_audio(piece)))
    if not items:
        detail = f" ({len(skipped)} unusable: {skipped[0]})" if skipped else ""
        raise AudioError(f"no usable audio found{detail}", path=folder)
    return items, {"files": len(files), "skipped": len(skipped), "skipped_reasons": skipped[:50]}


def items_from_soundfont(config, *, programs, pitches, velocities=(100,), seconds=4.0, soundfont=None,
                         progress=None):
    """NSynth-like notes: every program x pitch x velocity, rendered offline; silent ones skipped."""
    from .soundfont import render_note

    combos = [(p, k, v) for p in programs for k in pitches for v in velocities]
    items, skipped = [], 0
    for program, pitch, velocity in progress(combos) if progress else combos:
        x = render_note(program, pitch, velocity=velocity, seconds=seconds, hold=min(3.0, seconds * 0.75),
                        sample_rate=config.sample_rate, soundfont=soundfont)
        if np.max(np.abs(x)) < 1e-4:
            skipped += 1
            continue
        items.append((f"gm{program:03d}_{pitch:03d}_{velocity:03d}", pitch, audio.normalize_audio(x)))
    if not items:
        raise ConfigError("the soundfont rendered no audible notes for these programs and pitches")
    return items, {"notes": len(combos), "skipped": skipped, "soundfont": soundfont or "TimGM6mb.sf2 (pretty_midi)"}


def write_dataset(out, items, config, summary, *, overwrite=False):
    """Analyse items into frames and write a dataset folder atomically (temp folder, then rename)."""
    out = Path(out)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        entries, blocks, offset = [], [], 0
        for name, pitch, x in items:
            f = spectral.analyze(x, config).astype(np.float16)
            entries.append({"name": name, "pitch": int(pitch), "offset": offset, "frames": int(len(f))})
            blocks.append(f)
            offset += len(f)
        np.save(tmp / "frames.npy", np.concatenate(blocks, axis=0))
        meta = {"format_version": FORMAT_VERSION, "config": config.to_dict(), "items": entries, "summary": summary}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1))
    return out


class Dataset:
    """A dataset folder in memory: ``frames`` [total, F] float32, ``items`` list of dicts, ``config``."""

    def __init__(self, path):
        path = Path(path)
        meta_path = path / "dataset.json"
        if not meta_path.exists() or not (path / "frames.npy").exists():
            raise ConfigError("is not a specsynth dataset folder (make one with `specsynth dataset`)", path=path)
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"dataset.json is not valid JSON ({exc.msg})", path=path) from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"unsupported dataset format {meta.get('format_version')!r}", path=path)
        self.path = path
        self.config = spectral.SpectralConfig.from_dict(meta["config"])
        self.items = meta["items"]
        self.summary = meta.get("summary", {})
        self.frames = np.load(path / "frames.npy").astype(np.float32)
        if not self.items:
            raise ConfigError("dataset has no items", path=path)

    def item_frames(self, item):
        return self.frames[item["offset"] : item["offset"] + item["frames"]]

    @classmethod
    def from_items(cls, items, config, summary=None):
        """An in-memory dataset (no folder), e.g. for tests and the notebook."""
        self = cls.__new__(cls)
        self.path, self.config, self.summary = None, config, summary or {}
        blocks, self.items, offset = [], [], 0
        for name, pitch, x in items:
            f = spectral.analyze(x, config)
            self.items.append({"name": name, "pitch": int(pitch), "offset": offset, "frames": int(len(f))})
            blocks.append(f)
            offset += len(f)
        self.frames = np.concatenate(blocks, axis=0)
        return self
