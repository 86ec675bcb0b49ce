"""Model benchmark: a bundle (default: pretrained/) on sounds it never trained on, at 44.1 kHz.

    .venv/bin/python benchmarks/model.py [--model BUNDLE] [--quick] [--write]

Every figure compares the model's output with the true sound at the model's rate. The gap of a round
trip (``model.resynthesize``: pitch tracking, encode, decode, phase) is its log-mel distance to the
true sound (:func:`specsynth.metrics.log_mel_distance_best_gain`: 128 mel bands, floored 80 dB below
the true sound's peak, the output scaled by the one gain in dB that minimises the distance, so the
shape is judged and the level apart) minus the same distance of the oracle: the true STFT magnitudes
through plain LWS (phase method "lws"). 0 dB is as near as true magnitudes get.

* round trip on held-out real recordings: the sample packs' held-out files and held-out categories
  (``packs.split``), chunked as training chunks them (``data.items_from_files``, trimmed, 4 s,
  peak-normalised), the first 2 chunks of each file, files taken in turn from each category, at
  most 30 items a set. Target: median gap <= +4 dB, none worse than +10 dB;
* round trip on speech (never trained on): espeak-ng sentences in English and German voices,
  made at run time and resampled to 44.1 kHz. Target: median gap <= +8 dB;
* held-out soundfont notes (recipe.HELDOUT_NOTES, 4 s, 3 s held): round trip, target median gap
  <= +3.5 dB; pitch: each note decoded at its own pitch and at +-5 semitones
  (``model.decode(latents, pitch=note + shift)``), the output's median tracked f0
  (``specsynth.pitch.track``) over voiced frames against the target note. Target: every render
  within 20 cents. The instrument's own note at each target pitch is read the same way: where the
  tracker hears that note in another octave (organ stops an octave down), the target is taken in
  that octave, since a faithful render reads the same;
* pitch movement: a held-out program's note played with 5.5 Hz +-50 cent vibrato and one with a
  1-octave glide (the soundfont's pitch wheel, moved every 256 samples); the round trip's tracked
  contour against the input's, median absolute cents over frames voiced in both. Target <= 20;
* levels: output peak before any normalisation (decoded frames through phase reconstruction,
  before ``Model.frames_to_audio``'s ceiling), target <= +6 dBFS, on every round trip above, on
  the held-out sounds' latents with z x 3 (the contour kept) and on random z (standard normal z
  with a held-out note's tracked contour, or a flat one at MIDI 60); the round trip's level error
  (``model.resynthesize``'s output RMS - input RMS) with held-out notes and recordings at -20 dBFS
  RMS in (lower where that would put the input's peak above -1 dBFS), target within 1 dB (median
  and worst);
* speed: ``model.resynthesize`` of a 4 s note (tracking, encode, decode, phase), median of
  repeats, target <= 150 ms; bundle load time (after TensorFlow's one-off import, which is shown
  apart); bundle size on disk, target <= 25 MB;
* prior: unprimed walks (temperature 1, one per held-out note and recording, at its label, as long
  as its sounding part) against the encoded latents of those sounding parts, per column: mean
  difference in the encoded std (target <= 0.2) and variance ratio (target 0.8..1.2), the z
  columns and the contour's two apart (for scale, the same figures for the encoded latents of
  training sounds, as many as there are held-out ones, against the held-out ones); loops
  (``ops.loop``, 4 s) seeded with a drone, vinyl crackle and a drum loop: seam flux <= the median flux inside, not frozen (median flux inside >
  0.2 dB), level within 6 dB of the seed's RMS;
* training time (and peak memory, where the bundle records it) from config.json, target <= 90 min.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from _common import ROOT, machine_line, publish, verdict

from specsynth import audio, metrics, ops, phase, spectral  # noqa: E402
from specsynth.data import items_from_files  # noqa: E402
from specsynth.errors import SpecsynthError  # noqa: E402
from specsynth.model import packs, recipe  # noqa: E402
from specsynth.pitch import flat  # noqa: E402
from specsynth.soundfont import _synth, default_soundfont, note_name, render_note  # noqa: E402

SECTION = "## Model"

TARGETS = {"recordings": 4.0, "recordings_worst": 10.0, "speech": 8.0, "notes": 3.5, "cents": 20.0,
           "contour_cents": 20.0, "peak_dbfs": 6.0, "level_db": 1.0, "ms": 150.0, "size_mb": 25.0,
           "mean_diff": 0.2, "var_ratio": 0.2, "loop_level_db": 6.0, "frozen_flux": 0.2, "train_min": 90.0}
CHUNKS_PER_FILE = 2
SPEECH = (("en", "The quick brown fox jumps over the lazy dog."),
          ("en+f3", "She sells sea shells by the sea shore, quietly."),
          ("en", "Please call Stella and ask her to bring these things."),
          ("en+f3", "A rainbow is a division of white light into many colours."),
          ("de", "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich."),
          ("de", "Der Wind weht kalt über das weite Meer."))
# (program, pitch): held-out programs; the bend in semitones at time t (seconds)
MOVING_NOTES = {"vibrato 5.5 Hz +-50 cents": (41, 64, lambda t: 0.5 * np.sin(2 * np.pi * 5.5 * t)),
                "glide 1 octave up over 2 s": (74, 60, lambda t: 12.0 * np.clip((t - 0.5) / 2.0, 0.0, 1.0))}
# Loop seeds: the first of each kind's candidates among the held-out files, else among the training files
LOOP_SEEDS = {"drone": ("ambi_drone.flac", "loop_drone_g_97.flac", "ambi_haunted_hum.flac"),
              "vinyl crackle": ("vinyl_hiss.flac",),
              "drum loop": ("beats/", "loop_amen.flac", "loop_breakbeat.flac")}
LEVEL_IN_DB = -20.0


# -- sounds ---------------------------------------------------------------------------------------
def gm_note(program, pitch, sr):
    return audio.normalize_audio(render_note(program, pitch, sample_rate=sr))


def bent_note(program, pitch, bend, sr, *, seconds=4.0, hold=3.0, block=256):
    """A soundfont note with its pitch wheel set every ``block`` samples to ``bend(t)`` semitones
    (range +-12), peak-normalised."""
    synth, sfid = _synth(default_soundfont(), sr)
    synth.program_select(0, sfid, 0, program)
    synth.pitchbend_range(0, 12.0)
    n_total, n_hold = int(seconds * sr), int(hold * sr)
    out, done = [], 0
    synth.pitchbend(0, 8192)
    synth.noteon(0, pitch, 100)
    while done < n_total:
        if done >= n_hold and done - block < n_hold:
            synth.noteoff(0, pitch)
        value = 8192 + bend(done / sr) / 12.0 * 8191
        synth.pitchbend(0, int(np.clip(round(value), 0, 16383)))
        n = min(block, n_total - done)
        out.append(np.frombuffer(synth.generate(n), dtype=np.float32).copy())
        done += n
    return audio.normalize_audio(np.concatenate(out).reshape(-1, 2).mean(axis=1).astype(np.float32))


def training_notes(count):
    """``count`` of the recipe's training notes (program, pitch), spread over its programs."""
    programs = recipe.TRAIN_PROGRAMS[:: max(1, len(recipe.TRAIN_PROGRAMS) // count)][:count]
    return [(p, recipe.train_pitches(p)[i % recipe.NOTES_PER_PROGRAM]) for i, p in enumerate(programs)]


def by_turns(entries):
    """Files taken in turn from each (pack, category), each category's in its sorted order."""
    groups = defaultdict(list)
    for e in entries:
        groups[(e["pack"], e["category"])].append(e)
    queues = [groups[k] for k in sorted(groups)]
    out = []
    while any(queues):
        out += [q.pop(0) for q in queues if q]
    return out


def recordings(entries, config, cap):
    """``[(name, samples)]``: up to :data:`CHUNKS_PER_FILE` training-style chunks of each file, in turns
    over the categories, at most ``cap``."""
    out = []
    for e in by_turns(entries):
        if len(out) >= cap:
            break
        items, _ = items_from_files([(e["path"], e["rel"])], config, chunk_seconds=recipe.CHUNK_SECONDS)
        try:
            for i, (name, _, x) in zip(range(CHUNKS_PER_FILE), items):
                out.append((name, x))
        except SpecsynthError:  # a file the loader refuses is skipped, as training skips it
            continue
    return out[:cap]


def speech(sr, count):
    """``[(name, samples)]`` of espeak-ng sentences at ``sr``, or None without espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (voice, text) in enumerate(SPEECH[:count]):
            path = Path(tmp) / f"speech{i}.wav"
            subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True)
            x, _ = audio.load(path, sample_rate=sr)
            out.append((f"{voice}: {text[:28]}...", x))
    return out


# -- measures -------------------------------------------------------------------------------------
def rms_db(x):
    return float(10 * np.log10(max(np.mean(np.square(np.asarray(x, np.float64))), 1e-20)))


def peak_db(x):
    return float(20 * np.log10(max(float(np.max(np.abs(x))), 1e-10)))


def at_level(x, db):
    """``x`` at RMS ``db``, or lower where that would put its peak above -1 dBFS (no file holds more)."""
    gain = min(db - rms_db(x), -1.0 - peak_db(x))
    return (x * 10 ** (gain / 20)).astype(np.float32)


def raw_synthesis(model, z, length=None):
    """``z`` decoded and through phase reconstruction, before ``Model.frames_to_audio`` turns anything down."""
    return phase.frames_to_audio(model.decode(z), config=model.config, length=length)


def round_trip(model, x):
    """The round trip of ``x`` (as ``model.resynthesize``, latents kept) and its gap to the LWS oracle."""
    cfg, sr = model.config, model.sample_rate
    z = model.encode(x)
    y = raw_synthesis(model, z, len(x))
    oracle = phase.reconstruct(spectral.magnitude(x, cfg), config=cfg, method="lws", length=len(x))
    lsd, _ = metrics.log_mel_distance_best_gain(x, y, sr)
    lsd_oracle, _ = metrics.log_mel_distance_best_gain(x, oracle, sr)
    return {"z": z, "y": y, "lsd": lsd, "oracle": lsd_oracle, "gap": lsd - lsd_oracle, "peak": peak_db(y)}


def tracked_cents(model, y, target):
    """Median tracked f0 of ``y``'s voiced frames against MIDI ``target``, in cents (nan: none voiced)."""
    c = model.track(y)
    return float(100 * (np.median(c.f0[c.voiced]) - target)) if c.voiced.any() else float("nan")


def contour_error(model, x, y):
    """Median absolute cents between the tracked contours of ``x`` and ``y`` where both are voiced."""
    a, b = model.track(x), model.track(y)
    both = a.voiced & b.voiced
    return (float(np.median(np.abs(100 * (b.f0[both] - a.f0[both])))) if both.any() else float("nan")), int(both.sum())


def sounding(model, x, z):
    return z[spectral.active_span(spectral.analyze(x, model.config))]


def compare(samples, encoded):
    """Per-column mean difference (in the encoded std) and variance ratio of two latent sets."""
    std = np.maximum(encoded.std(0), 1e-6)
    return np.abs(samples.mean(0) - encoded.mean(0)) / std, samples.var(0) / np.maximum(encoded.var(0), 1e-12)


def stats(values):
    values = [v for v in values if np.isfinite(v)]
    return (statistics.median(values), max(values)) if values else (float("nan"), float("nan"))


def cold_import_seconds():
    code = "import time; t = time.time(); import specsynth.model._keras; print(time.time() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def pick_seed(kind, heldout, train):
    for pool, where in ((heldout, "held-out"), (train, "training")):
        for want in LOOP_SEEDS[kind]:
            for e in pool:
                if e["rel"] == want or (want.endswith("/") and e["rel"].startswith(want)):
                    return e, where
    return None, None


# -- the benchmark --------------------------------------------------------------------------------
def run(model_path, quick=False):
    import specsynth

    started = time.perf_counter()
    cap, n_speech, repeats = (3, 2, 3) if quick else (30, len(SPEECH), 7)
    notes = recipe.HELDOUT_NOTES[:3] if quick else recipe.HELDOUT_NOTES
    import_s = cold_import_seconds()
    import specsynth.model._keras  # noqa: F401  (the one-off import, not counted in the load time)

    t = time.perf_counter()
    model = specsynth.load(model_path)
    load_s = time.perf_counter() - t
    cfg, sr = model.config, model.sample_rate
    r = {"config": cfg, "hyper": model.meta["model"], "load_s": load_s, "import_s": import_s, "quick": quick,
         "size_mb": sum(f.stat().st_size for f in Path(model.path).rglob("*") if f.is_file()) / 1e6}
    peaks, levels, reference, walk_labels = defaultdict(list), defaultdict(list), [], []

    def level_error(name, x):
        x20 = at_level(x, LEVEL_IN_DB)
        y = model.resynthesize(x20)
        peaks["round trips at -20 dBFS RMS"].append(peak_db(y))
        levels[name].append(rms_db(y) - rms_db(x20))

    def held_out(x, z):
        part = sounding(model, x, z)
        if len(part):
            reference.append(part)
            walk_labels.append(ops.contour_label(z))
        louder = np.concatenate([z[:, : model.z_dim] * 3, z[:, model.z_dim :]], axis=1)
        peaks["latents with z x 3"].append(peak_db(raw_synthesis(model, louder)))

    # 1. held-out recordings
    all_packs = packs.pack_files()
    train, heldout_files, heldout_categories = packs.split(all_packs)
    r["sets"] = {}
    for name, entries in (("held-out files", heldout_files), ("held-out categories", heldout_categories)):
        rows = []
        for item, x in recordings(entries, cfg, cap):
            rt = round_trip(model, x)
            peaks["round trips"].append(rt["peak"])
            held_out(x, rt["z"])
            level_error("recordings", x)
            rows.append((item, rt["gap"]))
        r["sets"][name] = rows
    r["packs_missing"] = packs.missing_packs()

    # 2. speech
    said = speech(sr, n_speech)
    r["speech"] = None if said is None else []
    for item, x in said or ():
        rt = round_trip(model, x)
        peaks["round trips"].append(rt["peak"])
        r["speech"].append((item, rt["gap"]))

    # 3. held-out notes
    r["notes"], cents, label_octave = [], [], []
    for program, pitch in notes:
        x = gm_note(program, pitch, sr)
        rt = round_trip(model, x)
        peaks["round trips"].append(rt["peak"])
        held_out(x, rt["z"])
        level_error("notes", x)
        c, own = {}, {}
        for d in (-5, 0, 5):
            c[d] = tracked_cents(model, model.synthesize(model.with_pitch(rt["z"], pitch + d), length=len(x)), pitch + d)
            own[d] = tracked_cents(model, x if d == 0 else gm_note(program, pitch + d, sr), pitch + d)
            if np.isfinite(c[d]):
                cents.append(abs(c[d] - (1200 * round(own[d] / 1200) if np.isfinite(own[d]) else 0)))
                label_octave.append(abs(c[d]))
            else:
                cents.append(float("inf"))  # a render the tracker hears no pitch in misses
        r["notes"].append((note_name(program, pitch), rt["lsd"], rt["oracle"], rt["gap"], c, own))
    r["cents"], r["label_octave"] = cents, label_octave

    # 4. pitch movement
    r["moving"] = []
    for item, (program, pitch, bend) in MOVING_NOTES.items():
        x = bent_note(program, pitch, bend, sr)
        rt = round_trip(model, x)
        peaks["round trips"].append(rt["peak"])
        err, n = contour_error(model, x, rt["y"])
        r["moving"].append((f"{note_name(program, pitch)}, {item}", err, n, rt["gap"]))

    # 5. levels: random z
    seconds4 = spectral.n_frames(4 * sr, cfg)
    rng = np.random.default_rng(0)
    contours = [model.track(gm_note(p, k, sr)) for p, k in notes[: (1 if quick else 4)]]
    for i in range(2 if quick else 8):
        contour = contours[i % len(contours)] if i % 2 == 0 else flat(seconds4, 60.0)
        z = rng.standard_normal((len(contour), model.z_dim)).astype(np.float32)
        peaks["random z"].append(peak_db(raw_synthesis(model, np.concatenate([z, contour.columns()], 1))))
    r["peaks"], r["levels"] = dict(peaks), dict(levels)

    # 6. speed
    x = gm_note(*recipe.HELDOUT_NOTES[0], sr)
    model.resynthesize(x)  # warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.resynthesize(x)
        times.append(time.perf_counter() - t)
    r["ms"] = 1000 * statistics.median(times)

    # 7. prior: unprimed walks against the held-out latents; loops
    ref = np.concatenate(reference)
    walks = np.concatenate([model.sample_prior(len(z), pitch=label, temperature=1.0, seed=i)
                            for i, (z, label) in enumerate(zip(reference, walk_labels))])
    r["prior"] = {"sounds": len(reference), "frames": len(ref), "z": compare(walks[:, :model.z_dim], ref[:, :model.z_dim]),
                  "contour": compare(walks[:, model.z_dim:], ref[:, model.z_dim:])}
    # for scale: the training sounds' own latents against the same held-out ones (a prior that
    # walked exactly as its training data would differ from the held-out sounds by this much)
    seen = [sounding(model, x, model.encode(x)) for _, x in recordings(train, cfg, len(reference) // 2)]
    seen += [sounding(model, x, model.encode(x)) for x in (gm_note(p, k, sr) for p, k in training_notes(len(reference) // 2))]
    seen = np.concatenate([z for z in seen if len(z)])
    r["prior"]["training"] = compare(seen[:, :model.z_dim], ref[:, :model.z_dim])
    r["loops"] = []
    for kind in LOOP_SEEDS:
        entry, where = pick_seed(kind, heldout_files + heldout_categories, train)
        if entry is None:
            continue
        items, _ = items_from_files([(entry["path"], entry["rel"])], cfg, chunk_seconds=recipe.CHUNK_SECONDS)
        _, _, seed = next(items)
        loop = ops.loop(model, seed, seconds=4.0)
        flux = loop.metrics
        r["loops"].append((kind, f"{entry['rel']} ({where})", flux["seam_flux"], flux["median_flux"],
                           rms_db(loop.samples) - rms_db(seed), peak_db(loop.samples)))

    # 8. training
    training = model.meta.get("training", {})
    r["train_s"], r["train_machine"] = training.get("seconds", float("nan")), training.get("machine", "?")
    memory = {k: v for k, v in training.items() if "memory" in k or "rss" in k}
    r["train_memory"] = memory or None
    r["seconds"] = time.perf_counter() - started
    return r


# -- the report -----------------------------------------------------------------------------------
def gap_row(name, gaps, median_target, worst_target=None):
    med, worst = stats(gaps)
    ok = bool(gaps) and med <= median_target and (worst_target is None or worst <= worst_target)
    target = f"median <= +{median_target:g}" + (f", worst <= +{worst_target:g}" if worst_target else "")
    return f"| {name} | {len(gaps)} | {med:+.2f} | {worst:+.2f} | {target} | {verdict(ok)} |"


def render(r, model_path):
    cfg, hyper, T = r["config"], r["hyper"], TARGETS
    quick = " --quick" if r["quick"] else ""
    lines = [
        SECTION, "",
        f"`.venv/bin/python benchmarks/model.py --model {model_path}{quick} --write` on {machine_line()}; "
        f"ran in {r['seconds']:.0f} s", "",
        f"Bundle: {cfg.representation} frames ({cfg.n_features} features), n_fft {cfg.n_fft}, hop {cfg.hop}, "
        f"{cfg.sample_rate} Hz; z = {hyper['z_dim']} + contour (f0, voicing) at {cfg.frame_rate:g} Hz; width "
        f"{hyper['width']}; beta {hyper['beta']}; {hyper['epochs']} VAE + {hyper['prior_epochs']} prior epochs.", "",
        "Gap: log-mel distance (128 bands, 80 dB floor, best gain) of the round trip to the true sound, minus that "
        "of the true magnitudes through plain LWS. All sounds are ones the model never trained on.", "",
        "### Round trip", "",
        "| set | items | median gap (dB) | worst gap (dB) | target | verdict |", "|---|---:|---:|---:|---|---|",
    ]
    files, cats = (r["sets"][k] for k in ("held-out files", "held-out categories"))
    lines.append(gap_row("recordings: held-out files", [g for _, g in files], T["recordings"], T["recordings_worst"]))
    lines.append(gap_row("recordings: held-out categories (tabla, lmms effects)", [g for _, g in cats],
                         T["recordings"], T["recordings_worst"]))
    lines.append(gap_row("recordings: together", [g for _, g in files + cats], T["recordings"], T["recordings_worst"]))
    if r["speech"] is None:
        lines.append("| speech (espeak-ng) | 0 | - | - | espeak-ng is not installed: skipped | - |")
    else:
        lines.append(gap_row("speech (espeak-ng: en, en+f3, de)", [g for _, g in r["speech"]], T["speech"]))
    lines.append(gap_row("held-out soundfont notes", [n[3] for n in r["notes"]], T["notes"]))
    if r["packs_missing"]:
        lines.append(f"\nSample packs not installed: {', '.join(r['packs_missing'])} (their sets are short or empty).")
    worst = sorted(files + cats + (r["speech"] or []), key=lambda item: -item[1])[:5]
    lines += ["", "Worst recordings and speech: " + "; ".join(f"{n} {g:+.1f} dB" for n, g in worst) + ".", ""]

    lines += ["### Held-out soundfont notes", "",
              "| note | model LSD (dB) | oracle LSD (dB) | gap (dB) | cents at -5 / 0 / +5 st | the instrument's own |",
              "|---|---:|---:|---:|---|---|"]
    for name, lsd, orc, gap, c, own in r["notes"]:
        cs, owns = (" / ".join(f"{v[d]:+.0f}" for d in (-5, 0, 5)) for v in (c, own))
        lines.append(f"| {name} | {lsd:.2f} | {orc:.2f} | {gap:+.2f} | {cs} | {owns} |")
    cents = r["cents"]
    within = sum(c <= T["cents"] for c in cents)
    med_c, worst_c = (statistics.median(cents), max(cents)) if cents else (float("nan"), float("nan"))
    lines += ["", "| measure | value | target | verdict |", "|---|---|---|---|",
              f"| pitch renders within 20 cents (in the octave the instrument's own note reads in) | {within} of "
              f"{len(cents)}; median {med_c:.0f}, worst {worst_c:.0f} cents | all | {verdict(within == len(cents) > 0)} |",
              f"| the same against the label's own octave | {sum(c <= T['cents'] for c in r['label_octave'])} of "
              f"{len(r['label_octave'])} | for scale | - |", ""]

    lines += ["### Pitch movement", "",
              "| note | median abs cents (frames voiced in both) | round trip gap (dB) | target | verdict |",
              "|---|---:|---:|---|---|"]
    for name, err, n, gap in r["moving"]:
        lines.append(f"| {name} | {err:.1f} ({n} frames) | {gap:+.2f} | <= {T['contour_cents']:g} cents | "
                     f"{verdict(np.isfinite(err) and err <= T['contour_cents'])} |")

    lines += ["", "### Levels", "", "| output | items | median peak (dBFS) | highest peak (dBFS) | target | verdict |",
              "|---|---:|---:|---:|---|---|"]
    for name, values in r["peaks"].items():
        med, top = stats(values)
        lines.append(f"| {name} | {len(values)} | {med:+.1f} | {top:+.1f} | <= +{T['peak_dbfs']:g} dBFS | "
                     f"{verdict(bool(values) and top <= T['peak_dbfs'])} |")
    lines += ["", "| round trip at -20 dBFS RMS in | items | median level error (dB) | worst (dB) | target | verdict |",
              "|---|---:|---:|---:|---|---|"]
    for name, values in r["levels"].items():
        med = statistics.median(values)
        worst_abs = max(values, key=abs)
        lines.append(f"| held-out {name} | {len(values)} | {med:+.2f} | {worst_abs:+.2f} | within {T['level_db']:g} dB | "
                     f"{verdict(abs(worst_abs) <= T['level_db'])} |")

    lines += ["", "### Speed and size", "", "| measure | value | target | verdict |", "|---|---|---|---|",
              f"| resynthesize a 4 s note (track, encode, decode, phase), median | {r['ms']:.0f} ms | <= {T['ms']:g} ms | "
              f"{verdict(r['ms'] <= T['ms'])} |",
              f"| bundle load (after TensorFlow's one-off import: {r['import_s']:.1f} s in a fresh process) | "
              f"{r['load_s']:.2f} s | for scale | - |",
              f"| bundle size on disk | {r['size_mb']:.1f} MB | <= {T['size_mb']:g} MB | {verdict(r['size_mb'] <= T['size_mb'])} |"]

    p = r["prior"]
    lines += ["", "### Prior", "",
              f"Unprimed walks (temperature 1) against the encoded latents of the sounding parts of {p['sounds']} held-out "
              f"sounds ({p['frames']} frames), one walk per sound at its label, as long as its sounding part.", "",
              "| columns | mean difference (encoded std), max | variance ratio, min..max | target | verdict |",
              "|---|---:|---:|---|---|"]
    for name, (mean_diff, var_ratio) in (("z", p["z"]), ("contour f0", tuple(v[:1] for v in p["contour"])),
                                         ("contour voicing", tuple(v[1:] for v in p["contour"]))):
        ok = mean_diff.max() <= T["mean_diff"] and abs(var_ratio.min() - 1) <= T["var_ratio"] and \
            abs(var_ratio.max() - 1) <= T["var_ratio"]
        lines.append(f"| {name} | {mean_diff.max():.2f} | {var_ratio.min():.2f}..{var_ratio.max():.2f} | mean <= "
                     f"{T['mean_diff']:g}, variance within {100 * T['var_ratio']:.0f}% | {verdict(ok)} |")
    mean_diff, var_ratio = p["training"]
    lines.append(f"| z of training sounds (not walks), for scale | {mean_diff.max():.2f} | {var_ratio.min():.2f}.."
                 f"{var_ratio.max():.2f} | for scale | - |")
    lines += ["", "| loop seeded with (4 s) | seam flux | median flux inside | level vs seed (dB) | peak (dBFS) | verdict |",
              "|---|---:|---:|---:|---:|---|"]
    for kind, seed, seam, inside, level, peak in r["loops"]:
        ok = seam <= inside and inside > T["frozen_flux"] and abs(level) <= T["loop_level_db"] and peak <= T["peak_dbfs"]
        lines.append(f"| {kind}: {seed} | {seam:.2f} | {inside:.2f} | {level:+.1f} | {peak:+.1f} | {verdict(ok)} |")
    lines.append("\nLoops: seam flux <= the median inside, median inside > 0.2 dB (not frozen), within 6 dB of the "
                 "seed's RMS, peak <= +6 dBFS.")

    memory = ", ".join(f"{k} {v}" for k, v in r["train_memory"].items()) if r["train_memory"] else "not recorded"
    minutes = r["train_s"] / 60
    lines += ["", "### Training", "", "| measure | value | target | verdict |", "|---|---|---|---|",
              f"| training from scratch, on {r['train_machine']} | {minutes:.1f} min | <= {T['train_min']:g} min | "
              f"{verdict(minutes <= T['train_min'])} |",
              f"| peak memory | {memory} | for scale | - |", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pretrained")
    parser.add_argument("--quick", action="store_true", help="a few items per set: a smoke run")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    r = run(args.model, quick=args.quick)
    publish(SECTION, render(r, args.model), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
