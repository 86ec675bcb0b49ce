"""Shared fixtures and helpers: test audio made on the spot, WAV writing, and running the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import specsynth

SR = 16000
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Test signals (mono float32)


def harmonic_tone(f0=220.0, seconds=1.0, sr=SR, *, n_harmonics=8, amplitude=0.5, fade=0.01):
    """A harmonic tone: partials k*f0 (below Nyquist) with 1/k amplitudes, short fades at both ends."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        if k * f0 < sr / 2:
            x += np.sin(2 * np.pi * k * f0 * t + 0.3 * k) / k
    x *= amplitude / np.max(np.abs(x))
    return _fade(x, fade, sr).astype(np.float32)


def sine(freq=440.0, seconds=1.0, sr=SR, *, amplitude=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def sweep(f_start=200.0, f_end=4000.0, seconds=1.0, sr=SR, *, amplitude=0.5, fade=0.01):
    """A linear sine sweep from ``f_start`` to ``f_end`` Hz."""
    t = np.arange(int(round(seconds * sr))) / sr
    phase = 2 * np.pi * (f_start * t + 0.5 * (f_end - f_start) / seconds * t**2)
    return _fade(amplitude * np.sin(phase), fade, sr).astype(np.float32)


def noise_burst(seconds=1.0, sr=SR, *, burst=(0.3, 0.5), amplitude=0.3, seed=0):
    """White noise between ``burst[0]`` and ``burst[1]`` seconds (5 ms ramps), silence elsewhere."""
    n = int(round(seconds * sr))
    x = np.zeros(n)
    a, b = int(burst[0] * sr), int(burst[1] * sr)
    rng = np.random.default_rng(seed)
    seg = rng.standard_normal(b - a) * amplitude / 3
    x[a:b] = _fade(seg, 0.005, sr)
    return x.astype(np.float32)


def seamless_loop(sr=SR, *, n_samples=16384, cycles=(55, 83, 130, 211), am_cycles=3, seed=1):
    """An exactly periodic loop of ``n_samples``: sines at integer multiples of sr/n_samples, times an
    amplitude modulation that completes ``am_cycles`` periods over the loop."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples)
    x = np.zeros(n_samples)
    for i, c in enumerate(cycles):
        x += np.sin(2 * np.pi * c * t / n_samples + rng.uniform(0, 2 * np.pi)) / (i + 1)
    # cos: the wrap point sits on an envelope peak, not where the envelope changes fastest, so the
    # seam is an ordinary moment of the loop and flux there is typical
    env = 0.6 + 0.4 * np.cos(2 * np.pi * am_cycles * t / n_samples)
    x *= env
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def _fade(x, seconds, sr):
    n = int(seconds * sr)
    if n:
        ramp = np.linspace(0.0, 1.0, n)
        x = np.array(x, dtype=np.float64)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def peak_frequency(x, sr):
    """Frequency (Hz) of the largest FFT peak, refined by quadratic interpolation."""
    x = np.asarray(x, np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-30)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + offset) * sr / len(x)


def write_wav(path, x, sr=SR, *, subtype=None):
    """Write audio with soundfile (any number of channels: [n] or [n, channels]); returns the Path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(x), sr, subtype=subtype)
    return path


def folder_snapshot(folder):
    """{relative path: bytes} for every file under ``folder`` (hidden files included)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# The CLI as a real subprocess


def run_cli(*args, python_flags=(), cwd=None, timeout=120):
    """Run ``python -m specsynth.cli ARGS`` and return the CompletedProcess (text stdout/stderr)."""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)  # a developer's warning filters must not add stderr lines
    cmd = [sys.executable, *python_flags, "-m", "specsynth.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or REPO, env=env, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Processes, read from /proc: no orphan outlives the process that started it


def processes():
    """{pid: (parent pid, state)} of every process, read from /proc."""
    found = {}
    for d in Path("/proc").iterdir():
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(d.name)] = (int(fields[1]), fields[0])
        except (OSError, ValueError, IndexError):
            continue
    return found


def descendants(pid):
    """Every process below ``pid``: its children, theirs, and so on."""
    table, found, todo = processes(), [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, (ppid, _) in table.items() if ppid == parent]
        found += kids
        todo += kids
    return found


def living(pids):
    """Those of ``pids`` still running (not gone, not zombies)."""
    table = processes()
    return [p for p in pids if p in table and table[p][1] != "Z"]


def mentioning(text):
    """Running processes (other than this one) whose command line holds ``text``."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if text in (d / "cmdline").read_bytes().decode(errors="replace") and int(d.name) != os.getpid():
                found.append(int(d.name))
        except (OSError, ValueError):
            continue
    return living(found)


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(autouse=True)
def keep_main_module(monkeypatch):
    """Streamlit's AppTest installs the app as sys.modules["__main__"] and leaves it there:
    processes spawned later in the session (render workers) would run the app as they start."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


@pytest.fixture(scope="session")
def config():
    return specsynth.SpectralConfig()


def assert_user_error(result, words, folder, before=None):
    """Exit 2, exactly one stderr line holding every one of ``words``, no traceback, and ``folder``
    as it was (``before``, or empty)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith("\n"), result.stderr
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    assert "Traceback" not in result.stderr
    assert folder_snapshot(folder) == (before or {}), "the failed run left files behind"
