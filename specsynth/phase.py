"""Phase reconstruction: magnitudes ``[..., time, bins]`` -> samples ``[..., n]``.

Methods
-------
``griffinlim``  Griffin & Lim (1984): alternate projections onto consistent spectrograms and
                onto the given magnitude.
``fgla``        Fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013): the same projections
                with momentum ``t_n = c_n + alpha (c_n - c_{n-1})``.
``lws``         Local Weighted Sums (Le Roux et al.; the ``lws`` package, mode "music").
``lws+fgla``    An LWS estimate (light settings) refined by FGLA. The default.

All of them work in the STFT convention of :mod:`specsynth.spectral` (lws's framing and window),
which is the convention analysis produced the magnitudes in. Leading axes are a batch: the
projections run on the whole batch at once; LWS runs sound by sound. ``circular=True`` treats each
sound as one period of a loop, so the result wraps around without a click.
"""
from __future__ import annotations

import functools

import numpy as np

from . import spectral
from .errors import ConfigError
from .limits import check_iters

DEFAULT_METHOD = "lws+fgla"
# When LWS only provides FGLA's start, its no-future pass plus two online passes and no batch
# passes are enough: measured on soundfont notes (benchmarks/phase.py), the online passes carry
# most of LWS's quality and the batch passes most of its time.
LWS_INIT = {"online_iters": 2, "batch_iters": 0}
LWS_FULL = {"online_iters": 10, "batch_iters": 100}  # lws's own "music" mode
_EPS = np.float32(1e-12)


def reconstruct(mag, *, config, method=DEFAULT_METHOD, n_iter=None, circular=False, length=None, alpha=0.99):
    """Samples from linear STFT magnitudes.

    Parameters
    ----------
    mag : array, float, shape [..., time, bins]
        Non-negative magnitudes in the :mod:`specsynth.spectral` convention of ``config``.
    config : SpectralConfig
    method : {"griffinlim", "fgla", "lws", "lws+fgla"}
    n_iter : int or None
        Projection iterations (for ``lws``: LWS batch iterations, default 100).
        ``None`` uses ``DEFAULT_ITERS[method]``.
    circular : bool
        Treat each sound as one period of a loop.
    length : int or None
        Crop or pad the output to this many samples.
    alpha : float
        FGLA momentum in [0, 1).

    Returns
    -------
    samples : np.ndarray, float32, shape [..., n]
    """
    if method not in METHODS:
        raise ConfigError(f"unknown phase method {method!r}; choose one of {', '.join(METHODS)}")
    n_iter = DEFAULT_ITERS[method] if n_iter is None else n_iter
    check_iters(n_iter)
    spec = _METHODS[method][1](_check_mag(mag, config), config=config, n_iter=n_iter, circular=circular, alpha=alpha)
    return spectral.istft(spec, config, length=length, circular=circular)


def frames_to_audio(frames, *, config, method=DEFAULT_METHOD, n_iter=None, circular=False, length=None):
    """dB (or mel) frames ``[..., time, F]`` -> samples ``[..., n]``: the magnitudes they stand for
    (:func:`specsynth.spectral.frames_to_magnitude`), then :func:`reconstruct`. The one path from
    a decoder's frames to audio."""
    mag = spectral.frames_to_magnitude(frames, config)
    return reconstruct(mag, config=config, method=method, n_iter=n_iter, circular=circular, length=length)


def _check_mag(mag, config):
    mag = np.asarray(mag, dtype=np.float32)
    if mag.ndim < 2 or mag.shape[-1] != config.n_bins:
        raise ConfigError(f"magnitudes must have shape [..., time, {config.n_bins}], got {mag.shape}")
    if not np.all(np.isfinite(mag)):
        raise ConfigError("magnitudes contain NaN or infinite values")
    return np.maximum(mag, 0)


def _unit(z):
    return z / (np.abs(z) + _EPS)


@functools.lru_cache(maxsize=1)
def _fused_step():
    # One pass over the spectrum instead of five numpy temporaries: momentum, phase, magnitude.
    import numba

    @numba.njit(cache=True, fastmath=True)
    def step(mag, rebuilt, prev, alpha, out):
        # all arguments 1-D and contiguous; prev is updated in place to rebuilt
        for i in range(rebuilt.size):
            r = rebuilt[i]
            t = r + alpha * (r - prev[i])
            prev[i] = r
            a = np.sqrt(t.real * t.real + t.imag * t.imag)
            out[i] = t * (mag[i] / a) if a > 1e-12 else mag[i]

    return step


