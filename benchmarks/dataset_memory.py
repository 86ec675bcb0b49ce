"""Peak memory of making a dataset and of one pass of ``segment_dataset`` over it, at two sizes.

    python benchmarks/dataset_memory.py [--minutes 10] [--factor 4] [--keep DIR]

Each stage runs in its own child process (so one stage's peak does not hide another's) and its
peak RSS is the child's ``ru_maxrss``. The audio is synthetic, 44.1 kHz (MODEL_CONFIG): 4 s items
of harmonic tones, glides and noise, made one at a time by a generator. The claim to check: peak
memory stays flat (within 10%) when the data grows ``factor`` times.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ITEM_SECONDS = 4.0


def synthetic_items(minutes, sample_rate, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(ITEM_SECONDS * sample_rate)
    t = np.arange(n) / sample_rate
    for i in range(int(round(minutes * 60 / ITEM_SECONDS))):
        kind = i % 3
        if kind == 0:  # a harmonic tone with a decay
            f0 = 440.0 * 2 ** ((rng.integers(36, 85) - 69) / 12)
            x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * np.exp(-t * rng.uniform(0.2, 2))
        elif kind == 1:  # a glide
            f = 110.0 * 2 ** (rng.uniform(0, 3) + rng.uniform(-1, 1) * t / ITEM_SECONDS)
            x = np.sin(2 * np.pi * np.cumsum(f) / sample_rate)
        else:  # noise bursts
            x = rng.standard_normal(n) * (np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) > 0)
        x = x.astype(np.float32)
        yield f"synth{i:05d}", None, 0.5 * x / max(float(np.abs(x).max()), 1e-9)


def child(stage, path, minutes):
    from specsynth import data, spectral

    start = time.perf_counter()
    if stage == "build":
        data.write_dataset(path, synthetic_items(minutes, spectral.MODEL_CONFIG.sample_rate),
                           spectral.MODEL_CONFIG, {"minutes": minutes}, overwrite=True)
        extra = {}
    else:
        from specsynth.model.dataset import segment_dataset

        ds = data.Dataset(path)
        mean, std = ds.frame_stats(range(len(ds.items)))
        batches = 0
        for batch in segment_dataset(ds, range(len(ds.items)), seg_len=64, batch_size=32, offset=mean, scale=std,
                                     gain_db=(-12.0, 6.0), seed=0):
            batches += 1
        extra = {"batches": batches, "frames": ds.n_frames}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": peak_mb, **extra}))


def run_child(stage, path, minutes):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, __file__, "--child", stage, str(path), str(minutes)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="audio in the smaller dataset")
    p.add_argument("--factor", type=int, default=4, help="how many times larger the second one is")
    p.add_argument("--keep", help="make the datasets here (default: a temporary folder)")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        stage, path, minutes = args.child
        return child(stage, Path(path), float(minutes))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dataset-memory."))
    rows = []
    for minutes in (args.minutes, args.minutes * args.factor):
        path = root / f"ds_{minutes:g}min"
        build = run_child("build", path, minutes)
        read = run_child("pass", path, minutes)
        size = (path / "frames.bin").stat().st_size / 2**20
        rows.append((minutes, read["frames"], size, build, read))
        print(f"{minutes:g} min done", file=sys.stderr)
    print(f"{'audio':>8} {'frames':>8} {'frames.bin':>11} {'build peak':>11} {'build':>8} "
          f"{'pass peak':>10} {'pass':>7} {'batches':>8}")
    for minutes, frames, size, build, read in rows:
        print(f"{minutes:>5g} min {frames:>8} {size:>8.0f} MB {build['peak_mb']:>8.0f} MB {build['seconds']:>7.1f}s "
              f"{read['peak_mb']:>7.0f} MB {read['seconds']:>6.1f}s {read['batches']:>8}")
    (small, big) = rows
    print(f"peak RSS, {args.factor}x data: build {big[3]['peak_mb'] / small[3]['peak_mb'] - 1:+.1%}, "
          f"pass {big[4]['peak_mb'] / small[4]['peak_mb'] - 1:+.1%}")


if __name__ == "__main__":
    main()
