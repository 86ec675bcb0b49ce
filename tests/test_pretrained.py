"""The pretrained bundle in pretrained/, on held-out notes (specsynth.model.recipe).

Thresholds are the measured figures (benchmarks/RESULTS.md, "Model") with a margin, so a worse
retrained model fails here. They are not the targets of the model issue, which this model does not
yet meet for the round trip and pitch (see pretrained/MODEL_CARD.md).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import specsynth
from specsynth import audio, metrics, ops, phase, spectral
from specsynth.model import recipe
from specsynth.soundfont import render_note

# (program, pitch): unseen programs at unseen pitches; measured gaps +7.0, +3.9, +5.7, +4.3 dB
NOTES = [(1, 37), (74, 79), (53, 61), (73, 73)]


@pytest.fixture(scope="module")
def model():
    return specsynth.load("pretrained")


@pytest.fixture(scope="module")
def notes(model):
    return {(p, k): audio.normalize_audio(render_note(p, k, sample_rate=model.sample_rate)) for p, k in NOTES}


def test_the_bundle_is_small_and_describes_its_training(model):
    size = sum(f.stat().st_size for f in model.path.iterdir())
    assert size < 20e6
    summary = model.meta["training"]["data_summary"]
    assert summary["heldout_programs"] == list(recipe.HELDOUT_PROGRAMS)
    assert not set(recipe.HELDOUT_PROGRAMS) & set(summary["programs"])
    assert (model.path / "MODEL_CARD.md").exists()


def test_the_bundle_without_architecture_settings_loads_with_the_defaults(model):
    from specsynth.model.settings import ARCHITECTURE

    assert model.architecture == model.vae.architecture == ARCHITECTURE


def test_round_trip_on_held_out_notes(model, notes):
    gaps = []
    for (program, pitch), x in notes.items():
        y = model.resynthesize(x, pitch=pitch)
        oracle = phase.reconstruct(spectral.magnitude(x, model.config), config=model.config, length=len(x))
        gaps.append(metrics.log_mel_distance(x, y, model.sample_rate) - metrics.log_mel_distance(x, oracle, model.sample_rate))
    assert np.median(gaps) < 6.5, gaps  # measured median +5.0 dB on these notes


@pytest.mark.parametrize("shift", [-5, 0, 5])
def test_pitch_renders_land_on_the_target_note(model, notes, shift):
    import librosa

    # measured +9 / +9 / +9 cents (pyin reads in 10-cent steps); the drawbar organ is the held-out note
    # that misses (MODEL_CARD.md), which this regression test does not cover
    program, pitch = {-5: (74, 79), 0: (53, 61), 5: (1, 37)}[shift]
    x = notes[(program, pitch)]
    y = model.synthesize(model.encode(x, pitch=pitch), pitch=pitch + shift)
    f0, voiced, _ = librosa.pyin(y, fmin=60, fmax=2000, sr=model.sample_rate, frame_length=2048)
    cents = 1200 * np.log2(np.nanmedian(f0[voiced]) / librosa.midi_to_hz(pitch + shift))
    assert abs(cents) <= 25, cents


def sounding_latents(model, x, pitch):
    """The encoded latents of ``x``'s sounding part, as the prior is trained on them."""
    frames = spectral.analyze(x, model.config)
    return model.sounding_latents(frames, pitch=pitch)


def test_prior_samples_stay_in_the_encoded_range(model, notes):
    encoded = np.concatenate([sounding_latents(model, x, k) for (_, k), x in notes.items()])
    z = model.sample_prior(250, pitch=61, temperature=1.0, seed=0)
    mean, std = model.norm["latent_mean"], model.norm["latent_std"]
    assert np.all(np.abs((z - mean) / std) <= 3.5 + 1e-5)
    # the per-dimension spread of sampled latents is of the order of the encoded one
    ratio = z.std(axis=0) / encoded.std(axis=0)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.6), ratio


def test_prior_walks_match_held_out_latents_in_mean_and_variance(model):
    """Unprimed walks at held-out pitches against the encoded latents of the training programs'
    notes there (the benchmark's measure on two of its eight held-out pitches: 208 notes, not 938)."""
    reference, walks = [], []
    for seed, (program, pitch) in enumerate(itertools.product(recipe.TRAIN_PROGRAMS, (49, 67))):
        x = audio.normalize_audio(render_note(program, pitch, sample_rate=model.sample_rate))
        if not np.any(x):
            continue
        reference.append(sounding_latents(model, x, pitch))
        walks.append(model.sample_prior(len(reference[-1]), pitch=pitch, temperature=1.0, seed=seed))
    reference, walks = np.concatenate(reference), np.concatenate(walks)
    mean_diff = np.abs(walks.mean(0) - reference.mean(0)) / reference.std(0)
    var_ratio = walks.var(0) / reference.var(0)
    # measured: mean within 0.23 std, variance ratio 0.94..1.24 (on all 1,256 of the benchmark's
    # notes 0.10 and 0.95..1.11). The same prior without its walk calibration: 0.30 and 0.82..1.37
    # here (0.21 and 0.77..1.14 on the benchmark's notes), which fails each of these three bounds.
    assert mean_diff.max() < 0.28, mean_diff
    assert 0.85 < var_ratio.min() and var_ratio.max() < 1.35, var_ratio


def test_a_seeded_loop_is_seamless_and_sounding(model, notes):
    r = ops.loop(model, notes[(53, 61)], seconds=4.0, temperature=0.8, seed=1)
    assert r.samples.shape == (4 * model.sample_rate,)
    assert r.metrics["seam_flux"] <= 1.2 * r.metrics["median_flux"], r.metrics
    # where the latent tail was blended into the head (inside the loop) there is no jump either:
    # measured 1.18x the median flux; a click would be several times it
    assert r.metrics["blend_flux"] <= 2.0 * r.metrics["median_flux"], r.metrics
    frames = spectral.analyze(r.samples, model.config)
    assert np.mean(frames.max(axis=1) > -40) > 0.5  # most of the loop sounds, it does not fade out
    # as loud as the seed's held part, near enough: measured 8 dB below it
    level = 10 * np.log10(np.mean(np.square(r.samples)) / np.mean(np.square(notes[(53, 61)][: 3 * model.sample_rate])))
    assert level > -12, level


def test_an_unseeded_loop_sounds_and_moves(model):
    """A loop with no seed and no pitch walks the prior at the training notes' median pitch (the
    unpitched label is one no training note has), and it sounds and moves."""
    assert model.walk_pitch == 60
    r = ops.loop(model, None, seconds=4.0, temperature=1.0, seed=3)
    level = 10 * np.log10(np.mean(np.square(r.samples)))
    assert -40 < level < 0, level  # it sounds, and not blown up: measured -7.5 dBFS
    # it moves: measured median flux 0.81; a frozen loop has 0
    assert r.metrics["median_flux"] > 0.2, r.metrics
    assert r.metrics["seam_flux"] <= 1.2 * r.metrics["median_flux"], r.metrics
