"""Sound-design operations (specsynth.ops) on the tiny model: alignment, mixing, loops, pitch."""
from __future__ import annotations

import numpy as np
import pytest

import specsynth
from conftest import SR, harmonic_tone
from specsynth import metrics, ops
from specsynth.errors import ConfigError
from tiny_model import tiny_bundle_fixture

tiny_bundle = tiny_bundle_fixture()


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return specsynth.load(tiny_bundle)


def test_xy_weights_are_bilinear_and_reach_each_corner():
    for (x, y), corner in [((0, 0), 0), ((1, 0), 1), ((0, 1), 2), ((1, 1), 3)]:
        w = ops.xy_weights(x, y)
        assert w[corner] == 1 and w.sum() == 1
    w = ops.xy_weights(0.25, 0.7)
    np.testing.assert_allclose(w, [0.75 * 0.3, 0.25 * 0.3, 0.75 * 0.7, 0.25 * 0.7])
    with pytest.raises(ConfigError, match="0..1"):
        ops.xy_weights(1.2, 0.5)


def test_resampling_aligns_latent_sequences_end_to_end():
    a = np.linspace(0, 1, 10)[:, None] * np.ones((1, 3), np.float32)
    b = np.zeros((25, 3), np.float32)
    ra, rb = ops.align([a, b])
    assert ra.shape == rb.shape == (25, 3)
    # the attack and the release stay at the ends: first and last frames are kept exactly
    np.testing.assert_allclose(ra[0], a[0])
    np.testing.assert_allclose(ra[-1], a[-1])
    assert np.all(np.diff(ra[:, 0]) > 0)


def test_mix_latents_linear_and_slerp():
    rng = np.random.default_rng(0)
    za, zb = rng.standard_normal((2, 12, 4)).astype(np.float32)
    voiced = np.ones((12, 1), np.float32)
    a = np.concatenate([za, np.full((12, 1), 48.0, np.float32), voiced], axis=1)  # contour: f0 (MIDI), voicing
    b = np.concatenate([zb, np.linspace(60, 64, 12, dtype=np.float32)[:, None], voiced], axis=1)
    np.testing.assert_allclose(ops.mix_latents([a, b], [1, 0]), a, atol=1e-5)
    np.testing.assert_allclose(ops.mix_latents([a, b], [0, 1], mode="slerp"), b, atol=1e-5)
    half = ops.mix_latents([a, b], [2, 2])
    np.testing.assert_allclose(half[:, :4], (za + zb) / 2, atol=1e-6)
    # the contours blend in MIDI numbers (log-frequency): halfway between C3 and a glide C4-E4
    np.testing.assert_allclose(half[:, 4], (48 + b[:, 4]) / 2, atol=1e-4)
    # an unvoiced sound does not pull a voiced one's f0: only its voicing blends
    quiet = a.copy()
    quiet[:, 5] = 0.0
    mixed = ops.mix_latents([quiet, b], [1, 1])
    np.testing.assert_allclose(mixed[:, 4], b[:, 4], atol=1e-4)
    np.testing.assert_allclose(mixed[:, 5], 0.5)
    # halfway between orthogonal sequences of equal norm, slerp keeps the norm; linear shrinks it by 1/sqrt(2)
    ortho = a.copy()
    ortho[:, :4] = np.stack([-za[:, 1], za[:, 0], -za[:, 3], za[:, 2]], axis=1)
    norm = np.linalg.norm(za, axis=1)
    np.testing.assert_allclose(np.linalg.norm(ops.mix_latents([a, ortho], [1, 1], mode="slerp")[:, :4], axis=1), norm,
                               rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(ops.mix_latents([a, ortho], [1, 1])[:, :4], axis=1), norm / np.sqrt(2),
                               rtol=1e-4)
    with pytest.raises(ConfigError, match="weight"):
        ops.mix_latents([a, b], [1, -1])
    with pytest.raises(ConfigError, match="mode"):
        ops.mix_latents([a, b], [1, 1], mode="cubic")


