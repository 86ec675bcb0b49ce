"""Quality measures. Lower is better for all of them; all are in dB except where noted.

Shapes: samples ``[n]`` (mono float32), magnitudes ``[time, bins]``.
"""
from __future__ import annotations

import functools

import numpy as np

from . import spectral

_EPS = 1e-12


def spectral_convergence(target_mag, samples, config, *, circular=False):
    """Spectral convergence in dB of ``samples`` against the magnitudes it should have.

    ``SC = 20 log10( || |STFT(x)| - S ||_F / || S ||_F )`` with S = ``target_mag``, both in the
    convention of ``config``. 0 dB means as large an error as the signal; -40 dB is excellent.
    Silence against silence is ``-inf``-free: it returns -200 dB.
    """
    target = np.asarray(target_mag, dtype=np.float64)
    got = spectral.magnitude(samples, config, circular=circular).astype(np.float64)
    t = min(target.shape[-2], got.shape[-2])
    target, got = target[..., :t, :], got[..., :t, :]
    num = np.linalg.norm(got - target)
    den = np.linalg.norm(target)
    if den < _EPS:
        return -200.0 if num < 1e-6 else 200.0
    return float(20 * np.log10(max(num, _EPS) / den))


@functools.lru_cache(maxsize=8)
def _mel_fb(sample_rate, n_fft, n_mels):
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).astype(np.float64)


