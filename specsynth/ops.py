"""Sound-design operations over a model's latent space: the library the CLI, app and notebook call.

Every operation takes a loaded model (:func:`specsynth.load`) and sounds given as mono float32
arrays at the model's rate or as file paths, and returns a :class:`Rendered`: the audio plus what
a UI needs (dB frames, latents, the pitch used, timings and metrics). The audio is at the level
the model decodes (inputs are peak-normalized on loading, so outputs are near full scale but not
normalized): callers choose whether to normalize before writing.

Latents are ``[time, z + 2]``: the encoder's latents with the sound's pitch contour (f0 in MIDI,
voicing) as the last two columns (:class:`specsynth.model.bundle.Model`). Mixing blends the
latents (linearly or by slerp) and the contours in log-frequency (:func:`specsynth.pitch.blend`),
so a mix glides and wavers as its sources do; a given ``pitch`` transposes the result's contour
so its median lands on that note.

Time alignment: sounds of different lengths are aligned by *resampling the shorter latent
sequence in time* to the longer's length (linear interpolation between latent frames). Unlike
padding or trimming this keeps both attacks at the start and both releases at the end, so an
interpolation between a short pluck and a long pad morphs envelope as well as timbre.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio, metrics, phase, spectral
from .errors import AudioError, ConfigError
from .files import why_unreadable
from .limits import MAX_INPUT_SECONDS, check_loop_seconds, check_steps
from .model.bundle import PEAK_CEILING
from .pitch import CONTOUR_COLUMNS, Contour, blend, label_of

MIX_MODES = ("linear", "slerp")


@dataclass
class Rendered:
    """One rendered sound. ``samples`` [n] float32; ``frames`` [time, F] dB; ``latents`` [time, z + 2];
    ``pitch`` the label of the contour it was drawn along (:func:`specsynth.pitch.label_of`)."""

    samples: np.ndarray
    sample_rate: int
    frames: np.ndarray
    latents: np.ndarray
    pitch: int
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def seconds(self):
        return len(self.samples) / self.sample_rate

    def magnitude(self, config):
        return spectral.frames_to_magnitude(self.frames, config)


@dataclass
class Source:
    """An encoded sound: its samples (may be None for raw latents), latents (contour included) and
    pitch label, and
    the dB frames ``[time, F]`` they were encoded from (None unless asked for: they take twice the
    samples' memory, and the app and render workers keep many Sources)."""

    latents: np.ndarray
    pitch: int
    samples: np.ndarray | None = None
    name: str = ""
    frames: np.ndarray | None = None


def encode_sound(model, sound, *, pitch="auto", name=None, keep_frames=False):
    """A :class:`Source` from samples, a file path, or an existing Source (returned as is);
    ``pitch`` as :meth:`~specsynth.model.bundle.Model.encode` takes it ("auto": the tracked
    contour as it is); ``keep_frames`` keeps the analysed frames in it."""
    if isinstance(sound, Source):
        return sound
    if isinstance(sound, (str, Path)):
        samples, _ = audio.load(sound, sample_rate=model.sample_rate)
        name = name or Path(sound).stem
    else:
        samples = np.asarray(sound, np.float32)
        if samples.ndim != 1 or samples.size == 0 or not np.all(np.isfinite(samples)):
            raise ConfigError("a sound must be a non-empty, finite mono array [n]")
    frames = spectral.analyze(samples, model.config)
    latents = model.with_pitch(model.encode_frames(frames, contour=model.track(samples)), pitch)
    return Source(latents, contour_label(latents), samples, name or "", frames if keep_frames else None)


def contour_label(latents):
    """The pitch label of latents ``[time, z + 2]``: that of their contour columns."""
    return label_of(Contour.from_columns(np.asarray(latents)[:, -CONTOUR_COLUMNS:]))


def read_latents(path, *, frame_rate, max_seconds=MAX_INPUT_SECONDS):
    """A latent sequence saved by ``specsynth encode``: a .npy of real numbers ``[time, z + 2]``
    (latents, then the contour's f0 and voicing), as float32.

    Raises AudioError naming the file when it is missing, not a .npy array (an .npz, an empty
    file), not real numbers (strings, records, complex, dates), not 2-D, not finite, or longer
    than ``max_seconds`` at ``frame_rate`` frames per second.
    """
    path = Path(path)
    problem = why_unreadable(path)
    if problem is not None or not path.is_file():
        raise AudioError(problem or "is a folder, not a .npy file", path=path)
    try:
        z = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        text = str(exc).strip().splitlines()
        raise AudioError(f"not a .npy array ({text[0] if text else type(exc).__name__})", path=path) from None
    if not isinstance(z, np.ndarray):
        raise AudioError("not a .npy array (an .npz archive holds several; save one array with np.save)", path=path)
    if z.dtype.kind not in "biuf":
        raise AudioError(f"holds {z.dtype} values; latents are real numbers", path=path)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise AudioError(f"expected a [time, z] array, got shape {z.shape}", path=path)
    if z.shape[0] > max_seconds * frame_rate:
        raise AudioError(f"holds {z.shape[0] / frame_rate:.1f} s of latents; the limit is {max_seconds:g} s", path=path)
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: inf, refused below
        z = np.asarray(z, dtype=np.float32)
    if not np.all(np.isfinite(z)):
        raise AudioError("holds values that are not finite (or too large for float32)", path=path)
    return z


def resample_latents(z, n_frames):
    """Linear interpolation of ``[time, z]`` to ``[n_frames, z]`` in latent time."""
    z = np.asarray(z, np.float32)
    if len(z) == n_frames:
        return z
    src = np.linspace(0.0, 1.0, len(z))
    dst = np.linspace(0.0, 1.0, n_frames)
    return np.stack([np.interp(dst, src, z[:, d]) for d in range(z.shape[1])], axis=1).astype(np.float32)


def align(latent_list):
    """Resample every ``[time_i, z]`` sequence to the longest one's length."""
    n = max(len(z) for z in latent_list)
    return [resample_latents(z, n) for z in latent_list]


def slerp(a, b, t):
    """Spherical interpolation per frame between ``a`` and ``b`` ``[time, z]`` (linear where they are parallel)."""
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.sum(a * b, axis=-1, keepdims=True) / np.maximum(na * nb, 1e-9)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    so = np.sin(omega)
    safe = so > 1e-4
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1), t)
    return (wa * a + wb * b).astype(np.float32)