@functools.lru_cache(maxsize=1)
def _pv_kernel():
    import numba

    @numba.njit(cache=True, fastmath=True)
    def pv(mag, advance, out):
        # mag [T, K]; advance = 2 pi hop / n_fft (phase advance per hop of a one-bin frequency)
        n_t, n_k = mag.shape

        cur = np.zeros(n_k)
        peaks = np.empty(n_k, np.int64)
        freqs = np.empty(n_k)
        for t in range(n_t):
            m = mag[t]
            n_p = 0
            for k in range(1, n_k - 1):
                if m[k] > m[k - 1] and m[k] >= m[k + 1]:
                    lo, mid, hi = np.log(m[k - 1] + 1e-7), np.log(m[k] + 1e-7), np.log(m[k + 1] + 1e-7)
                    den = lo - 2 * mid + hi
                    peaks[n_p] = k
                    freqs[n_p] = k + (0.5 * (lo - hi) / den if den != 0 else 0.0)
                    n_p += 1
            j = 0
            for k in range(n_k):
                if n_p == 0:
                    f = float(k)
                else:
                    while j + 1 < n_p and abs(peaks[j + 1] - k) < abs(peaks[j] - k):
                        j += 1
                    f = freqs[j]
                cur[k] += advance * f
                out[t, k] = np.cos(cur[k]) + 1j * np.sin(cur[k])
        return out

    return pv


def pv_phase(mag, *, config, circular=False):
    """A phase-vocoder start for the projections: unit complex64 ``[..., time, bins]``.

    Each bin's phase advances, hop by hop, at the frequency of the spectral peak nearest to it
    (peaks located by quadratic interpolation of the log-magnitude), as a sinusoid there would.
    Griffin-Lim started from this instead of random phase converges far faster on pitched
    sounds (benchmarks/phase.py).
    """
    mag = np.ascontiguousarray(mag, dtype=np.float32)
    flat = mag.reshape((-1,) + mag.shape[-2:])
    out = np.empty(flat.shape, np.complex64)
    kernel = _pv_kernel()
    advance = 2 * np.pi * config.hop / config.n_fft
    ctx = _wrap_context(config) if circular else 0
    for i in range(flat.shape[0]):
        m = _wrap_extend(flat[i], ctx)
        est = kernel(np.ascontiguousarray(m), advance, np.empty(m.shape, np.complex64))
        out[i] = _close_loop(est, ctx, flat.shape[1]) if ctx else est
    return out.reshape(mag.shape)


