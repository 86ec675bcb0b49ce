"""Analysis-resynthesis of files: analyse, keep only magnitudes, reconstruct phase, write.

The library function behind ``specsynth reconstruct`` (and the demo before a model exists).
"""
from __future__ import annotations

import time
from pathlib import Path

from . import audio, metrics, phase, spectral
from .limits import MAX_INPUT_SECONDS


def reconstruct_file(in_path, out_path, *, config=None, method=phase.DEFAULT_METHOD, n_iter=None,
                     overwrite=False, max_seconds=MAX_INPUT_SECONDS, normalize=None):
    """Reconstruct one file from its STFT magnitude alone and write it atomically.

    The output keeps the input's level unless ``normalize`` (``"peak"`` or ``"loudness"``, see
    :func:`specsynth.audio.normalize_audio`) asks otherwise.

    Returns a dict with ``input``, ``output``, ``seconds`` (audio length), ``spectral_convergence_db``
    and ``render_seconds``.
    """
    config = config or spectral.SpectralConfig()
    samples, rate = audio.load(in_path, sample_rate=config.sample_rate, max_seconds=max_seconds, normalize=None)
    start = time.perf_counter()
    mag = spectral.magnitude(samples, config)
    out = phase.reconstruct(mag, config=config, method=method, n_iter=n_iter, length=len(samples))
    elapsed = time.perf_counter() - start
    sc = metrics.spectral_convergence(mag, out, config)
    audio.write(out_path, audio.normalize_audio(out, mode=normalize, sample_rate=rate), rate, overwrite=overwrite)
    return {
        "input": str(in_path),
        "output": str(out_path),
        "seconds": len(samples) / rate,
        "spectral_convergence_db": sc,
        "render_seconds": elapsed,
    }


def output_paths(inputs, outdir, *, overwrite=False, suffix=".wav"):
    """``OUTDIR/<stem>.wav`` for each input; refuses duplicates and existing files up front."""
    from .errors import OutputError

    outdir = Path(outdir)
    seen = {}
    paths = []
    for src in inputs:
        dst = outdir / (Path(src).stem + suffix)
        if dst in seen:
            raise OutputError(f"both {seen[dst]} and {src} would be written here", path=dst)
        seen[dst] = src
        if dst.exists() and not overwrite:
            raise OutputError("already exists (use --overwrite to replace it)", path=dst)
        paths.append(dst)
    return paths