def mix_latents(latent_list, weights, *, mode="linear"):
    """Weighted mix of latent sequences ``[time_i, z + 2]``, aligned first (:func:`align`).
    ``weights`` are normalised to sum to 1.

    The latents: ``linear`` is the weighted sum; ``slerp`` folds the sounds in one at a time
    along great circles (for two sounds it is ordinary slerp), which keeps the latent norm from
    shrinking in the middle of a mix. The contours (the last two columns) blend in log-frequency,
    weighted by voicing (:func:`specsynth.pitch.blend`).
    """
    if mode not in MIX_MODES:
        raise ConfigError(f"mix mode must be one of {MIX_MODES}, got {mode!r}")
    w = np.asarray(weights, np.float64)
    if w.shape != (len(latent_list),) or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ConfigError(f"need one non-negative weight per sound ({len(latent_list)}), not all zero; got {weights!r}")
    w = w / w.sum()
    aligned = align(latent_list)
    zs = [a[:, :-CONTOUR_COLUMNS] for a in aligned]
    contour = blend([Contour.from_columns(a[:, -CONTOUR_COLUMNS:]) for a in aligned], w).columns()
    if mode == "linear":
        z = np.tensordot(w, np.stack(zs), axes=1)
    else:
        z, total = zs[0], w[0]
        for zi, wi in zip(zs[1:], w[1:]):
            if wi <= 0:
                continue
            total += wi
            z = slerp(z, zi, float(wi / total))
    return np.concatenate([z, contour], axis=1).astype(np.float32)


def _render(model, latents, pitch, *, method, n_iter, params, started, circular=False, length=None, extra=None):
    latents = model.with_pitch(latents, pitch)
    frames = model.decode(latents)
    samples = model.frames_to_audio(frames, method=method, n_iter=n_iter, circular=circular, length=length)
    m = {"render_ms": (time.perf_counter() - started) * 1000}
    m.update(extra or {})
    return Rendered(samples, model.sample_rate, frames, latents, contour_label(latents), params, m)


def mix(model, sounds, weights, *, mode="linear", pitch=None, method=phase.DEFAULT_METHOD, n_iter=None,
        source_pitch="auto"):
    """N-way mix of sounds (arrays, paths or Sources) with the given weights.

    ``pitch`` transposes the mix's contour (the sounds' contours blended) to that MIDI note; by
    default it is left where the blend puts it.
    """
    started = time.perf_counter()
    z, w = _mixed(model, sounds, weights, mode=mode, source_pitch=source_pitch)
    params = {"weights": [float(x) for x in w], "mode": mode, "pitch": pitch, "method": method}
    r = _render(model, z, pitch, method=method, n_iter=n_iter, params=params, started=started)
    r.params["pitch"] = r.pitch
    return r


def _mixed(model, sounds, weights, *, mode, source_pitch):
    """A mix's latents (contour included) and normalized weights."""
    sources = [encode_sound(model, s, pitch=source_pitch) for s in sounds]
    if len(sources) < 1:
        raise ConfigError("mix needs at least one sound")
    z = mix_latents([s.latents for s in sources], weights, mode=mode)
    return z, np.asarray(weights, np.float64) / np.sum(weights)