def _wrap_context(config):
    return 2 * (config.n_fft // config.hop)


def _wrap_extend(m, ctx):
    """``[t, bins]`` -> ``[t + 2 ctx, bins]`` with the loop's end before it and its start after."""
    if not ctx:
        return m
    k = min(ctx, m.shape[0])
    return np.concatenate([m[-k:], m, m[:k]], axis=0)


def _random_phase(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.exp(2j * np.pi * rng.random(shape)).astype(np.complex64)


def griffinlim(mag, *, config, n_iter=32, circular=False, init=None):
    """Plain Griffin-Lim. Returns the complex spectrum ``[..., time, bins]`` (complex64).

    ``init`` is a complex spectrum whose *phase* starts the iterations (its magnitude is
    ignored; unlike ``librosa.griffinlim`` the given phase is used once, not multiplied in again
    every iteration). Default: :func:`pv_phase`; ``"random"`` for random phase with a fixed seed.
    """
    return fgla(mag, config=config, n_iter=n_iter, circular=circular, init=init, alpha=0.0)


def fgla(mag, *, config, n_iter=32, circular=False, init=None, alpha=0.99):
    """Fast Griffin-Lim with momentum ``alpha``. Returns complex64 ``[..., time, bins]``.

    Iteration n: ``c_n = STFT(iSTFT(|S| e^{i angle(t_{n-1})}))``, ``t_n = c_n + alpha (c_n - c_{n-1})``.
    The last iterate's phase is put on the target magnitude.
    """
    mag = np.ascontiguousarray(mag, dtype=np.float32)
    if init is None:
        phase = pv_phase(mag, config=config, circular=circular)
    elif isinstance(init, str) and init == "random":
        phase = _random_phase(mag.shape)
    else:
        phase = _unit(np.asarray(init, dtype=np.complex64))
    spec = (mag * phase).astype(np.complex64)
    if n_iter == 0:
        return spec
    step = _fused_step()
    prev = None
    for _ in range(n_iter):
        x = spectral.istft(spec, config, circular=circular)
        rebuilt = np.ascontiguousarray(spectral.stft(x, config, circular=circular))
        if prev is None:
            prev = rebuilt.copy()  # no momentum on the first step: t_1 = c_1
        step(mag.reshape(-1), rebuilt.reshape(-1), prev.reshape(-1), np.float32(alpha), spec.reshape(-1))
    return spec


@functools.lru_cache(maxsize=8)
def _lws_processor(n_fft, hop, window, online_iters, batch_iters):
    import lws

    awin, _ = spectral.windows(n_fft, hop, window)
    return lws.lws(
        np.array(awin), hop, nofuture_iterations=1, online_iterations=online_iters,
        batch_iterations=batch_iters, perfectrec=True,
    )


def _close_loop(est, ctx, n):
    """Keep frames ``ctx .. ctx+n`` of a phase estimate (LWS or phase vocoder) made on a
    wrap-extended sequence (:func:`_wrap_extend`) and make them wrap: neither estimate is
    circular, so frame 0 does not follow frame n-1. Frame ``ctx + n`` (a copy
    of frame 0 estimated *after* frame n-1) holds the phase frame 0 should have; the per-bin
    difference is spread as a linear phase ramp over the loop (a frequency shift of at most
    half a bin per loop length, inaudible), after which the end flows into the start."""
    k = min(ctx, n)
    mid = est[k : k + n]
    if len(est) <= k + n:
        return mid
    jump = np.angle(est[k + n] * np.conj(est[k]))
    ramp = np.exp(-1j * jump[None, :] * (np.arange(n)[:, None] / n))
    return mid * ramp


def lws_phase(mag, *, config, circular=False, online_iters=10, batch_iters=100):
    """LWS phase estimate (lws package). Returns complex64 ``[..., time, bins]``.

    The defaults are lws's "music" mode: one no-future pass, ``online_iters`` online passes with
    look-ahead, then ``batch_iters`` batch passes.

    The magnitudes must be in this package's convention, which is lws's own framing and window,
    so they are passed to lws unchanged. In circular mode each sound is extended by wrapping
    frames around both ends, LWS runs on that, the middle is kept, and :func:`_close_loop` bends
    the phase so that the last frame leads into the first.
    """
    mag = np.asarray(mag, dtype=np.float32)
    proc = _lws_processor(config.n_fft, config.hop, config.window, int(online_iters), int(batch_iters))
    flat = mag.reshape((-1,) + mag.shape[-2:])
    out = np.zeros(flat.shape, np.complex64)
    ctx = _wrap_context(config) if circular else 0
    for i, m in enumerate(flat):
        if not np.any(m > 0):
            continue  # silence: leave zeros (lws would divide by zero)
        est = proc.run_lws(_wrap_extend(m, ctx).astype(np.float64))
        if ctx:
            est = _close_loop(est, ctx, flat.shape[1])
        out[i] = est
    return out.reshape(mag.shape)


def _lws_then_fgla(mag, *, config, n_iter, circular, alpha):
    init = lws_phase(mag, config=config, circular=circular, **LWS_INIT)
    return fgla(mag, config=config, n_iter=n_iter, circular=circular, alpha=alpha, init=init)


# The phase methods: name -> (default iterations, complex STFT from magnitudes). A new method is one
# entry here (and a line in the README); the CLI, manifests and the app offer whatever is listed.
_METHODS = {
    "griffinlim": (32, lambda mag, *, config, n_iter, circular, alpha: griffinlim(
        mag, config=config, n_iter=n_iter, circular=circular)),
    "fgla": (32, fgla),
    "lws": (100, lambda mag, *, config, n_iter, circular, alpha: lws_phase(
        mag, config=config, circular=circular, **{**LWS_FULL, "batch_iters": n_iter})),
    "lws+fgla": (8, _lws_then_fgla),
}
METHODS = tuple(_METHODS)
DEFAULT_ITERS = {name: iters for name, (iters, _) in _METHODS.items()}
