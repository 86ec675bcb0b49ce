"""Render benchmark: batch throughput, an NSynth Super-sized corner set, loop seams, interpolation.

    .venv/bin/python benchmarks/render.py [--model BUNDLE] [--workers 2] [--full] [--write]

* throughput: `specsynth render` of a grid manifest (4 s corner notes, 5 x 5 positions x 4
  pitches = 100 sounds) with N workers; output samples per second of wall time, whole command
  (model loading in the workers included). Target >= 2 million samples/s on 2 cores.
* NSynth Super-sized set (`--full`): 9 x 9 positions x 16 pitches (1,296 sounds of 4 s).
* Ray (`--executor ray`, when Ray is installed): the same batches as Ray tasks on a local Ray
  started by the command (its start-up included), N actors. Target: within 15% of the process
  pool's throughput, and the same output files, byte for byte.
* loops: spectral flux across the wrap point vs the median flux inside, for every loop
  (seeded by several notes, and unseeded, at two temperatures). Target: seam <= median, and every
  loop sounds (RMS above -60 dBFS; a seeded one less than 12 dB below its seed's held part: a
  loop grows from the seed's body, not its release tail) and
  moves (median flux at least 0.05: a frozen loop, every frame alike, has seam and median 0).
  The flux where the latent tail was blended into the head (inside the loop, since the file
  starts at its steadiest frame) is shown too, with its rank among all the loop's fluxes.
* interpolation: along 7-step series between held-out note pairs, the log-mel distance to A
  rises and to B falls monotonically (median over pairs), and the endpoints are as close to A
  and B as the model's own round trip.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine_line, publish, verdict

from specsynth import audio, metrics, ops  # noqa: E402
from specsynth.soundfont import note_name, render_note  # noqa: E402

SECTION = "## Rendering"
CORNERS = ["gm:42:60", "gm:73:60", "gm:4:60", "gm:56:60"]
PAIRS = [((42, 60), (73, 60)), ((0, 55), (56, 55)), ((24, 52), (48, 52)), ((11, 67), (81, 67)),
         ((1, 61), (41, 61)), ((70, 63), (74, 63))]
LOOP_SEEDS = [None, (48, 48), (89, 60), (52, 57), (0, 60)]


def grid_manifest(folder, model, resolution, pitches, method):
    text = (f'[defaults]\nmodel = "{model}"\nmethod = "{method}"\n\n[[job]]\nkind = "grid"\n'
            f"corners = {CORNERS!r}\nresolution = {resolution}\npitches = {list(pitches)!r}\n"
            'out = "grid"\n').replace("'", '"')
    path = Path(folder) / "bench.toml"
    path.write_text(text)
    return path


def throughput(model_path, resolution, pitches, workers, method, executor="process"):
    """One `specsynth render` of a grid: sounds, samples, wall time, and a digest of every file."""
    from specsynth.render import run_manifest

    with tempfile.TemporaryDirectory() as tmp:
        manifest = grid_manifest(tmp, Path(model_path).resolve() if model_path != "pretrained" else model_path,
                                 resolution, pitches, method)
        t = time.perf_counter()
        code = run_manifest(manifest, outdir=Path(tmp) / "out", workers=workers, executor=executor)
        wall = time.perf_counter() - t
        files = sorted((Path(tmp) / "out").rglob("*.wav"))
        n = sum(audio.file_info(f)["frames"] for f in files)
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.relative_to(tmp).as_posix().encode() + f.read_bytes())
    return {"sounds": len(files), "samples": n, "wall": wall, "rate": n / wall, "ok": code == 0,
            "executor": executor, "digest": digest.hexdigest()}


def fastest(repeat, executors, run):
    """{executor: its fastest of ``repeat`` runs}, the executors alternating, so that load from
    other programs on a shared machine falls on both alike; every run must make the same files."""
    runs = {e: [] for e in executors}
    for _ in range(max(1, repeat)):
        for e in executors:
            runs[e].append(run(e))
    for e, rs in runs.items():
        assert len({r["digest"] for r in rs}) == 1, f"{e}: runs of one batch made different files"
    return {e: min(rs, key=lambda r: r["wall"]) for e, rs in runs.items()}


def batch_row(label, r, workers):
    who = f"{workers} {'actors on a local Ray' if r['executor'] == 'ray' else 'workers'}"
    return (f"| {label}, {who} | {r['sounds']} | {r['samples']:,} | {r['wall']:.1f} | {r['rate'] / 1e6:.2f} M |")


def ray_target(pool, ray):
    """The Ray line of the targets: throughput within 15% of the pool's, the same files."""
    ratio = ray["rate"] / pool["rate"]
    same = ray["digest"] == pool["digest"]
    return (f"- {verdict(ratio >= 0.85 and same and ray['ok'])} Ray executor: {ray['rate'] / 1e6:.2f} M samples/s "
            f"against the pool's {pool['rate'] / 1e6:.2f} M ({ratio:.0%}; target >= 85%) on {pool['sounds']} sounds; "
            f"the {ray['sounds']} files {'identical, byte for byte' if same else 'DIFFER'} (sha256 of names and bytes)")