def test_interpolate_endpoints_are_the_sounds_own_latents(model):
    a = harmonic_tone(220, 1.0)
    b = harmonic_tone(330, 0.6)  # a different length: aligned by resampling
    sa, sb = ops.encode_sound(model, a, pitch=57), ops.encode_sound(model, b, pitch=64)
    series = ops.interpolate_series(model, sa, sb, 3)
    assert [r.params["alpha"] for r in series] == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(series[0].latents, sa.latents, atol=1e-6)
    np.testing.assert_allclose(series[-1].latents, ops.resample_latents(sb.latents, len(sa.latents)), atol=1e-6)
    assert [r.pitch for r in series] == [57, 60, 64]  # the pitch glides with the mix (rounded mean)
    for r in series:
        q = model.config.n_fft // model.config.hop  # frames that overlap the signal's edges
        assert r.samples.shape == ((len(sa.latents) - q + 1) * model.config.hop,)
        assert np.all(np.isfinite(r.samples)) and np.max(np.abs(r.samples)) > 0
        assert r.metrics["render_ms"] > 0
    with pytest.raises(ConfigError, match="alpha"):
        ops.interpolate(model, sa, sb, 1.5)


def test_mix_xy_at_a_corner_equals_that_corner(model):
    corners = [harmonic_tone(f, 0.8) for f in (196, 262, 330, 392)]
    at_corner = ops.mix_xy(model, corners, 1.0, 0.0, pitch=60)
    alone = ops.mix(model, [corners[1]], [1.0], pitch=60)
    np.testing.assert_allclose(at_corner.frames, alone.frames, atol=1e-4)
    assert at_corner.params["weights"] == [0.0, 1.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match="4 corner"):
        ops.mix_xy(model, corners[:3], 0.5, 0.5)


@pytest.mark.parametrize("seconds", [1.0, 1.23])
def test_loop_has_the_exact_length_and_wraps_in_latent_space(model, seconds):
    seed = harmonic_tone(220, 1.0)
    r = ops.loop(model, seed, seconds=seconds, temperature=0.8, seed=3)
    assert r.samples.shape == (int(round(seconds * SR)),)
    assert np.all(np.isfinite(r.samples))
    # the tail was blended into the head: the step across the blend point (start_frame frames
    # before the file's end) is an ordinary step of the walk
    start = r.params["start_frame"]
    z = np.roll(r.latents, start, axis=0)
    steps = np.linalg.norm(np.diff(z, axis=0), axis=1)
    assert np.linalg.norm(z[0] - z[-1]) <= 2 * np.percentile(steps, 90) + 1e-6
    seam, inside = metrics.loop_seam_flux(r.samples, model.config)
    assert r.metrics["seam_flux"] == pytest.approx(seam) and r.metrics["median_flux"] == pytest.approx(inside)
    if seconds == 1.0:  # a whole number of hops: turning the file back puts the blend point at its wrap
        blend, _ = metrics.loop_seam_flux(np.roll(r.samples, start * model.config.hop), model.config)
        assert r.metrics["blend_flux"] == pytest.approx(blend)
    # the same seed gives the same loop, another seed another
    np.testing.assert_array_equal(ops.loop(model, seed, seconds=seconds, temperature=0.8, seed=3).samples, r.samples)
    assert not np.allclose(ops.loop(model, seed, seconds=seconds, temperature=0.8, seed=4).samples, r.samples)


