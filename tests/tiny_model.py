"""A tiny real model bundle, trained in seconds on six soundfont notes, for tests that need a model.

>>> path = make_tiny_bundle(tmp_path / "tiny")   # doctest: +SKIP
>>> model = specsynth.load(path)                 # doctest: +SKIP

In a test module, build it once per session with :func:`tiny_bundle_fixture`::

    tiny_bundle = tiny_bundle_fixture()
"""
from __future__ import annotations

from pathlib import Path

import pytest

PROGRAMS = (0, 73)        # piano, flute
PITCHES = (48, 60, 72)
NOTE_SECONDS = 1.0


def make_tiny_bundle(path, *, seed=0):
    """Train a tiny model (z=4, width 16, one epoch each) into the bundle folder ``path``; returns the Path.

    Takes a few seconds on a laptop CPU. The weights are far from useful, but every stage runs
    for real: soundfont notes -> dataset -> VAE -> LSTM prior -> bundle on disk.
    """
    from specsynth import SpectralConfig
    from specsynth.data import Dataset, items_from_soundfont
    from specsynth.model.train import TrainSettings, train

    config = SpectralConfig()
    items, _ = items_from_soundfont(config, programs=list(PROGRAMS), pitches=list(PITCHES), seconds=NOTE_SECONDS)
    settings = TrainSettings(z_dim=4, width=16, epochs=1, prior_epochs=1, prior_units=16, prior_mixtures=2,
                             segment_seconds=0.512, prior_segment_seconds=0.256, prior_anywhere_seconds=0.128,
                             batch_size=8, val_fraction=0.2, warmup_steps=10, seed=seed)
    train(Dataset.from_items(items, config), Path(path), settings=settings, overwrite=True, verbose=0,
          log=lambda *a: None)
    return Path(path)


def shared_tiny_bundle(tmp_path_factory):
    """The session's tiny bundle: trained on first use into pytest's base temp folder, then reused
    by every test module (fixtures of different modules are distinct, the folder is not)."""
    path = tmp_path_factory.getbasetemp() / "tiny_model_bundle"
    if not (path / "config.json").exists():
        make_tiny_bundle(path)
    return path


def tiny_bundle_fixture():
    """A session-scoped pytest fixture yielding the tiny bundle's path; assign it in a test module::

        tiny_bundle = tiny_bundle_fixture()
    """

    @pytest.fixture(scope="session")
    def tiny_bundle(tmp_path_factory):
        return shared_tiny_bundle(tmp_path_factory)

    return tiny_bundle
