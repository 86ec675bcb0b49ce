"""Training benchmark: a user's 100-sound folder with the defaults, and training memory as data grow.

    .venv/bin/python benchmarks/train.py [--dataset DIR] [--factor 4] [--skip-folder] [--write]

* **A 100-sound folder, defaults** (target: at most 30 minutes on 2 cores): 100 sounds of 1-4 s
  made here (soundfont notes of 20 programs, struck inharmonic bells, filtered noise bursts and
  glides), then ``specsynth dataset`` and ``specsynth train`` with their defaults, each timed as a
  child process, with the training's peak resident memory.
* **Training memory against data size** (target: at most 8 GB, and the same within 10% on a
  dataset ``factor`` times larger): the pretrained recipe's settings, cut to one VAE epoch and one
  prior epoch, on a dataset (``--dataset``, default: the recipe's, ``pretrained.dataset/``) and on
  that dataset repeated ``factor`` times (its frames written ``factor`` times over), each trained in
  a child process whose peak RSS is read from ``ru_maxrss``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, machine_line, publish, verdict

SECTION = "## Training"
SPECSYNTH = [sys.executable, "-m", "specsynth.cli"]


def make_folder(folder, sample_rate=44100, seed=0):
    """100 sounds of 1-4 s: 40 soundfont notes, 20 bells, 20 noise bursts, 20 glides."""
    import soundfile as sf

    from specsynth.soundfont import render_note

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(100):
        seconds = float(rng.uniform(1, 4))
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        if i < 40:
            x = render_note(int(rng.integers(0, 112)) // 5 * 5, int(rng.integers(40, 80)), seconds=seconds,
                            hold=0.75 * seconds, sample_rate=sample_rate)
        elif i < 60:  # a bell: inharmonic partials, each with its own decay
            f0 = rng.uniform(200, 900)
            x = sum(np.sin(2 * np.pi * f0 * r * t) * np.exp(-t * rng.uniform(1, 4)) / (k + 1)
                    for k, r in enumerate((1.0, 2.76, 5.40, 8.93)))
        elif i < 80:  # a noise burst through a resonant band
            from scipy.signal import butter, sosfilt

            centre = rng.uniform(300, 8000)
            sos = butter(2, [centre / 1.3, min(centre * 1.3, 0.45 * sample_rate)], btype="band", fs=sample_rate,
                         output="sos")
            x = sosfilt(sos, rng.standard_normal(len(t))) * np.exp(-t * rng.uniform(0.5, 4))
        else:  # a glide over an octave
            f = 110 * 2 ** (rng.uniform(0, 3) + t / seconds)
            x = np.sin(2 * np.pi * np.cumsum(f) / sample_rate) * np.minimum(1, 10 * t)
        x = np.asarray(x, np.float64)
        sf.write(folder / f"sound{i:03d}.wav", (0.5 * x / np.max(np.abs(x))).astype(np.float32), sample_rate)


def timed(cmd, **kwargs):
    """Run a child process; returns (seconds, its own peak RSS in MB, from ``wait4``)."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, **kwargs)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def folder_benchmark(work):
    folder, data, bundle = work / "sounds", work / "data", work / "bundle"
    make_folder(folder)
    build_s, _ = timed(SPECSYNTH + ["dataset", str(folder), "-o", str(data)])
    train_s, train_mb = timed(SPECSYNTH + ["train", str(data), "--out", str(bundle)])
    return build_s, train_s, train_mb


def repeated(dataset, out, factor):
    """``dataset`` with its items ``factor`` times over (frames.bin, contour.npy and items copied)."""
    meta = json.loads((dataset / "dataset.json").read_text())
    total = meta["frames"]["shape"][0]
    out.mkdir(parents=True)
    with open(out / "frames.bin", "wb") as fh:
        for _ in range(factor):
            with open(dataset / "frames.bin", "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 24)
    np.save(out / "contour.npy", np.tile(np.load(dataset / "contour.npy"), (factor, 1)))
    items = [{**item, "name": f"{item['name']}@{k}", "offset": item["offset"] + k * total}
             for k in range(factor) for item in meta["items"]]
    meta.update(items=items, frames={**meta["frames"], "shape": [total * factor, meta["frames"]["shape"][1]]})
    (out / "dataset.json").write_text(json.dumps(meta))
    return out


TRAIN_ONE_EPOCH = """
import sys
from dataclasses import replace
from specsynth.data import Dataset
from specsynth.model.recipe import recipe_settings
from specsynth.model.train import train
train(Dataset(sys.argv[1]), sys.argv[2], settings=replace(recipe_settings(), epochs=1, prior_epochs=1),
      overwrite=True, verbose=0, log=lambda *a: None)
"""


def memory_benchmark(dataset, work, factor):
    rows = []
    for name, path in (("1x", dataset), (f"{factor}x", repeated(dataset, work / "big", factor))):
        frames = json.loads((path / "dataset.json").read_text())["frames"]["shape"][0]
        seconds, mb = timed([sys.executable, "-c", TRAIN_ONE_EPOCH, str(path), str(work / f"bundle_{name}")])
        rows.append((name, frames, seconds, mb))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT / "pretrained.dataset"))
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--skip-folder", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    lines = [SECTION, "", machine_line(), ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_folder:
            build_s, train_s, train_mb = folder_benchmark(work / "folder")
            lines += ["| a 100-sound folder, defaults | measured | target | verdict |", "|---|---|---|---|",
                      f"| `specsynth dataset` | {build_s:.0f} s | | |",
                      f"| `specsynth train` | {train_s / 60:.1f} min, peak {train_mb / 1024:.2f} GB | <= 30 min "
                      f"| {verdict(train_s <= 1800)} |", ""]
        dataset = Path(args.dataset)
        if (dataset / "dataset.json").exists():
            rows = memory_benchmark(dataset, work / "memory", args.factor)
            base = rows[0][3]
            lines += ["| training memory (recipe settings, 1 epoch each) | frames | time | peak RSS | vs 1x |",
                      "|---|---|---|---|---|"]
            lines += [f"| {name} | {frames:,} | {s / 60:.1f} min | {mb / 1024:.2f} GB | {mb / base - 1:+.1%} |"
                      for name, frames, s, mb in rows]
            ok = all(mb <= 8 * 1024 for *_, mb in rows) and abs(rows[-1][3] / base - 1) <= 0.10
            lines += ["", f"Peak at most 8 GB and flat within 10% with {args.factor}x the data: {verdict(ok)}"]
        else:
            lines += [f"No dataset at {dataset}: run `make pretrained` (it writes it) or pass --dataset."]
    publish(SECTION, "\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
