"""`make demo`: the main job with what ships in the repo.

Until a model bundle is present this renders General MIDI soundfont notes and reconstructs each
from its magnitudes alone with every phase method, printing the spectral convergence of each.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from . import audio, metrics, phase, spectral
from .soundfont import note_name, render_note

NOTES = ((42, 48), (73, 72), (0, 60))  # cello, flute, piano


def run_reconstruction_demo(outdir="out"):
    config = spectral.SpectralConfig()
    outdir = audio.check_writable_dir(outdir)
    print(f"Reconstructing {len(NOTES)} soundfont notes with each phase method into {outdir}/")
    for program, pitch in NOTES:
        x = audio.normalize_audio(render_note(program, pitch, sample_rate=config.sample_rate))
        stem = f"note_{program:03d}_{pitch}"
        audio.write(outdir / f"{stem}_original.wav", x, config.sample_rate, overwrite=True)
        mag = spectral.magnitude(x, config)
        print(f"  {note_name(program, pitch)}")
        for method in phase.METHODS:
            start = time.perf_counter()
            y = phase.reconstruct(mag, config=config, method=method, length=len(x))
            ms = (time.perf_counter() - start) * 1000
            sc = metrics.spectral_convergence(mag, y, config)
            path = outdir / f"{stem}_{method.replace('+', '_')}.wav"
            audio.write(path, y, config.sample_rate, overwrite=True)
            print(f"    {method:10s} {sc:6.1f} dB spectral convergence  {ms:6.0f} ms  -> {path}")
    return 0


def main():
    return run_reconstruction_demo()


if __name__ == "__main__":
    sys.exit(main())
