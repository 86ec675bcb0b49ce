"""One spectral convention for analysis, the model and phase reconstruction.

The STFT here follows the framing and perfect-reconstruction window of the ``lws`` package
(half-sample-offset Hann, ``n_fft - hop`` zeros before the signal), so one magnitude array is
valid input to every phase method, LWS included. It is vectorised over a leading batch axis.

Shapes: samples ``[..., n]``, complex spectra and magnitudes ``[..., time, bins]`` with
``bins = n_fft // 2 + 1``, model frames ``[time, features]`` (bins, or n_mels for ``mel``).
"""
from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
from scipy import fft as sfft

from .errors import ConfigError

WINDOWS = ("hann", "sqrt_hann")
REPRESENTATIONS = ("stft", "mel")


@dataclasses.dataclass(frozen=True)
class SpectralConfig:
    """Everything that defines the spectral representation; saved inside every model bundle.

    Attributes
    ----------
    sample_rate : int
        Hz.
    n_fft : int
        Frame and FFT size in samples (even).
    hop : int
        Frame shift in samples; must divide ``n_fft``.
    window : {"hann", "sqrt_hann"}
        Analysis window, both sampled as lws samples them; the synthesis window is normalised
        for perfect reconstruction by overlap-add. ``hann`` (the default) gives every phase
        method a better result than lws's own ``sqrt_hann`` (benchmarks/phase.py).
    representation : {"stft", "mel"}
        Model frames: log-magnitude STFT bins, or log mel-band power (shown as the dB of the
        root of each band's power, so both share one dB scale).
    n_mels : int
        Mel bands when ``representation == "mel"``.
    db_floor : float
        Frames are in dB relative to a full-scale sine and clipped below at this value (< 0).
    fmin, fmax : float
        Mel filterbank range in Hz (``fmax`` None means Nyquist).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    window: str = "hann"
    representation: str = "stft"
    n_mels: int = 128
    db_floor: float = -80.0
    fmin: float = 0.0
    fmax: float | None = None

    def __post_init__(self):
        problems = []
        if not isinstance(self.sample_rate, int) or not 4000 <= self.sample_rate <= 384000:
            problems.append(f"sample_rate must be an int in 4000..384000 Hz, got {self.sample_rate!r}")
        if not isinstance(self.n_fft, int) or self.n_fft < 16 or self.n_fft % 2:
            problems.append(f"n_fft must be an even int >= 16, got {self.n_fft!r}")
        elif not isinstance(self.hop, int) or self.hop < 1 or self.n_fft % self.hop or self.n_fft // self.hop < 2:
            problems.append(f"hop must divide n_fft into at least 2 overlapping frames, got {self.hop!r}")
        if self.window not in WINDOWS:
            problems.append(f"window must be one of {WINDOWS}, got {self.window!r}")
        if self.representation not in REPRESENTATIONS:
            problems.append(f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}")
        if not isinstance(self.n_mels, int) or not 8 <= self.n_mels <= 512:
            problems.append(f"n_mels must be an int in 8..512, got {self.n_mels!r}")
        if not isinstance(self.db_floor, (int, float)) or not -200 <= self.db_floor < 0:
            problems.append(f"db_floor must be a negative number of dB >= -200, got {self.db_floor!r}")
        nyquist = self.sample_rate / 2 if isinstance(self.sample_rate, int) else float("inf")
        if not isinstance(self.fmin, (int, float)) or not 0 <= self.fmin < nyquist:
            problems.append(f"fmin must be a number of Hz in [0, sample_rate/2), got {self.fmin!r}")
        elif self.fmax is not None and (not isinstance(self.fmax, (int, float)) or not self.fmin < self.fmax <= nyquist):
            problems.append(f"fmax must be None or a number of Hz in (fmin, sample_rate/2], got {self.fmax!r}")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def n_bins(self):
        return self.n_fft // 2 + 1

    @property
    def n_features(self):
        """Width of a model frame: STFT bins or mel bands."""
        return self.n_mels if self.representation == "mel" else self.n_bins

    @property
    def frame_rate(self):
        """Frames per second (Hz)."""
        return self.sample_rate / self.hop

    def frames_in(self, seconds):
        """A duration in seconds as a whole number of frames at :attr:`frame_rate`."""
        return int(round(seconds * self.frame_rate))

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise ConfigError(f"a spectral config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown spectral config keys {unknown}; allowed: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text):
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"spectral config is not valid JSON ({exc.msg})") from None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# The second-generation model's representation: new datasets are made with it (`specsynth dataset`).
MODEL_CONFIG = SpectralConfig(sample_rate=44100, n_fft=2048, hop=512)


# ---------------------------------------------------------------------------------------------
# Windows and the STFT


def _lws_hann(n):
    # lws's "symmetric" Hann: sampled half a sample off the grid, so it is exactly symmetric.
    return 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, 2 * n, 2) / (2 * n)))


def _overlap_sum(win, hop):
    # Sum of the window shifted by multiples of hop, folded into one period of length hop.
    return win.reshape(-1, hop).sum(axis=0)


@functools.lru_cache(maxsize=16)
def windows(n_fft, hop, window):
    """Analysis and synthesis windows (float64, shape [n_fft]) with perfect reconstruction.

    ``sqrt_hann`` is exactly lws's default window, for which analysis == synthesis.
    """
    if window == "sqrt_hann":
        w = np.sqrt(_lws_hann(n_fft))
        norm = np.tile(_overlap_sum(w * w, hop), n_fft // hop)
        awin = np.sqrt(w * (w / norm))
    elif window == "hann":
        awin = _lws_hann(n_fft)
    else:
        raise ConfigError(f"window must be one of {WINDOWS}, got {window!r}")
    swin = awin / np.tile(_overlap_sum(awin * awin, hop), n_fft // hop)
    awin.setflags(write=False)
    swin.setflags(write=False)
    return awin, swin


def n_frames(n_samples, config, *, circular=False):
    """Number of STFT frames for a signal of ``n_samples`` samples."""
    if circular:
        return -(-n_samples // config.hop)
    return -(-n_samples // config.hop) + config.n_fft // config.hop - 1


def stft(samples, config, *, circular=False):
    """Complex STFT, complex64 ``[..., time, bins]``.

    Non-circular framing equals ``lws.lws(n_fft, hop).stft`` (perfect reconstruction: the signal
    is preceded by ``n_fft - hop`` zeros). With ``circular=True`` the signal is one period of a
    loop (its length is padded to a multiple of hop) and frames wrap around its end.
    """
    x = np.asarray(samples, dtype=np.float32)
    n_fft, hop = config.n_fft, config.hop
    awin, _ = windows(n_fft, hop, config.window)
    n = x.shape[-1]
    blocks = -(-n // hop)
    lead = x.shape[:-1]
    pad_end = blocks * hop - n
    if circular:
        if pad_end:
            x = np.concatenate([x, np.zeros(lead + (pad_end,), np.float32)], axis=-1)
        x = np.concatenate([x, x[..., : n_fft - hop]], axis=-1)
        frames_count = blocks
    else:
        z = np.zeros(lead + (n_fft - hop,), np.float32)
        x = np.concatenate([z, x, np.zeros(lead + (pad_end,), np.float32), z], axis=-1)
        frames_count = blocks + n_fft // hop - 1
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)[..., ::hop, :][..., :frames_count, :]
    return sfft.rfft(frames * awin.astype(np.float32), axis=-1, workers=-1).astype(np.complex64, copy=False)


def istft(spec, config, *, length=None, circular=False):
    """Inverse of :func:`stft` by windowed overlap-add. ``[..., time, bins]`` -> ``[..., n]`` float32.

    ``length`` crops (or zero-pads) the output to that many samples; by default the output is
    ``hop * time`` samples (circular) or ``hop * (time - n_fft/hop + 1)`` samples.
    """
    n_fft, hop = config.n_fft, config.hop
    _, swin = windows(n_fft, hop, config.window)
    frames = sfft.irfft(spec, n=n_fft, axis=-1, workers=-1).astype(np.float32, copy=False)
    frames = frames * swin.astype(np.float32)
    t = frames.shape[-2]
    q = n_fft // hop
    lead = frames.shape[:-2]
    parts = frames.reshape(lead + (t, q, hop))
    out = np.zeros(lead + (t + q - 1, hop), np.float32)
    for k in range(q):
        out[..., k : k + t, :] += parts[..., :, k, :]
    if circular:
        # fold the q-1 blocks that ran past the end back onto the start
        out[..., : q - 1, :] += out[..., t:, :]
        y = out[..., :t, :].reshape(lead + (t * hop,))
    else:
        y = out.reshape(lead + ((t + q - 1) * hop,))[..., n_fft - hop : (t + q - 1) * hop - (n_fft - hop)]
    if length is not None:
        if y.shape[-1] >= length:
            y = y[..., :length]
        else:
            y = np.concatenate([y, np.zeros(lead + (length - y.shape[-1],), np.float32)], axis=-1)
    return np.ascontiguousarray(y)


def magnitude(samples, config, *, circular=False):
    """Linear STFT magnitude, float32 ``[..., time, bins]``."""
    return np.abs(stft(samples, config, circular=circular))


# ---------------------------------------------------------------------------------------------
# dB frames and mel


def reference_magnitude(config):
    """STFT magnitude of a full-scale sine (amplitude 1), the 0 dB point of model frames."""
    awin, _ = windows(config.n_fft, config.hop, config.window)
    return float(awin.sum() / 2)


def amplitude_to_db(mag, config):
    """``max(20 log10(mag / ref), db_floor)``, float32, same shape."""
    ref = reference_magnitude(config)
    floor = 10.0 ** (config.db_floor / 20.0) * ref
    return (20.0 * np.log10(np.maximum(mag, floor) / ref)).astype(np.float32)


def db_to_amplitude(db, config):
    """Inverse of :func:`amplitude_to_db` (values at the floor come back as the floor amplitude)."""
    ref = reference_magnitude(config)
    return (ref * 10.0 ** (np.asarray(db, dtype=np.float32) / 20.0)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def mel_basis(config):
    """Slaney-normalised mel filterbank, float32 ``[n_mels, bins]`` (librosa.filters.mel)."""
    import librosa

    basis = librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax
    ).astype(np.float32)
    basis.setflags(write=False)
    return basis


@functools.lru_cache(maxsize=8)
def _mel_inverse_parts(config):
    from scipy import sparse

    basis = mel_basis(config).astype(np.float64)
    # Each mel filter touches a few bins: sparse products make an update cost O(time x nonzeros).
    col = basis.sum(axis=0)
    pinv = np.linalg.pinv(basis)
    pinv[np.abs(pinv) < 1e-6 * np.abs(pinv).max()] = 0.0  # mostly zeros: keep it sparse too
    sparse_basis = sparse.csr_matrix(basis.astype(np.float32))
    return (sparse_basis, sparse_basis.T.tocsr(), sparse.csr_matrix(pinv.astype(np.float32)),
            col.astype(np.float32))


def mel_to_linear(mel_power, config, *, n_iter=16):
    """Non-negative linear power ``[..., time, bins]`` from mel power ``[..., time, n_mels]``.

    Solves ``min ||M x - y||`` over ``x >= 0`` approximately, with everything that does not depend
    on ``y`` precomputed once per config: the start is the clipped pseudo-inverse ``max(M^+ y, 0)``
    (plus a small spread ``M^T y`` so no bin is stuck at zero) and ``n_iter`` Richardson-Lucy style
    multiplicative updates ``x <- x * M^T(y / Mx) / M^T 1`` refine it. Two small matrix
    products per update, instead of librosa's per-call L-BFGS NNLS
    (``librosa.feature.inverse.mel_to_stft``); benchmarks/phase.py measures both.
    """
    basis, basis_t, pinv, col = _mel_inverse_parts(config)
    y = np.maximum(np.asarray(mel_power, dtype=np.float32), 0)
    lead, n_mels = y.shape[:-1], y.shape[-1]
    y = y.reshape(-1, n_mels).T  # [n_mels, frames]: sparse matrix on the left
    eps = np.float32(1e-10)
    spread = np.asarray(basis_t @ y)
    x = np.maximum(np.asarray(pinv @ y), 0) + 1e-3 * spread / np.maximum(col, eps)[:, None]
    safe_col = np.where(col > eps, col, 1.0).astype(np.float32)[:, None]
    for _ in range(n_iter):
        ratio = y / (np.asarray(basis @ x) + eps)
        x = x * np.asarray(basis_t @ ratio) / safe_col
    x[col <= eps] = 0.0
    return np.ascontiguousarray(x.T.reshape(lead + (col.size,)), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Model frames <-> audio


def analyze(samples, config, *, circular=False):
    """Samples ``[..., n]`` -> model frames float32 ``[..., time, n_features]`` in dB (>= db_floor)."""
    mag = magnitude(samples, config, circular=circular)
    if config.representation == "mel":
        # mel bands sum *power*; a band's "amplitude" is the root of its power
        mag = np.sqrt((mag * mag) @ mel_basis(config).T)
    return amplitude_to_db(mag, config)


def frames_to_magnitude(frames, config, *, mel_iters=16):
    """Model frames in dB ``[..., time, n_features]`` -> linear STFT magnitudes ``[..., time, bins]``.

    Values at the dB floor are treated as silence (zero magnitude), so silence in gives silence out.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.shape[-1] != config.n_features:
        raise ConfigError(
            f"frames have {frames.shape[-1]} features but the config expects {config.n_features} "
            f"({config.representation})"
        )
    mag = db_to_amplitude(frames, config)
    mag = np.where(frames <= config.db_floor + 1e-3, 0.0, mag).astype(np.float32)
    if config.representation == "mel":
        mag = np.sqrt(mel_to_linear(mag * mag, config, n_iter=mel_iters))
    return mag


def active_span(frames_db, *, top_db=30.0):
    """The slice of frames from the first to the last whose loudest bin is within ``top_db`` of the
    sound's loudest: the sounding part, without the silence or near-silent tail around it."""
    level = np.asarray(frames_db).max(axis=-1)
    loud = np.flatnonzero(level >= level.max() - top_db)
    return slice(int(loud[0]), int(loud[-1]) + 1)
