"""The recipe of the pretrained bundle: its data, what is held out, and its settings.

The bundle trains at 44.1 kHz (:data:`specsynth.spectral.MODEL_CONFIG`) on two sources:

- General MIDI notes of the TimGM6mb soundfont (pretty_midi's), rendered offline: every melodic
  program but :data:`HELDOUT_PROGRAMS`, each at :data:`NOTES_PER_PROGRAM` pitches spread over C2..C6
  (none of :data:`HELDOUT_PITCHES`);
- real recordings from three Debian sample packs (:mod:`specsynth.model.packs`), cut into chunks
  of :data:`CHUNK_SECONDS`: whole files and whole categories are held out
  (:func:`specsynth.model.packs.split`).

``make pretrained`` (``python -m specsynth.model.recipe``) installs the packs and retrains the
bundle into pretrained/; benchmarks/model.py measures it on the held-out sounds.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConfigError

# General MIDI programs across the families; HELDOUT_PROGRAMS never appear in training.
HELDOUT_PROGRAMS = (1, 16, 25, 41, 53, 61, 70, 74)
# Every melodic program but the held-out ones (112..127 are percussion and sound effects).
TRAIN_PROGRAMS = tuple(p for p in range(112) if p not in HELDOUT_PROGRAMS)
HELDOUT_PITCHES = tuple(range(37, 85, 6))  # 37, 43, ..., 79: never trained on, by any program
NOTES_PER_PROGRAM = 6
NOTE_SECONDS = 2.0  # each note held for 3/4 of it, then released
VELOCITY = 100
CHUNK_SECONDS = 4.0  # longer recordings are cut into pieces this long
# Held-out notes for the benchmarks: unseen programs at unseen pitches, and seen programs at unseen pitches.
HELDOUT_NOTES = tuple(zip(HELDOUT_PROGRAMS, HELDOUT_PITCHES)) + (
    (0, 61), (42, 49), (73, 73), (56, 67), (24, 55), (33, 43), (19, 79), (81, 67))


def train_pitches(program):
    """The program's :data:`NOTES_PER_PROGRAM` training notes: evenly spread over C2..C6, the
    grid shifted from program to program so that together they cover every note but the
    held-out ones (the decoder draws partials at the contour's f0, so a timbre needs a few
    notes across the range, not every one)."""
    allowed = [k for k in range(36, 85) if k not in HELDOUT_PITCHES]
    step = len(allowed) / NOTES_PER_PROGRAM
    return tuple(allowed[int((program * 0.37 % 1.0 + i) * step) % len(allowed)] for i in range(NOTES_PER_PROGRAM))


def recipe_settings():
    """The pretrained bundle's settings: the defaults with 36 VAE epochs (36 x 93 batches) and the
    prior on every training sound for 8 epochs; under an hour on 2 cores."""
    from .settings import TrainSettings

    return TrainSettings(epochs=36, prior_epochs=8)


def training_items(config, progress=None):
    """``(items, summary)``: a generator of the training sounds (soundfont notes, then the packs'
    training files in chunks) and a summary it fills in as it runs. Raises ConfigError naming
    the packages when a sample pack is not installed."""
    from ..data import items_from_files, items_from_soundfont
    from . import packs

    missing = packs.missing_packs()
    if missing:
        raise ConfigError(f"the sample packs {', '.join(missing)} are not installed: `make pretrained` installs them "
                          f"(apt-get install {' '.join(missing)})")
    train, heldout_files, heldout_categories = packs.split(packs.pack_files())
    notes, note_summary = [], None
    for program in TRAIN_PROGRAMS:
        got, note_summary = items_from_soundfont(config, programs=[program], pitches=train_pitches(program),
                                                 velocities=(VELOCITY,), seconds=NOTE_SECONDS, progress=progress)
        notes.append((got, note_summary))
    recordings, file_summary = items_from_files([(f["path"], f"{f['pack']}/{f['rel']}") for f in train], config,
                                                chunk_seconds=CHUNK_SECONDS, progress=progress)
    summary = {
        "soundfont": note_summary["soundfont"], "programs": list(TRAIN_PROGRAMS),
        "pitches": "6 per program over 36..84, none held out", "heldout_programs": list(HELDOUT_PROGRAMS),
        "heldout_pitches": list(HELDOUT_PITCHES), "packs": packs.summary(train),
        "heldout_files": [f"{f['pack']}/{f['rel']}" for f in heldout_files],
        "heldout_categories": [list(c) for c in packs.HELDOUT_CATEGORIES], "recordings": file_summary,
    }

    def items():
        for got, _ in notes:
            yield from got
        yield from recordings
        summary["notes"] = sum(s["notes"] - s["skipped"] for _, s in notes)

    return items(), summary


def train_pretrained(out="pretrained", *, config=None, settings=None, overwrite=True, verbose=2, work=None):
    """Write the training set to disk (``work``, default ``OUT.dataset`` beside the bundle, kept for
    a rerun) and train the default bundle from it into ``out``."""
    from .. import spectral
    from ..data import Dataset, write_dataset
    from .train import train

    config = config or spectral.MODEL_CONFIG
    out = Path(out)
    work = Path(work) if work else out.with_name(out.name + ".dataset")
    if not (work / "dataset.json").exists():
        items, summary = training_items(config)
        write_dataset(work, items, config, summary, overwrite=True)
    return train(Dataset(work), out, settings=settings or recipe_settings(), overwrite=overwrite, verbose=verbose)


if __name__ == "__main__":
    train_pretrained(sys.argv[1] if len(sys.argv) > 1 else "pretrained")