def mix_frames(model, sounds, weights, *, mode="linear", pitch=None, source_pitch="auto"):
    """The decoder's dB frames ``[time, F]`` of :func:`mix`, without phase reconstruction (for
    pictures: a fraction of a render's time)."""
    z, _ = _mixed(model, sounds, weights, mode=mode, source_pitch=source_pitch)
    return model.decode(z, pitch=pitch)


def interpolate(model, a, b, alpha, **kwargs):
    """The sound ``alpha`` of the way from ``a`` (0) to ``b`` (1). Options as :func:`mix`."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"alpha must be in 0..1, got {alpha!r}")
    r = mix(model, [a, b], [1.0 - alpha, alpha], **kwargs)
    r.params["alpha"] = float(alpha)
    return r


def interpolate_series(model, a, b, steps, *, source_pitch="auto", **kwargs):
    """``steps`` sounds evenly spaced from ``a`` to ``b`` inclusive (each encoded once)."""
    steps = check_steps(steps)
    sa = encode_sound(model, a, pitch=source_pitch)
    sb = encode_sound(model, b, pitch=source_pitch)
    return [interpolate(model, sa, sb, float(t), **kwargs) for t in np.linspace(0.0, 1.0, steps)]


def xy_weights(x, y):
    """Bilinear weights of four corners at position (x, y) in [0, 1]^2, like NSynth Super's pad.

    Corner order: (0, 0), (1, 0), (0, 1), (1, 1) — bottom-left, bottom-right, top-left, top-right.
    """
    if not (0.0 <= float(x) <= 1.0 and 0.0 <= float(y) <= 1.0):
        raise ConfigError(f"x and y must be in 0..1, got {x!r}, {y!r}")
    return np.array([(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y], np.float64)


def mix_xy(model, corners, x, y, **kwargs):
    """Mix four corner sounds at pad position (x, y), computed live at any point (no grid)."""
    if len(corners) != 4:
        raise ConfigError(f"an XY mix needs exactly 4 corner sounds, got {len(corners)}")
    r = mix(model, corners, xy_weights(x, y), **kwargs)
    r.params.update({"x": float(x), "y": float(y)})
    return r


def resynthesize(model, sound, *, pitch="auto", method=phase.DEFAULT_METHOD, n_iter=None):
    """A sound through the model and back: encode, decode along its own contour, reconstruct phase;
    at the sound's RMS level, as :meth:`~specsynth.model.bundle.Model.resynthesize`."""
    started = time.perf_counter()
    src = encode_sound(model, sound, pitch=pitch)
    params = {"pitch": src.pitch, "method": method}
    length = None if src.samples is None else len(src.samples)
    r = _render(model, src.latents, None, method=method, n_iter=n_iter, params=params, started=started,
                length=length)
    if src.samples is not None:
        r.samples = audio.fit_full_scale(audio.match_rms(r.samples, src.samples), ceiling=PEAK_CEILING)
    return r


def render_pitch(model, sound, pitch, *, source_pitch="auto", method=phase.DEFAULT_METHOD, n_iter=None):
    """A sound (or latents ``[time, z + 2]``) decoded with its contour transposed to MIDI ``pitch``
    (its vibrato and glides kept)."""
    started = time.perf_counter()
    if _is_latents(sound):
        latents = np.asarray(sound, np.float32)
        src = Source(latents, contour_label(latents))
    else:
        src = encode_sound(model, sound, pitch=source_pitch)
    label = model.pitch_label(pitch)
    params = {"pitch": label, "source_pitch": src.pitch, "method": method}
    return _render(model, src.latents, label, method=method, n_iter=n_iter, params=params, started=started)


def _is_latents(x):
    return isinstance(x, np.ndarray) and x.ndim == 2


def key_range(model, sound, pitches, **kwargs):
    """:func:`render_pitch` over several MIDI notes, encoding the sound once."""
    src = encode_sound(model, sound, pitch=kwargs.pop("source_pitch", "auto"))
    return [render_pitch(model, src, p, **kwargs) for p in pitches]


STEADY_WRAP_SECONDS = 0.24  # the moving average that smooths a loop's latents around its wrap point


