"""Training data: a folder of audio or General MIDI soundfont notes -> a dataset folder on disk.

A dataset folder (format 2) holds

- ``dataset.json``: the SpectralConfig, one entry per item (name, pitch label, frame offset and
  count), the shape of ``frames.bin`` and a summary (files read, skipped and why);
- ``frames.bin``: every item's model frames back to back, raw little-endian float16 dB,
  ``[total_frames, n_features]``, appended item by item as the dataset is written;
- ``contour.npy``: float32 ``[total_frames, 2]``, each frame's f0 (fractional MIDI) and voicing
  (0..1) from :func:`specsynth.pitch.track`, row for row with ``frames.bin``.

Nothing here holds more than one item's audio and frames at once: sources are generators, the
writer streams to ``frames.bin`` and :class:`Dataset` reads rows from it on demand, so a dataset
may be far larger than memory. No TensorFlow here: the training pipeline over a dataset is
:mod:`specsynth.model.dataset`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import audio, spectral
from .errors import AudioError, ConfigError, SpecsynthError
from .files import atomic_folder
from .pitch import label_of, pitch_from_name, track_frames

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"}
FORMAT_VERSION = 2
FRAMES_DTYPE = np.dtype("<f2")  # frames.bin: little-endian float16 dB
STATS_ROWS = 65536  # rows per chunk when Dataset.frame_stats reads through frames.bin


def trim_silence(samples, *, top_db=60.0, frame=1024, hop=256):
    """Drop leading and trailing audio quieter than ``top_db`` below the peak."""
    import librosa

    if not np.any(samples):
        return samples[:0]
    _, (start, end) = librosa.effects.trim(samples, top_db=top_db, frame_length=frame, hop_length=hop)
    return samples[start:end]


def chunk(samples, length, *, min_length):
    """Cut into pieces of ``length`` samples (views, not copies); a last piece shorter than
    ``min_length`` is dropped."""
    pieces = [samples[i : i + length] for i in range(0, len(samples), length)]
    return [p for p in pieces if len(p) >= min_length]


def scan_audio(folder):
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


# ---------------------------------------------------------------------------------------------
# Sources: (items, summary), items a one-pass generator of (name, label, samples), the summary a
# dict it fills in as it runs (read it once the items are consumed)


def items_from_folder(folder, config, *, pitch="auto", chunk_seconds=4.0, progress=None):
    """``(items, summary)`` for every audio file under ``folder`` (:func:`items_from_files`, each
    named by its path under the folder).

    ``pitch`` chooses the label: ``"auto"`` (the note an NSynth-style file name carries,
    ``cello_60.wav``, else None: :func:`write_dataset` derives it from the chunk's contour with
    :func:`~specsynth.pitch.label_of`), ``"name"`` (names only, else unpitched) or ``"none"`` (all
    unpitched). Bad arguments raise at once, not when the items are read.
    """
    if pitch not in ("name", "auto", "none"):
        raise ConfigError(f"--pitch must be name, auto or none, got {pitch!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError("is not a folder", path=folder)
    files = [(path, str(path.relative_to(folder))) for path in scan_audio(folder)]
    return items_from_files(files, config, pitch=pitch, chunk_seconds=chunk_seconds, progress=progress, folder=folder)


def items_from_files(files, config, *, pitch="auto", chunk_seconds=4.0, progress=None, folder=None):
    """``(items, summary)`` for ``files``, pairs of (path, name).

    ``items`` is a generator of ``(name, label, samples)``, one per usable chunk (``chunk_seconds``
    long, named ``NAME#i`` when a file has several) of each file, mono at ``config.sample_rate``,
    silence trimmed, peak-normalised; one file is in memory at a time. ``summary`` counts the
    files up front and the skipped ones (and why) as the generator runs. A generator that yields
    nothing raises :class:`AudioError` "no usable audio found" (naming ``folder``) when it is
    exhausted. ``pitch`` as :func:`items_from_folder` takes it.
    """
    from .pitch import UNPITCHED

    files = list(files)
    skipped = []
    summary = {"files": len(files), "skipped": 0, "skipped_reasons": []}

    def skip(reason):
        skipped.append(reason)
        summary["skipped"] = len(skipped)
        summary["skipped_reasons"] = skipped[:50]

    def generate():
        yielded = 0
        for path, name in progress(files) if progress else files:
            try:
                x, _ = audio.load(path, sample_rate=config.sample_rate)  # downmixed to mono
            except SpecsynthError as exc:
                skip(str(exc))
                continue
            x = trim_silence(x)
            pieces = chunk(x, int(chunk_seconds * config.sample_rate), min_length=config.n_fft)
            if not pieces:
                skip(f"{path}: shorter than one frame ({config.n_fft} samples) after trimming silence")
                continue
            label = pitch_from_name(path) if pitch in ("name", "auto") else None
            if label is None and pitch != "auto":
                label = UNPITCHED
            for i, piece in enumerate(pieces):
                yielded += 1
                yield (f"{name}#{i}" if len(pieces) > 1 else str(name), label, audio.normalize_audio(piece))
            del x, pieces
        if not yielded:
            detail = f" ({len(skipped)} unusable: {skipped[0]})" if skipped else ""
            raise AudioError(f"no usable audio found{detail}", path=folder)

    return generate(), summary


def items_from_soundfont(config, *, programs, pitches, velocities=(100,), seconds=4.0, soundfont=None,
                         progress=None):
    """``(items, summary)``: NSynth-like notes, every program x pitch x velocity rendered offline
    one at a time by a generator of ``(name, pitch, samples)``; silent ones are skipped (counted
    in ``summary`` as it runs). Exhausted with no audible note: :class:`ConfigError`."""
    from .soundfont import render_note

    combos = [(p, k, v) for p in programs for k in pitches for v in velocities]
    summary = {"notes": len(combos), "skipped": 0, "soundfont": soundfont or "TimGM6mb.sf2 (pretty_midi)"}

    def generate():
        yielded = 0
        for program, pitch, velocity in progress(combos) if progress else combos:
            x = render_note(program, pitch, velocity=velocity, seconds=seconds, hold=min(3.0, seconds * 0.75),
                            sample_rate=config.sample_rate, soundfont=soundfont)
            if np.max(np.abs(x)) < 1e-4:
                summary["skipped"] += 1
                continue
            yielded += 1
            yield f"gm{program:03d}_{pitch:03d}_{velocity:03d}", pitch, audio.normalize_audio(x)
        if not yielded:
            raise ConfigError("the soundfont rendered no audible notes for these programs and pitches")

    return generate(), summary


# ---------------------------------------------------------------------------------------------
# Analysis and the folder format


def analyse_item(name, label, samples, config):
    """One item -> ``(entry, frames, contour)``: the entry's name and label (from the contour
    when ``label`` is None), frames float32 ``[n, F]`` in dB and the contour float32 ``[n, 2]``."""
    from .pitch import check_pitch

    frames = spectral.analyze(samples, config)
    contour = track_frames(samples, config)
    if label is None:
        label = label_of(contour)
    return {"name": str(name), "pitch": check_pitch(label), "frames": int(len(frames))}, frames, contour.columns()


def write_dataset(out, items, config, summary, *, overwrite=False):
    """Analyse ``items`` into a dataset folder ``out``, written atomically (a temporary folder
    beside it, renamed into place when complete); returns ``out`` as a Path.

    ``items`` is any iterable of ``(name, label, samples)`` (a generator is consumed once, one item
    at a time: its frames go to ``frames.bin`` as they are made); ``label`` is a MIDI note 0..127,
    ``UNPITCHED`` (128) or None for the item's contour's :func:`~specsynth.pitch.label_of`.
    ``summary`` (a dict) is written into ``dataset.json`` after the items are consumed, so a source's
    summary counts everything it skipped. Samples are mono float ``[n]`` at ``config.sample_rate``.
    """
    out = Path(out)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        entries, contours, offset = [], [], 0
        with open(tmp / "frames.bin", "wb") as fh:
            for name, label, samples in items:
                entry, frames, contour = analyse_item(name, label, samples, config)
                frames.astype(FRAMES_DTYPE).tofile(fh)
                entries.append({**entry, "offset": offset})
                contours.append(contour)  # 8 bytes a frame: small beside the frames
                offset += entry["frames"]
                del frames, samples
        if not entries:
            raise ConfigError("no items to write into a dataset")
        np.save(tmp / "contour.npy", np.concatenate(contours))
        meta = {"format_version": FORMAT_VERSION, "config": config.to_dict(),
                "frames": {"file": "frames.bin", "dtype": "float16", "byteorder": "little",
                           "shape": [offset, config.n_features]},
                "items": [{k: e[k] for k in ("name", "pitch", "offset", "frames")} for e in entries],
                "summary": dict(summary or {})}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1))
    return out


class Dataset:
    """A dataset folder, read lazily: ``config``, ``items`` (dicts: name, pitch, offset, frames),
    ``summary``, ``contour`` (float32 ``[total, 2]``, in memory), ``n_frames`` and ``n_features``.

    Frames stay in ``frames.bin``: :meth:`item_frames` and :meth:`read_rows` read just the rows
    asked for (a seek and a read; no memory map, whose touched pages would count in RSS).
    :meth:`from_items` makes the same thing in memory, for tests and the notebook.
    """

    def __init__(self, path):
        path = Path(path)
        meta_path = path / "dataset.json"
        if not meta_path.exists():
            raise ConfigError("is not a specsynth dataset folder (make one with `specsynth dataset`)", path=path)
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"dataset.json is not valid JSON ({exc.msg})", path=path) from None
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version == 1 or (version is None and (path / "frames.npy").exists()):
            raise ConfigError("is an old (format 1) dataset without pitch contours; remake it with "
                              "`specsynth dataset`", path=path)
        if version != FORMAT_VERSION:
            raise ConfigError(f"unsupported dataset format {version!r} (remake it with `specsynth dataset`)",
                              path=path)
        self.path = path
        self.config = spectral.SpectralConfig.from_dict(meta["config"])
        self.items = meta["items"]
        self.summary = meta.get("summary", {})
        if not self.items:
            raise ConfigError("dataset has no items", path=path)
        self.n_frames, self.n_features = (int(v) for v in meta["frames"]["shape"])
        self._frames_path, self._table = path / meta["frames"]["file"], None
        try:
            size = self._frames_path.stat().st_size
            self.contour = np.load(path / "contour.npy").astype(np.float32, copy=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"dataset is incomplete ({exc}); remake it with `specsynth dataset`", path=path) from None
        expected = self.n_frames * self.n_features * FRAMES_DTYPE.itemsize
        if size != expected or self.contour.shape != (self.n_frames, 2):
            raise ConfigError(f"frames.bin ({size} bytes) or contour.npy {self.contour.shape} does not match "
                              f"dataset.json's {self.n_frames} frames of {self.n_features}; remake it with "
                              "`specsynth dataset`", path=path)

    @classmethod
    def from_items(cls, items, config, summary=None):
        """An in-memory dataset (no folder) of ``(name, label, samples)`` items, e.g. for tests and
        the notebook; labels None are derived from the contours, as :func:`write_dataset` does."""
        self = cls.__new__(cls)
        self.path, self.config, self.summary = None, config, summary or {}
        self.items, blocks, contours, offset = [], [], [], 0
        for name, label, samples in items:
            entry, frames, contour = analyse_item(name, label, samples, config)
            self.items.append({**entry, "offset": offset})
            blocks.append(frames)
            contours.append(contour)
            offset += entry["frames"]
        if not self.items:
            raise ConfigError("no items to make a dataset of")
        self._table = np.concatenate(blocks).astype(np.float32, copy=False)
        self.contour = np.concatenate(contours)
        self.n_frames, self.n_features = self._table.shape
        return self

    def read_rows(self, start, count):
        """Frames ``start .. start + count`` of the whole table, float32 ``[count, n_features]`` dB."""
        start, count = int(start), int(count)
        if start < 0 or count < 0 or start + count > self.n_frames:
            raise IndexError(f"rows {start}..{start + count} are outside the dataset's {self.n_frames} frames")
        if self._table is not None:
            return self._table[start : start + count].copy()
        with open(self._frames_path, "rb") as fh:  # one handle per read: safe from parallel readers
            fh.seek(start * self.n_features * FRAMES_DTYPE.itemsize)
            rows = np.fromfile(fh, dtype=FRAMES_DTYPE, count=count * self.n_features)
        return rows.reshape(count, self.n_features).astype(np.float32)

    def item_frames(self, item):
        """An item's frames, float32 ``[item["frames"], n_features]`` dB."""
        return self.read_rows(item["offset"], item["frames"])

    def item_contour(self, item):
        """An item's contour, float32 ``[item["frames"], 2]``: f0 (fractional MIDI), voicing (0..1)."""
        return self.contour[item["offset"] : item["offset"] + item["frames"]].copy()

    def frame_stats(self, indices):
        """``(mean, std)`` (floats, dB) over every frame value of the items ``indices`` (positions in
        ``items``), read in chunks of ``STATS_ROWS`` rows and merged in float64 (Chan et al.)."""
        n, mean, m2 = 0, 0.0, 0.0
        for i in indices:
            item = self.items[i]
            for start in range(item["offset"], item["offset"] + item["frames"], STATS_ROWS):
                count = min(STATS_ROWS, item["offset"] + item["frames"] - start)
                block = self.read_rows(start, count).astype(np.float64)
                k, block_mean = block.size, float(block.mean())
                block_m2 = float(np.square(block - block_mean).sum())
                delta, total = block_mean - mean, n + k
                mean += delta * k / total
                m2 += block_m2 + delta * delta * n * k / total
                n = total
        if not n:
            raise ConfigError("frame_stats needs at least one item with frames")
        return mean, float(np.sqrt(m2 / n))