MIN_FLUX, MIN_LEVEL_DB = 0.05, -60.0  # a loop quieter, or stiller, than this is not a texture
MIN_SEED_DB = -12.0  # a seeded loop this far below its seed's held part has faded out


def rms_db(samples):
    return 10 * np.log10(max(float(np.mean(np.square(samples))), 1e-20))


def loops(model):
    rows = []
    for seed_note in LOOP_SEEDS:
        for temperature in (0.8, 1.0):
            seed = None if seed_note is None else audio.normalize_audio(render_note(*seed_note))
            r = ops.loop(model, seed, seconds=8.0, temperature=temperature, seed=3)
            label = "unseeded" if seed_note is None else note_name(*seed_note)
            flux, _ = metrics.circular_flux(r.samples, model.config)
            blend = r.metrics["blend_flux"]
            seam, inside, level = r.metrics["seam_flux"], r.metrics["median_flux"], rms_db(r.samples)
            # against the seed note's held part (3 s of its 4): a loop grows from its body
            to_seed = None if seed is None else level - rms_db(seed[: 3 * len(seed) // 4])
            # a loop passes when its seam is no rougher than its inside, and it is a texture: it
            # sounds (above MIN_LEVEL_DB; a seeded one within MIN_SEED_DB of its seed) and moves (a
            # frozen loop, every frame alike, has seam and median flux 0)
            ok = seam <= inside and inside >= MIN_FLUX and level > MIN_LEVEL_DB and (
                to_seed is None or to_seed > MIN_SEED_DB)
            rows.append({"name": label, "temperature": temperature, "seam": seam, "inside": inside, "blend": blend,
                         "rank": float(np.mean(flux < blend)), "samples": len(r.samples), "level": level,
                         "to_seed": to_seed, "ok": ok})
    return rows


def interpolation(model, steps=7):
    to_a, to_b, ends = [], [], []
    for (pa, ka), (pb, kb) in PAIRS:
        a = audio.normalize_audio(render_note(pa, ka))
        b = audio.normalize_audio(render_note(pb, kb))
        series = ops.interpolate_series(model, ops.encode_sound(model, a, pitch=ka),
                                        ops.encode_sound(model, b, pitch=kb), steps)
        to_a.append([metrics.log_mel_distance(a, r.samples, model.sample_rate) for r in series])
        to_b.append([metrics.log_mel_distance(b, r.samples, model.sample_rate) for r in series])
        # the series is at the model's own level (ops do not normalize): so is the round trip
        rt_a = metrics.log_mel_distance(a, model.resynthesize(a, pitch=ka), model.sample_rate)
        rt_b = metrics.log_mel_distance(b, model.resynthesize(b, pitch=kb), model.sample_rate)
        ends.append((to_a[-1][0] - rt_a, to_b[-1][-1] - rt_b))
    med_a = np.median(np.array(to_a), axis=0)
    med_b = np.median(np.array(to_b), axis=0)
    return med_a, med_b, ends


def main(argv=None):
    import specsynth

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pretrained")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--method", default="lws+fgla")
    parser.add_argument("--executor", choices=("process", "ray", "both"), default="both",
                        help="the batches' executors (default: both, or process alone if Ray is not installed)")
    parser.add_argument("--full", action="store_true", help="also render the 9x9x16 NSynth Super-sized set")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each batch, executors alternating; the fastest is shown (default: 2)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    if args.executor == "both" and importlib.util.find_spec("ray") is None:
        args.executor = "process"
    executors = ("process", "ray") if args.executor == "both" else (args.executor,)
    small = fastest(args.repeat, executors, lambda e: throughput(args.model, 5, [48, 55, 60, 67], args.workers,
                                                                  args.method, e))
    big = fastest(args.repeat, executors, lambda e: throughput(args.model, 9, list(range(45, 77, 2)), args.workers,
                                                                args.method, e)) if args.full else {}
    tp, full = small[executors[0]], big.get(executors[0])
    model = specsynth.load(args.model)
    loop_rows = loops(model)
    med_a, med_b, ends = interpolation(model)


    lines = [SECTION, "", f"`.venv/bin/python benchmarks/render.py --model {args.model} --workers {args.workers}"
             f"{' --full' if args.full else ''} --executor {args.executor} --repeat {args.repeat} --write` on "
             f"{machine_line()}; each batch's fastest of {args.repeat} runs, the executors alternating", "",
             "| batch | sounds | output samples | wall s (whole command) | samples / s |", "|---|---:|---:|---:|---:|"]
    lines += [batch_row(f"grid 5x5 x 4 pitches, {args.method}", r, args.workers) for r in small.values()]
    lines += [batch_row("NSynth Super set 9x9 x 16 pitches", r, args.workers) for r in big.values()]
    lines += ["", "| loop (8 s) | temperature | seam flux | median flux inside | flux at the blend point | "
              "its rank among the loop's fluxes | samples | RMS level | against the seed's held part |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['temperature']:g} | {r['seam']:.3f} | {r['inside']:.3f} | {r['blend']:.3f} | "
              f"{r['rank']:.0%} | {r['samples']} | {r['level']:.1f} dBFS | "
              + ("" if r["to_seed"] is None else f"{r['to_seed']:+.1f} dB") + " |" for r in loop_rows]
    lines += ["", "| step | 0 | " + " | ".join(str(i) for i in range(1, len(med_a))) + " |",
              "|---|" + "---:|" * len(med_a),
              "| median LSD to A (dB) | " + " | ".join(f"{v:.2f}" for v in med_a) + " |",
              "| median LSD to B (dB) | " + " | ".join(f"{v:.2f}" for v in med_b) + " |"]
    end_gap = max(max(e) for e in ends)
    mono = bool(np.all(np.diff(med_a) > 0) and np.all(np.diff(med_b) < 0))
    lines += ["", "### Targets", "",
              # throughput is judged on the big batch when there is one: on 100 sounds the workers'
              # start-up (TensorFlow import, model load: ~5 s) is most of the wall time
              f"- {verdict((full or tp)['rate'] >= 2e6)} batch throughput "
              + (f"{full['rate'] / 1e6:.2f} M output samples/s on the NSynth Super-sized set ({full['sounds']} "
                 f"sounds in {full['wall']:.0f} s, whole command); " if full else "")
              + f"{tp['rate'] / 1e6:.2f} M/s on {tp['sounds']} sounds, start-up included (target >= 2 M/s on 2 cores)",
              f"- {verdict(all(r['ok'] for r in loop_rows))} loops: seam flux <= median inside, the loop sounding (RMS > "
              f"{MIN_LEVEL_DB:g} dBFS; a seeded one less than {-MIN_SEED_DB:g} dB below its seed's held part) and not "
              f"frozen (median flux >= {MIN_FLUX:g}) for "
              f"{sum(r['ok'] for r in loop_rows)} of {len(loop_rows)} loops (each file starts at its "
              "steadiest frame; the latent blend point, inside the loop, ranks at the "
              f"{statistics.median(r['rank'] for r in loop_rows):.0%} median and {max(r['rank'] for r in loop_rows):.0%} worst "
              "among the loop's frame-to-frame fluxes)",
              f"- {verdict(mono)} interpolation: median distance to A rises and to B falls monotonically over "
              f"{len(PAIRS)} pairs",
              f"- {verdict(end_gap <= 0.5)} endpoints within {end_gap:.2f} dB of the model's own round trip (target <= 0.5 dB)"]
    if len(executors) == 2:
        lines.append(ray_target(*(big or small).values()))
    lines.append("")
    text = "\n".join(lines)
    publish(SECTION, text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