def log_mel(samples, sample_rate, *, n_fft=1024, hop=256, n_mels=128, top_db=80.0, ref=None):
    """Log-mel power spectrogram in dB ``[time, n_mels]``, floored ``top_db`` below ``ref``
    (default: its own peak). Hann-windowed centred STFT, as librosa computes it. A sound shorter
    than ``n_fft`` is padded with silence to one window."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    from scipy.signal import stft as _stft

    _, _, z = _stft(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary="even", padded=True)
    power = np.abs(z.T * (n_fft / 2)) ** 2
    mel = power @ _mel_fb(sample_rate, n_fft, n_mels).T
    db = 10 * np.log10(np.maximum(mel, _EPS))
    peak = db.max() if ref is None else ref
    return np.maximum(db, peak - top_db), peak


def log_mel_distance(reference, estimate, sample_rate, *, n_mels=128, top_db=80.0):
    """Log-spectral distance on log-mel spectra, in dB.

    ``LSD = sqrt( mean_{t,m} (L_ref[t,m] - L_est[t,m])^2 )`` where ``L = 10 log10(mel power)``,
    both floored ``top_db`` below the *reference's* peak (so silence in the estimate is punished
    only down to the floor). Lengths are cropped to the shorter.
    """
    n = min(len(reference), len(estimate))
    ref = log_mel(reference[:n], sample_rate, n_mels=n_mels, top_db=top_db)
    return log_mel_distance_from(ref, estimate[:n], sample_rate, top_db=top_db)


def log_mel_distance_from(reference_log_mel, estimate, sample_rate, *, top_db=80.0):
    """:func:`log_mel_distance` from the reference's ``log_mel(...)`` (``(dB, peak)``), computed
    once for many estimates of the reference's length (the app's mix slider)."""
    ref_db, peak = reference_log_mel
    est_db, _ = log_mel(estimate, sample_rate, n_mels=ref_db.shape[1], top_db=top_db, ref=peak)
    if est_db.shape != ref_db.shape:
        raise ValueError(f"the estimate has {est_db.shape[0]} frames, the reference {ref_db.shape[0]}")
    est_db = np.minimum(est_db, peak + top_db)  # keep absurd estimates finite
    return float(np.sqrt(np.mean((ref_db - est_db) ** 2)))


def log_mel_distance_best_gain(reference, estimate, sample_rate, *, n_mels=128, top_db=80.0, max_gain_db=40.0):
    """:func:`log_mel_distance` with the estimate scaled by the one gain that minimises it: the
    distance of its spectral shape, its overall level apart (which a level meter, not this, judges).

    Returns ``(distance, gain_db)``: the distance in dB and the gain in dB (within
    ``+-max_gain_db``) added to the estimate's log-mel spectrum, before the reference's floor, to
    reach it. Lengths are cropped to the shorter.
    """
    from scipy.optimize import minimize_scalar

    n = min(len(reference), len(estimate))
    ref_db, peak = log_mel(reference[:n], sample_rate, n_mels=n_mels, top_db=top_db)
    est_db, _ = log_mel(estimate[:n], sample_rate, n_mels=n_mels, top_db=np.inf, ref=peak)

    def distance(gain):
        est = np.clip(est_db + gain, peak - top_db, peak + top_db)
        return float(np.sqrt(np.mean((ref_db - est) ** 2)))

    # the floor makes the distance flat far from the match: a coarse grid, then a bounded search
    grid = np.arange(-max_gain_db, max_gain_db + 1e-9, 2.0)
    best = float(grid[int(np.argmin([distance(g) for g in grid]))])
    lo, hi = max(-max_gain_db, best - 2.0), min(max_gain_db, best + 2.0)
    found = minimize_scalar(distance, bounds=(lo, hi), method="bounded", options={"xatol": 0.01})
    gain = float(found.x) if found.fun <= distance(best) else best
    return distance(gain), gain


def multi_resolution_stft_distance(reference, estimate, *, resolutions=((512, 128), (1024, 256), (2048, 512))):
    """Multi-resolution STFT distance (Yamamoto et al. 2020), unitless.

    ``D = (1/R) sum_r [ ||S_r - E_r||_F / ||S_r||_F + mean |log S_r - log E_r| ]`` over Hann STFT
    magnitudes S (reference) and E (estimate) at each (n_fft, hop) resolution r, with magnitudes
    floored at 1e-7 inside the log.
    """
    from scipy.signal import stft as _stft

    n = min(len(reference), len(estimate))
    total = 0.0
    for n_fft, hop in resolutions:
        s = np.abs(_stft(np.asarray(reference[:n], np.float64), nperseg=n_fft, noverlap=n_fft - hop)[2])
        e = np.abs(_stft(np.asarray(estimate[:n], np.float64), nperseg=n_fft, noverlap=n_fft - hop)[2])
        sc = np.linalg.norm(s - e) / max(np.linalg.norm(s), _EPS)
        logmag = np.mean(np.abs(np.log(np.maximum(s, 1e-7)) - np.log(np.maximum(e, 1e-7))))
        total += sc + logmag
    return float(total / len(resolutions))


def spectral_flux(mag, *, floor_db=60.0):
    """Frame-to-frame spectral flux ``[time-1]``: ``||L_t - L_{t-1}||_2 / sqrt(bins)`` in dB, where
    ``L = 20 log10(mag)`` floored ``floor_db`` below the spectrogram's peak (so the noise floor,
    where any change is inaudible, does not dominate)."""
    mag = np.asarray(mag, np.float64)
    floor = max(float(mag.max()), _EPS) * 10 ** (-floor_db / 20)
    logm = 20 * np.log10(np.maximum(mag, floor))
    return np.linalg.norm(np.diff(logm, axis=0), axis=1) / np.sqrt(mag.shape[-1])


def circular_flux(samples, config):
    """A loop's frame-to-frame spectral flux played on repeat: ``(flux, m)``, ``flux[j]`` from
    frame ``j`` to ``j + 1`` of a circular STFT (the last frame to the first), and ``m`` the frame
    centred on the wrap point (sample 0). A loop whose length is not a whole number of hops is
    first resampled periodically (FFT) to the next whole number: the circular STFT would pad it
    with silence, a seam that playing it on repeat does not have."""
    samples = np.asarray(samples, np.float32)
    whole = -(-len(samples) // config.hop) * config.hop
    if whole != len(samples):
        from scipy.signal import resample

        samples = resample(samples, whole).astype(np.float32)
    mag = spectral.magnitude(samples, config, circular=True)
    # frame m is centred on sample m*hop + n_fft/2; the wrap point is sample 0 (== len(x))
    m = (-(config.n_fft // 2) // config.hop) % mag.shape[0]
    return spectral_flux(np.concatenate([mag, mag[:1]], axis=0)), m


def loop_seam_flux(samples, config):
    """Spectral flux across a loop's wrap point, and the median flux inside the loop.

    Returns ``(seam, median_inside)``. The loop is analysed with a circular STFT (frames wrap
    around its end, as when it is played on repeat). ``seam`` is the mean flux of the two frame
    pairs around the frame centred on the wrap point; ``median_inside`` is the median of all other
    frame-to-frame fluxes. A seamless loop has ``seam <= median_inside``.
    """
    flux, m = circular_flux(samples, config)
    t = len(flux)
    seam_idx = [(m - 1) % t, m % t]
    seam = float(np.mean(flux[seam_idx]))
    inside = np.delete(flux, seam_idx)
    return seam, float(np.median(inside))


def loop_start(y, config):
    """Where a circular loop should start: ``(frame, blend_flux)``.

    The loop is continuous all the way round (blended in latent space, decoded and phase-rebuilt
    circularly), so its file can start at any frame; it starts where the sound changes least (the
    lowest spectral flux, averaged over 5 frames), as one sets a sampler's loop point on a steady
    part. ``blend_flux`` is the flux where the latent tail was blended into the head, which is
    then inside the loop, reported so that a jump there would still show.
    """
    flux, m = circular_flux(y, config)
    t = len(flux)
    at_start = 0.5 * (flux + np.roll(flux, 1))  # flux across frame j (loop_seam_flux's seam when j = m)
    calm = np.convolve(np.concatenate([at_start[-2:], at_start, at_start[:2]]), np.ones(5) / 5, mode="valid")
    centre = int(np.argmin(calm))
    return (centre - m) % t, float(at_start[m])