def test_loop_file_starts_where_the_sound_is_steadiest(config):
    # a circular signal: a steady tone for half its length, a busy chirping noise for the rest
    sr, hop, n = config.sample_rate, config.hop, 250 * config.hop
    t = np.arange(n) / sr
    rng = np.random.default_rng(0)
    busy = rng.standard_normal(n) * (1 + np.sin(2 * np.pi * 23 * t)) + np.sin(2 * np.pi * (300 + 4000 * t % 1) * t)
    x = np.where(np.arange(n) < n // 2, np.sin(2 * np.pi * 440 * t), 0.3 * busy).astype(np.float32)
    start, blend = metrics.loop_start(x, config)
    assert 4 <= start <= 121  # the frames around the new start lie in the steady half (samples 0..n/2)
    assert blend == pytest.approx(metrics.loop_seam_flux(x, config)[0])  # the flux at the latent sequence's wrap
    seam, inside = metrics.loop_seam_flux(np.roll(x, -start * hop), config)
    assert seam < 0.2 * inside


def test_a_loop_is_primed_with_its_seeds_body_not_its_release_tail(model, monkeypatch):
    # a tone at full level for 0.5 s, then 1 s of it 20 dB down (a release), then silence
    body, tail = harmonic_tone(220, 0.5), 0.1 * harmonic_tone(220, 1.0)
    seed = np.concatenate([np.zeros(SR // 4, np.float32), body, tail, np.zeros(SR // 4, np.float32)])
    primes, sample_prior = [], model.sample_prior

    def spy(n, **kwargs):
        primes.append(kwargs["prime"])
        return sample_prior(n, **kwargs)

    monkeypatch.setattr(model, "sample_prior", spy)
    ops.loop(model, seed, seconds=1.0, seed=0, pitch=57)
    # 0.5 s is 31 frames at 62.5 Hz; the analysis window (1024 samples) smears its edges by a few
    prime, z = primes[0], model.encode(seed, pitch=57)
    assert 30 <= len(prime) <= 38, len(prime)
    # the seed's own latents from its onset (0.25 s in: frame 16, less the window's reach)
    start = [k for k in range(len(z) - len(prime) + 1) if np.allclose(z[k : k + len(prime)], prime, atol=1e-6)]
    assert len(start) == 1 and 10 <= start[0] <= 16, start
    # a Source keeps its frames only when asked (the app and render workers cache many Sources)
    assert ops.encode_sound(model, seed, pitch=57).frames is None


@pytest.mark.parametrize("gain", [0.02, 0.6])
def test_a_seeded_loop_plays_at_its_seeds_level(model, gain):
    # a quiet seed (peak -34 dBFS) gives a quiet loop, a loud one a loud loop: each within
    # 1 dB of the seed's level, whatever level the decoder drew at
    seed = harmonic_tone(220, 1.0, amplitude=gain)
    r = ops.loop(model, seed, seconds=1.0, seed=0)
    rms = lambda x: 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
    assert abs(rms(r.samples) - rms(seed)) < 1.0, (rms(r.samples), rms(seed))
    assert np.max(np.abs(r.samples)) <= 2.0


def test_loop_without_a_seed_and_bad_lengths(model):
    r = ops.loop(model, None, seconds=0.5, seed=1)
    assert r.samples.shape == (SR // 2,) and not r.params["seeded"]
    # trained on pitched notes only: with no pitch asked, the walk takes their median pitch, not
    # the unpitched label the model never saw; asked for, it is still there
    counts = model.meta["training"]["pitch_counts"]
    assert "128" not in counts and sum(counts.values()) == model.meta["training"]["train_items"]
    assert r.pitch == r.params["pitch"] == ops.contour_label(r.latents) != 128  # the walk's own contour
    assert ops.loop(model, None, seconds=0.5, seed=1, pitch=128).pitch == 128
    with pytest.raises(ConfigError, match="loop length"):
        ops.loop(model, None, seconds=0.1)


def test_render_pitch_and_key_range(model):
    x = harmonic_tone(220, 0.8)
    renders = ops.key_range(model, x, [57, 64], source_pitch=57)
    assert [r.pitch for r in renders] == [57, 64]
    assert not np.allclose(renders[0].frames, renders[1].frames)
    (z0, z1), (f0, f1) = ([r.latents[:, :model.z_dim] for r in renders], [r.latents[:, -2] for r in renders])
    np.testing.assert_array_equal(z0, z1)  # one timbre, two pitches: the contour moved by 7 semitones
    np.testing.assert_allclose(f1 - f0, 7.0, atol=1e-4)
