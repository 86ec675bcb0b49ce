"""The recipe of the pretrained bundle: which soundfont notes it was trained on and which were held out.

``make pretrained`` (``python -m specsynth.model.recipe``) retrains it into pretrained/;
benchmarks/model.py and the pretrained model's tests measure it on the held-out notes.
"""
from __future__ import annotations

import sys
from pathlib import Path

# General MIDI programs across the families; HELDOUT_PROGRAMS never appear in training.
TRAIN_PROGRAMS = (0, 4, 6, 11, 12, 19, 21, 24, 26, 32, 33, 40, 42, 46, 48, 52, 56, 57, 60, 65, 68, 71, 73, 75,
                  80, 81, 88, 89, 104, 105, 108, 114)
HELDOUT_PROGRAMS = (1, 16, 25, 41, 53, 61, 70, 74)
TRAIN_PITCHES = tuple(range(36, 85, 2))   # even MIDI notes C2..C6
HELDOUT_PITCHES = tuple(range(37, 85, 6))  # odd notes, never trained on
VELOCITY = 100
# Held-out notes for the benchmarks: unseen programs at unseen pitches, and seen programs at unseen pitches.
HELDOUT_NOTES = tuple((p, k) for p, k in zip(HELDOUT_PROGRAMS * 2, HELDOUT_PITCHES + HELDOUT_PITCHES[::-1])) + (
    (0, 61), (42, 49), (73, 73), (56, 67), (24, 55), (33, 43), (19, 59), (81, 65))


def training_items(config, progress=None):
    from ..data import items_from_soundfont

    return items_from_soundfont(config, programs=TRAIN_PROGRAMS, pitches=TRAIN_PITCHES, velocities=(VELOCITY,),
                                progress=progress)


def train_pretrained(out="pretrained", *, config=None, settings=None, overwrite=True, verbose=2):
    """Render the training notes and train the default bundle into ``out``."""
    from .. import spectral
    from ..data import Dataset
    from .train import TrainSettings, train

    config = config or spectral.SpectralConfig()
    items, summary = training_items(config)
    summary = {**summary, "programs": list(TRAIN_PROGRAMS), "pitches": list(TRAIN_PITCHES),
               "heldout_programs": list(HELDOUT_PROGRAMS), "heldout_pitches": list(HELDOUT_PITCHES)}
    return train(Dataset.from_items(items, config, summary), Path(out), settings=settings or TrainSettings(),
                 overwrite=overwrite, verbose=verbose)


if __name__ == "__main__":
    train_pretrained(sys.argv[1] if len(sys.argv) > 1 else "pretrained")