def _steady_wrap(z, n_blend, *, width):
    """Latents ``[time, z]`` of a loop with the frames around the wrap point smoothed in time
    (circular Hann moving average over ``width`` frames, faded in towards the wrap over about half
    the blend): a loop point sits where the texture is steady, so the jump across it is smaller than
    a typical frame-to-frame change inside, not merely as large."""
    t = len(z)
    if t < 2 * width:
        return z
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    half = width // 2
    padded = np.concatenate([z[-half:], z, z[:half]])
    smooth = np.stack([np.convolve(padded[:, d], kernel, mode="valid") for d in range(z.shape[1])], axis=1)
    reach = max(2, min(n_blend // 2, t // 4))
    distance = np.minimum(np.arange(t), t - 1 - np.arange(t)) + 0.5  # frames from the wrap point
    g = np.where(distance < reach, np.cos(0.5 * np.pi * distance / reach) ** 2, 0.0)[:, None]
    return ((1 - g) * z + g * smooth).astype(z.dtype)


BODY_DB = 10.0  # a loop's seed primes the prior up to its last frame this close to its loudest


def loop(model, seed_sound=None, *, seconds=8.0, temperature=0.8, seed=0, pitch=None, blend_seconds=0.5,
         method=phase.DEFAULT_METHOD, n_iter=None):
    """A seamless texture loop of exactly ``round(seconds * sample_rate)`` samples.

    The LSTM prior is primed with the seed sound's latents and contour (or starts cold, at
    ``pitch`` or else at the model's :attr:`~specsynth.model.bundle.Model.walk_pitch`), sampled for
    the loop length plus a blend region; the tail that follows the loop is crossfaded into its
    head in latent space, so the last frame flows into the first; the decoder sees the sequence
    wrapped around; phase is reconstructed in circular mode; and the result is resampled
    periodically (FFT) to the exact length, which keeps the wrap seamless. A loop seeded with a
    recording plays at the RMS level of the seed's body (within
    :data:`~specsynth.model.bundle.PEAK_CEILING`). The file then starts at the loop's steadiest
    frame (see :func:`specsynth.metrics.loop_start`); ``metrics["blend_flux"]`` is the flux where
    the blend sits inside it.
    """
    started = time.perf_counter()
    seconds = check_loop_seconds(seconds)
    sr, hop = model.sample_rate, model.config.hop
    n_samples = int(round(seconds * sr))
    n_frames = -(-n_samples // hop)
    n_blend = int(np.clip(round(blend_seconds * model.frame_rate), 1, max(1, n_frames // 2)))
    prime, label, body = None, model.walk_pitch if pitch is None else model.pitch_label(pitch), None
    if seed_sound is not None:
        src = encode_sound(model, seed_sound, keep_frames=True)
        prime, label = src.latents, src.pitch
        if src.samples is not None:
            # prime with the sound's body: from its onset (silence before it would start the
            # texture from nothing) to its last frame within BODY_DB of its loudest. The prior
            # learnt how notes go on, release included: a prime that ends in a release tail
            # makes the loop go on fading.
            frames = src.frames if src.frames is not None else spectral.analyze(src.samples, model.config)
            span = slice(spectral.active_span(frames).start, spectral.active_span(frames, top_db=BODY_DB).stop)
            prime, body = prime[span], src.samples[span.start * hop : span.stop * hop]
    z = model.sample_prior(n_frames + n_blend, pitch=label, temperature=temperature, seed=seed, prime=prime)
    w = np.linspace(0.0, 1.0, n_blend, endpoint=False)[:, None] if n_blend > 1 else np.zeros((1, 1))
    looped = z[:n_frames].copy()
    looped[:n_blend] = (1 - w) * z[n_frames : n_frames + n_blend] + w * z[:n_blend]
    looped = _steady_wrap(looped, n_blend, width=model.config.frames_in(STEADY_WRAP_SECONDS))
    looped = model.with_pitch(looped, pitch)  # a given pitch: the walk's contour transposed onto it
    ctx = 8  # decoder receptive field is a few frames: give it the wrapped neighbours
    wrapped = np.concatenate([looped[-ctx:], looped, looped[:ctx]], axis=0)
    frames = model.decode(wrapped)[ctx:-ctx]
    y = model.frames_to_audio(frames, method=method, n_iter=n_iter, circular=True)
    if len(y) != n_samples:
        from scipy.signal import resample

        y = resample(y, n_samples).astype(np.float32)  # FFT resampling assumes periodicity: seam kept
    if body is not None and body.size:  # a seeded loop plays at its seed's level (its body's RMS)
        y = audio.fit_full_scale(audio.match_rms(y, body), ceiling=PEAK_CEILING)
    shift, blend_flux = metrics.loop_start(y, model.config)
    y = np.roll(y, -shift * hop)  # frames and latents turn with it (exactly when hop divides the length)
    frames, looped = np.roll(frames, -shift, axis=0), np.roll(looped, -shift, axis=0)
    seam, inside = metrics.loop_seam_flux(y, model.config)
    label = contour_label(looped)
    params = {"seconds": seconds, "temperature": float(temperature), "seed": int(seed), "pitch": label,
              "seeded": seed_sound is not None, "method": method, "start_frame": shift}
    m = {"render_ms": (time.perf_counter() - started) * 1000, "seam_flux": seam, "median_flux": inside,
         "blend_flux": blend_flux}
    return Rendered(y, sr, frames, looped, int(label), params, m)
