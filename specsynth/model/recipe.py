"""The recipe of the pretrained bundle: which soundfont notes it was trained on and which were held out.

``make pretrained`` (``python -m specsynth.model.recipe``) retrains it into pretrained/;
benchmarks/model.py and the pretrained model's tests measure it on the held-out notes.
"""
from __future__ import annotations

import sys
from pathlib import Path

# General MIDI programs across the families; HELDOUT_PROGRAMS never appear in training.
HELDOUT_PROGRAMS = (1, 16, 25, 41, 53, 61, 70, 74)
# Every melodic program but the held-out ones (112..127 are percussion and sound effects).
TRAIN_PROGRAMS = tuple(p for p in range(112) if p not in HELDOUT_PROGRAMS)
HELDOUT_PITCHES = tuple(range(37, 85, 6))  # 37, 43, ..., 79: never trained on, by any program


def train_pitches(program):
    """Every note from C2 up to C6 but the held-out ones (which no program is trained on): many
    neighbouring notes, each seen less often, generalise to notes between them better than a
    sparse set seen often (docs/experiments.md)."""
    return tuple(k for k in range(36, 85) if k not in HELDOUT_PITCHES)


VELOCITY = 100
# Held-out notes for the benchmarks: unseen programs at unseen pitches, and seen programs at unseen pitches.
HELDOUT_NOTES = tuple(zip(HELDOUT_PROGRAMS, HELDOUT_PITCHES)) + (
    (0, 61), (42, 49), (73, 73), (56, 67), (24, 55), (33, 43), (19, 79), (81, 67))


def recipe_settings():
    """The pretrained bundle's settings: the defaults with 7 VAE epochs (7 x 838 batches over every
    training note) and the prior on every fourth training note for 12 epochs (12 x 104 batches);
    under 30 minutes on 2 cores."""
    from .train import TrainSettings

    return TrainSettings(epochs=7, prior_epochs=12, prior_every=4)


def training_items(config, progress=None):
    from ..data import items_from_soundfont

    items, summaries = [], []
    for program in TRAIN_PROGRAMS:
        got, summary = items_from_soundfont(config, programs=[program], pitches=train_pitches(program),
                                            velocities=(VELOCITY,), progress=progress)
        items.extend(got)
        summaries.append(summary)
    return items, {"notes": sum(s["notes"] for s in summaries), "skipped": sum(s["skipped"] for s in summaries),
                   "soundfont": summaries[0]["soundfont"]}


def train_pretrained(out="pretrained", *, config=None, settings=None, overwrite=True, verbose=2):
    """Render the training notes and train the default bundle into ``out``."""
    from .. import spectral
    from ..data import Dataset
    from .train import train

    config = config or spectral.SpectralConfig()
    items, summary = training_items(config)
    summary = {**summary, "programs": list(TRAIN_PROGRAMS), "pitches": "every note from 36 to 84 but the held-out ones",
               "heldout_programs": list(HELDOUT_PROGRAMS), "heldout_pitches": list(HELDOUT_PITCHES)}
    return train(Dataset.from_items(items, config, summary), Path(out), settings=settings or recipe_settings(),
                 overwrite=overwrite, verbose=verbose)


if __name__ == "__main__":
    train_pretrained(sys.argv[1] if len(sys.argv) > 1 else "pretrained")
