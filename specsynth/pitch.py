"""Pitch: labels, and the per-frame f0 contours that condition the model (no TensorFlow here).

A label is a MIDI note 0..127, or ``UNPITCHED`` (128) for sounds with no clear pitch.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
from scipy import fft as sfft

from .errors import ConfigError

UNPITCHED = 128
_NAME_PITCH = re.compile(r"[_-](\d{1,3})(?:[_-]\d{1,3})?$")  # name_60 or NSynth's name-060-100


def midi_to_hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69) / 12)


def check_pitch(pitch):
    """Validate a label: int 0..128 (128 = unpitched). Returns it as int."""
    message = f"pitch must be a MIDI note 0..127 or {UNPITCHED} (unpitched), got {pitch!r}"
    try:
        value = int(pitch)
    except (TypeError, ValueError):
        raise ConfigError(message) from None
    if isinstance(pitch, bool) or (isinstance(pitch, float) and pitch != value) or not 0 <= value <= UNPITCHED:
        raise ConfigError(message)
    return value


def pitch_from_name(path):
    """MIDI pitch from an NSynth-style file name (``cello_60.wav``, ``guitar-062-100.wav``), or None."""
    match = _NAME_PITCH.search(Path(path).stem)
    if not match:
        return None
    value = int(match.group(1))
    return value if 0 <= value <= 127 else None


def estimate_pitch(samples, sample_rate):
    """A sound's pitch label: the median f0 of its voiced frames (:func:`track`; hop 256, or 512
    above 24 kHz), rounded to a MIDI note; UNPITCHED if fewer than 20% of its frames are voiced."""
    hop = 256 if sample_rate <= 24000 else 512
    return label_of(track(np.asarray(samples, np.float32), sample_rate=int(sample_rate), hop=hop))


VOICED_SHARE = 0.2  # a sound with fewer voiced frames than this is unpitched


def label_of(contour):
    """A contour's pitch label: the median f0 of its voiced frames rounded to a MIDI note, or
    ``UNPITCHED`` if fewer than :data:`VOICED_SHARE` of its frames are voiced."""
    voiced = contour.voiced
    if not voiced.size or voiced.mean() < VOICED_SHARE:
        return UNPITCHED
    return int(np.clip(np.round(np.median(contour.f0[voiced])), 0, 127))


# ---------------------------------------------------------------------------------------------
# f0 contour: a per-frame pitch track aligned one to one with spectral.analyze's frames

HOLD_PITCH = 60.0  # f0 of a contour with no voiced frame at all (voicing says to ignore it)
CONTOUR_COLUMNS = 2  # a contour as columns beside latents: f0 (MIDI), voicing


@dataclasses.dataclass(frozen=True)
class Contour:
    """A pitch contour, one value per analysis frame.

    Attributes
    ----------
    f0 : np.ndarray
        float32 ``[frames]``, fractional MIDI (69.0 is 440 Hz). Always finite: an unvoiced frame
        holds the f0 of the nearest voiced frame (a contour with no voiced frame holds
        ``HOLD_PITCH``), so contours blend and transpose without gaps.
    voicing : np.ndarray
        float32 ``[frames]`` in 0..1: how periodic (and loud enough) each frame is; frames at
        ``>= 0.5`` count as voiced.
    """

    f0: np.ndarray
    voicing: np.ndarray

    def __post_init__(self):
        f0 = np.asarray(self.f0, dtype=np.float32)
        voicing = np.asarray(self.voicing, dtype=np.float32)
        if f0.ndim != 1 or f0.shape != voicing.shape:
            raise ConfigError(f"a contour needs f0 and voicing of one shape [frames], got {f0.shape} and {voicing.shape}")
        if not np.all(np.isfinite(f0)) or not np.all((voicing >= 0) & (voicing <= 1)):
            raise ConfigError("a contour needs finite f0 and voicing in 0..1")
        f0.setflags(write=False)
        voicing.setflags(write=False)
        object.__setattr__(self, "f0", f0)
        object.__setattr__(self, "voicing", voicing)

    def __len__(self):
        return self.f0.shape[0]

    @property
    def voiced(self):
        """bool ``[frames]``: voicing >= 0.5."""
        return self.voicing >= 0.5

    def columns(self):
        """float32 ``[frames, 2]``: f0 and voicing side by side, as they travel with latents."""
        return np.stack([self.f0, self.voicing], axis=1)

    @classmethod
    def from_columns(cls, columns):
        """The contour of ``[frames, 2]`` columns (f0, voicing); f0 is clipped to MIDI 0..127 and
        voicing to 0..1, so a contour edited or walked past them stays one."""
        a = np.asarray(columns, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != CONTOUR_COLUMNS:
            raise ConfigError(f"contour columns must be [frames, {CONTOUR_COLUMNS}], got shape {a.shape}")
        return cls(f0=np.clip(np.nan_to_num(a[:, 0], nan=HOLD_PITCH), 0, 127), voicing=np.clip(np.nan_to_num(a[:, 1]), 0, 1))


def _hz_to_midi(hz):
    return 69.0 + 12.0 * np.log2(hz / 440.0)


def _check_positive(name, value, *, integer=False):
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok or not value > 0 or not np.isfinite(value):
        kind = "a positive int" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


def _fill_unvoiced(f0, voiced):
    """Each unvoiced frame takes the f0 of the nearest voiced frame (ties: the earlier one)."""
    idx = np.flatnonzero(voiced)
    if idx.size == 0:
        return np.full_like(f0, HOLD_PITCH)
    pos = np.clip(np.searchsorted(idx, np.arange(f0.size)), 1, idx.size - 1) if idx.size > 1 else None
    if pos is None:
        return np.full_like(f0, f0[idx[0]])
    left, right = idx[pos - 1], idx[pos]
    nearest = np.where(np.arange(f0.size) - left <= right - np.arange(f0.size), left, right)
    return np.where(voiced, f0, f0[nearest])


def _octave_fix(midi, voiced, *, width=9):
    """Move voiced frames an octave or two toward the running median of their voiced neighbours,
    where they sit a whole number of octaves (+-1.5 semitones) away from it."""
    from scipy.ndimage import median_filter

    if voiced.sum() < 3:
        return midi
    filled = _fill_unvoiced(midi, voiced)
    ref = median_filter(filled, size=width, mode="nearest")
    octaves = np.round((midi - ref) / 12.0)
    jump = voiced & (octaves != 0) & (np.abs(midi - ref - 12.0 * octaves) < 1.5)
    return np.where(jump, midi - 12.0 * octaves, midi)


def track(samples, *, sample_rate, hop, n_fft=None, fmin=32.7, fmax=2093.0, threshold=0.15,
          silence_db=-60.0, smooth=3):
    """Per-frame f0 and voicing by a vectorised YIN, framed like :func:`spectral.analyze`.

    Parameters
    ----------
    samples : array_like
        Mono audio, float ``[n]`` (stereo is rejected: downmix first).
    sample_rate : int
        Hz.
    hop : int
        Frame shift in samples.
    n_fft : int or None
        The analysis frame size the contour must align with (default ``4 * hop``, the
        ``SpectralConfig`` default ratio). The contour has ``spectral.n_frames(n, config)``
        frames, ``ceil(n / hop) + n_fft / hop - 1``, and frame ``k`` is centred where
        ``analyze``'s frame ``k`` is, at sample ``k * hop + hop - n_fft / 2`` (zeros outside
        the signal). For a config: ``track(x, sample_rate=c.sample_rate, hop=c.hop, n_fft=c.n_fft)``.
    fmin, fmax : float
        Search range in Hz (default C1..C7). The YIN window is ``2 * sample_rate / fmin``
        samples long, so a lower ``fmin`` costs time and smooths fast pitch changes.
    threshold : float
        YIN's absolute threshold on the cumulative mean normalised difference (CMND): the first
        dip below it is taken as the period (which avoids octave-low errors); with none, the
        deepest dip. Voicing falls from 1 to 0 as the CMND minimum rises from ``threshold / 2``
        to ``2.5 * threshold``.
    silence_db : float
        Frames whose RMS is below this many dB re a full-scale sine are unvoiced; voicing ramps
        up over the 12 dB above it.
    smooth : int
        Width in frames of the median filter over voiced f0 (1: none), after a fix of octave
        jumps against a 9-frame running median.

    Returns
    -------
    Contour
        ``f0`` (float32 ``[frames]``, fractional MIDI, unvoiced frames hold the nearest voiced
        value) and ``voicing`` (float32 ``[frames]``, 0..1). A sound too quiet, or shorter than
        two periods of ``fmin`` (``2 * sample_rate / fmin`` samples), is all unvoiced; frames whose
        integration window lies over 7.5% outside the sound, or whose energy changes by over about 12%
        within one period (onsets), are unvoiced too.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ConfigError(f"track needs mono samples [n], got shape {x.shape}; downmix first")
    _check_positive("sample_rate", sample_rate, integer=True)
    _check_positive("hop", hop, integer=True)
    n_fft = 4 * hop if n_fft is None else n_fft
    _check_positive("n_fft", n_fft, integer=True)
    if n_fft % hop or n_fft // hop < 1:
        raise ConfigError(f"n_fft must be a multiple of hop, got n_fft={n_fft!r}, hop={hop!r}")
    _check_positive("fmin", fmin)
    _check_positive("fmax", fmax)
    if not fmin < fmax < sample_rate / 4:
        raise ConfigError(f"need fmin < fmax < sample_rate / 4, got fmin={fmin!r}, fmax={fmax!r}")
    if not 0 < threshold < 0.4:
        raise ConfigError(f"threshold must be in (0, 0.4), got {threshold!r}")
    if not isinstance(smooth, int) or smooth < 1 or smooth % 2 == 0:
        raise ConfigError(f"smooth must be an odd int >= 1, got {smooth!r}")
    if not np.isfinite(x).all():
        raise ConfigError("samples contain NaN or infinity")

    frames_count = -(-x.size // hop) + n_fft // hop - 1
    # high rates are decimated to 16..22.05 kHz first: ample for f0 <= fmax, and 2-3x faster
    factor = max(1, sample_rate // 16000)
    while factor > 1 and fmax >= sample_rate / factor / 4:
        factor -= 1
    rate = sample_rate / factor
    if factor > 1:
        from scipy.signal import resample_poly

        x = resample_poly(x, 1, factor).astype(np.float32)
    tau_min = max(2, int(rate / fmax) - 1)  # one lag of margin: a minimum needs a neighbour
    tau_max = int(np.ceil(rate / fmin))
    win = tau_max  # integration window: one longest period
    if x.size < win + tau_max:  # shorter than two longest periods: too short to call periodic
        return Contour(f0=np.full(frames_count, HOLD_PITCH, np.float32), voicing=np.zeros(frames_count, np.float32))
    length = sfft.next_fast_len(win + tau_max + 1, real=True)
    # the integration window [start, start + win) is centred on the frame's centre, so a period T
    # is measured over [start, start + win + T): centred within T / 2 samples
    centres = (np.arange(frames_count) * hop + hop - n_fft / 2) / factor
    starts = np.round(centres - win / 2).astype(np.int64)
    lead = max(0, -int(starts[0]))
    padded = np.zeros(lead + max(x.size, int(starts[-1]) + length) + 1, np.float32)
    padded[lead:lead + x.size] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, length)[starts + lead]

    size = length
    spec = sfft.rfft(frames, size, axis=-1, workers=-1)
    spec *= sfft.rfft(frames[:, :win], size, axis=-1, workers=-1).conj()
    corr = sfft.irfft(spec, size, axis=-1, workers=-1)[:, : tau_max + 2]
    power = np.zeros((frames_count, length + 1), np.float64)
    np.cumsum(np.square(frames, dtype=np.float64), axis=-1, out=power[:, 1:])
    # d(tau) = sum over [0, win) of (x_j - x_j+tau)^2 = E[0, win) + E[tau, tau + win) - 2 r(tau)
    energy = (power[:, win:win + tau_max + 2] - power[:, : tau_max + 2]).astype(np.float32)
    diff = energy + energy[:, :1]
    diff -= 2.0 * corr
    np.maximum(diff, 0.0, out=diff)
    diff[:, 0] = 0.0
    # cumulative mean normalised difference: d(tau) / mean(d(1..tau)), 1 at tau = 0
    cum = np.cumsum(diff, axis=-1)
    cum[:, 0] = 1.0
    cum /= np.arange(tau_max + 2, dtype=np.float32)[None, :].clip(1)
    np.maximum(cum, 1e-12, out=cum)
    cmnd = diff
    cmnd /= cum
    cmnd[:, 0] = 1.0

    # the first local minimum below the threshold, else the deepest one, in [tau_min, tau_max]
    band = cmnd[:, tau_min:tau_max + 1]
    is_min = np.zeros(band.shape, bool)
    is_min[:, 1:-1] = (band[:, 1:-1] <= band[:, :-2]) & (band[:, 1:-1] < band[:, 2:])
    deepest = np.argmin(np.where(is_min, band, np.inf), axis=-1)
    below = is_min & (band < threshold)
    lag = np.where(below.any(axis=-1), np.argmax(below, axis=-1), deepest)
    lag = np.clip(lag, 1, band.shape[1] - 2)
    rows = np.arange(frames_count)
    left, mid, right = band[rows, lag - 1], band[rows, lag], band[rows, lag + 1]
    curve = left - 2.0 * mid + right
    shift = np.where(curve > 1e-12, 0.5 * (left - right) / np.where(curve > 1e-12, curve, 1.0), 0.0)
    period = tau_min + lag + np.clip(shift, -1.0, 1.0)
    midi = _hz_to_midi(rate / period)
    dip = np.clip(mid - 0.25 * (left - right) * shift, 0.0, None)

    # RMS over the integration window in dB re a full-scale sine (mean square 0.5)
    level_db = 10.0 * np.log10(np.maximum(energy[:, 0] / win, 1e-20) / 0.5)
    loud = np.clip((level_db - silence_db) / 12.0, 0.0, 1.0)
    periodic = np.clip((2.5 * threshold - dip) / (2.0 * threshold), 0.0, 1.0)
    # a window half outside the sound (an onset or an end) is not evidence of a steady period
    e0, e_lag = energy[:, 0], energy[rows, tau_min + lag]
    steady = np.clip((np.minimum(e0, e_lag) / np.maximum(np.maximum(e0, e_lag), 1e-20) - 0.8) / 0.15, 0.0, 1.0)
    inside = (np.minimum(starts + win, x.size) - np.maximum(starts, 0)) / win
    steady *= np.clip((inside - 0.9) / 0.05, 0.0, 1.0)
    voicing = (periodic * loud * steady).astype(np.float32)
    voiced = voicing >= 0.5

    midi = _octave_fix(midi, voiced)
    if smooth > 1 and voiced.sum() >= smooth:
        from scipy.ndimage import median_filter

        midi = np.where(voiced, median_filter(_fill_unvoiced(midi, voiced), size=smooth, mode="nearest"), midi)
    return Contour(f0=_fill_unvoiced(midi, voiced).astype(np.float32), voicing=voicing)


def track_frames(samples, config):
    """:func:`track` framed as ``spectral.analyze(samples, config)`` frames them, row for row, for
    a :class:`~specsynth.spectral.SpectralConfig`; the range is capped below a quarter of a low
    sample rate. Too short or too quiet: all unvoiced."""
    return track(np.asarray(samples, np.float32), sample_rate=config.sample_rate, hop=config.hop, n_fft=config.n_fft,
                 fmax=min(2093.0, 0.24 * config.sample_rate))


def flat(n_frames, pitch):
    """A steady, fully voiced contour of ``n_frames`` frames at MIDI ``pitch`` (float)."""
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ConfigError(f"n_frames must be an int >= 0, got {n_frames!r}")
    _check_pitch_value(pitch)
    return Contour(f0=np.full(n_frames, pitch, np.float32), voicing=np.ones(n_frames, np.float32))


def _check_pitch_value(pitch):
    if isinstance(pitch, bool) or not isinstance(pitch, (int, float, np.number)) or not 0 <= pitch <= 127:
        raise ConfigError(f"pitch must be a MIDI number in 0..127, got {pitch!r}")


def transpose(contour, pitch):
    """Shift ``contour`` so the median f0 of its voiced frames lands on MIDI ``pitch`` (float
    0..127); vibrato, glides and voicing are kept. A contour with no voiced frame is shifted by
    the median of all its frames (its held value)."""
    _check_pitch_value(pitch)
    voiced = contour.voiced
    centre = np.median(contour.f0[voiced]) if voiced.any() else (np.median(contour.f0) if len(contour) else pitch)
    return Contour(f0=contour.f0 + np.float32(pitch - centre), voicing=contour.voicing)


def blend(contours, weights):
    """Weighted blend of contours of equal length: f0 in MIDI (log-frequency), each contour's
    weight times its voicing, so an unvoiced frame's held f0 does not pull a voiced one's; where
    no contour is voiced, the plain weights. Voicing blends linearly. Weights are non-negative
    and normalised to sum 1. Callers align lengths first (crop, pad or resample the contours);
    unequal lengths are a ConfigError."""
    contours = list(contours)
    w = np.asarray(weights, dtype=np.float64)
    if not contours or w.shape != (len(contours),):
        raise ConfigError(f"blend needs one weight per contour, got {len(contours)} contours and weights of shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"weights must be finite, >= 0 and not all 0, got {w.tolist()}")
    lengths = {len(c) for c in contours}
    if len(lengths) != 1:
        raise ConfigError(f"blend needs contours of equal length (align them first), got lengths {sorted(lengths)}")
    w = w / w.sum()
    f0s = np.stack([c.f0.astype(np.float64) for c in contours])  # [n, frames]
    voicing = np.stack([c.voicing.astype(np.float64) for c in contours])
    by_voice = w[:, None] * voicing
    total = by_voice.sum(axis=0)
    plain = np.tensordot(w, f0s, axes=1)
    f0 = np.where(total > 1e-6, (by_voice * f0s).sum(axis=0) / np.maximum(total, 1e-6), plain)
    return Contour(f0=f0.astype(np.float32), voicing=np.clip(np.tensordot(w, voicing, axes=1), 0.0, 1.0).astype(np.float32))
