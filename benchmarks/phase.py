"""Phase-reconstruction benchmark: quality and speed of every method, against librosa and lws.

    .venv/bin/python benchmarks/phase.py [--notes N] [--repeats R] [--write]

Renders 4 s soundfont notes at 16 kHz (a fixed list spread over the General MIDI families),
and measures, in one run:

* each specsynth phase method (griffinlim, fgla, lws, lws+fgla and the default ``reconstruct``
  call): median spectral convergence (SC, dB, against our own magnitudes in our convention)
  and median real-time factor (audio seconds / reconstruction seconds);
* the peers, each in the convention it analysed in: ``librosa.griffinlim`` on
  ``|librosa.stft(x)|``, SC of ``librosa.stft`` of its output; ``lws`` exactly as its README uses
  it (``lws.lws(1024, 256, mode="music")``, ``stft``, ``run_lws``, ``istft``), SC of ``proc.stft``
  of its output;
* the mel inverse: ``spectral.mel_to_linear`` (several ``n_iter``) against
  ``librosa.feature.inverse.mel_to_stft``, on mel band power (the library's mel convention, as
  ``spectral.frames_to_magnitude`` uses it; librosa with ``power=2.0``) and on mel magnitudes
  ``mag @ mel_basis.T`` (librosa with ``power=1.0``): time, SC of the recovered linear
  magnitude, and end-to-end SC after the default phase reconstruction.

SC is ``20 log10(||A - B||_F / ||B||_F)`` with B the magnitudes analysed from the note (lower is
better). Only the reconstruction is timed (not analysis, not the SC), each method is warmed up
once on the first note (numba JIT / cache loading, lws processor construction), and the
repeats are interleaved across methods so background load hits them alike. Times are
per-note medians over the repeats (calls over SLOW_CALL seconds are timed once per note); the
tables show medians over notes.

``--write`` replaces the ``## Phase reconstruction`` section of benchmarks/RESULTS.md and keeps
every other section.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np
from _common import ROOT, RESULTS, cpu_name, load_average, write_section

from specsynth import audio, metrics, phase, soundfont, spectral

SECTION = "## Phase reconstruction"
SAMPLE_RATE = 16000
SECONDS, HOLD = 4.0, 3.0
N_FFT, HOP = 1024, 256
SILENT_PEAK = 1e-4  # raw soundfont output below this is treated as "not covered"

# (GM family, program, MIDI pitch): each pitch inside the instrument's usual range, 36..84.
# Ordered round-robin over the 12 families, so any prefix of the list is spread over families
# (the first 12 notes are one per family, the default 24 are two per family).
NOTES = (
    ("piano", 0, 60), ("chromatic perc", 11, 65), ("organ", 16, 48), ("guitar", 24, 52),
    ("bass", 33, 40), ("strings", 42, 48), ("ensemble", 48, 60), ("brass", 56, 70),
    ("reed", 65, 61), ("pipe", 73, 79), ("synth lead", 81, 57), ("synth pad", 89, 60),
    ("piano", 4, 72), ("chromatic perc", 12, 76), ("organ", 19, 55), ("guitar", 27, 64),
    ("bass", 38, 36), ("strings", 40, 76), ("ensemble", 52, 67), ("brass", 57, 50),
    ("reed", 71, 58), ("pipe", 75, 70), ("synth lead", 80, 64), ("synth pad", 88, 53),
    ("piano", 1, 43), ("chromatic perc", 9, 84), ("organ", 21, 67), ("guitar", 29, 45),
    ("bass", 32, 38), ("strings", 45, 55), ("ensemble", 50, 72), ("brass", 60, 58),
    ("reed", 68, 74), ("pipe", 72, 81), ("synth lead", 84, 62), ("synth pad", 91, 57),
)
DEFAULT_NOTES = 24
DEFAULT_REPEATS = 3
MEL_ITERS = (0, 4, 16, 64)
# Calls slower than this are timed once per note: their relative noise is small, the median over
# notes still smooths them, and repeating them would push the default run past ~4 minutes.
SLOW_CALL = 0.3  # seconds


# ---------------------------------------------------------------------------------------------
# Notes


def render_notes(count):
    """The first ``count`` non-silent notes of NOTES, peak-normalized: list of (label, samples)."""
    if not 1 <= count <= len(NOTES):
        raise SystemExit(f"--notes must be 1..{len(NOTES)}, got {count}")
    out, skipped = [], []
    for family, program, pitch in NOTES:
        if len(out) == count:
            break
        raw = soundfont.render_note(program, pitch, seconds=SECONDS, hold=HOLD, sample_rate=SAMPLE_RATE)
        label = f"{family}: {soundfont.note_name(program, pitch)}"
        if float(np.max(np.abs(raw))) < SILENT_PEAK:
            skipped.append(label)
            continue
        out.append((label, audio.normalize_audio(raw, mode="peak")))
    for label in skipped:
        print(f"skipped silent note {label}", file=sys.stderr)
    if len(out) < count:
        print(f"only {len(out)} of {count} notes are audible", file=sys.stderr)
    return out


# ---------------------------------------------------------------------------------------------
# Spectral convergence in each peer's own convention


def _sc(got, target):
    t = min(got.shape[0], target.shape[0])
    got, target = got[:t].astype(np.float64), target[:t].astype(np.float64)
    return float(20 * np.log10(max(np.linalg.norm(got - target), 1e-12) / np.linalg.norm(target)))


def _librosa_mag(x):
    import librosa

    return np.abs(librosa.stft(x, n_fft=N_FFT, hop_length=HOP))  # [bins, time], centred Hann


# ---------------------------------------------------------------------------------------------
# The contenders. Each is (name, convention, iterations, prepare, run, score):
#   prepare(x) -> state (analysis; untimed), run(state) -> samples (timed), score(state, y) -> SC dB.


def our_methods(config):
    default_label = f"{phase.DEFAULT_METHOD} {phase.DEFAULT_ITERS[phase.DEFAULT_METHOD]}"
    spec = [("griffinlim", 32), ("fgla", 32), ("fgla", 100), ("lws", 100),
            ("lws+fgla", 8), ("lws+fgla", 32), ("lws+fgla", 100)]

    def prepare(x):
        return x, spectral.magnitude(x, config)

    def score(state, y):
        return metrics.spectral_convergence(state[1], y, config)

    rows = []
    for method, n_iter in spec:
        if f"{method} {n_iter}" == default_label:
            continue  # measured as the default call below
        def run(state, method=method, n_iter=n_iter):
            return phase.reconstruct(state[1], config=config, method=method, n_iter=n_iter, length=len(state[0]))
        label = f"specsynth {method}" + (" (batch iters)" if method == "lws" else "")
        rows.append(dict(name=label, conv="specsynth", iters=n_iter, prepare=prepare, run=run, score=score))

    def run_default(state):
        return phase.reconstruct(state[1], config=config, length=len(state[0]))

    m, it = phase.DEFAULT_METHOD, phase.DEFAULT_ITERS[phase.DEFAULT_METHOD]
    rows.append(dict(name=f"specsynth {m} (default)", conv="specsynth", iters=it, prepare=prepare,
                     run=run_default, score=score, default=True))
    order = {"griffinlim": 0, "fgla": 1, "lws": 2, "lws+fgla": 3}
    rows.sort(key=lambda r: (order.get(r["name"].split()[1], 9), r["iters"]))
    return rows


def peer_methods():
    import librosa
    import lws

    rows = []
    for n_iter in (32, 100):
        def prepare(x):
            return x, _librosa_mag(x)

        def run(state, n_iter=n_iter):
            x, s = state
            return librosa.griffinlim(s, n_iter=n_iter, hop_length=HOP, n_fft=N_FFT, length=len(x), random_state=0)

        def score(state, y):
            return _sc(_librosa_mag(y).T, state[1].T)

        rows.append(dict(name="librosa.griffinlim", conv="librosa", iters=n_iter, prepare=prepare, run=run,
                         score=score, peer="librosa"))

    proc = lws.lws(N_FFT, HOP, mode="music")  # exactly as lws's README (built once, untimed)

    def lws_prepare(x):
        return x, np.abs(proc.stft(x))

    def lws_run(state):
        return proc.istft(proc.run_lws(state[1]))[: len(state[0])]

    def lws_score(state, y):
        return _sc(np.abs(proc.stft(y)), state[1])

    rows.append(dict(name='lws (mode="music")', conv="lws", iters=100, prepare=lws_prepare, run=lws_run,
                     score=lws_score, peer="lws"))
    return rows


def mel_methods(mel_config):
    """Mel inverse contenders. Each row's ``invert(mel [time, n_mels]) -> linear magnitude
    [time, bins]`` takes the mel input of its ``domain``: "power" (``|S|^2 @ basis.T``, the
    library's convention) or "magnitude" (``|S| @ basis.T``)."""
    import librosa

    rows = []
    for n_iter in MEL_ITERS:
        rows.append(dict(name="specsynth mel_to_linear", domain="power", iters=n_iter,
                         invert=lambda m, n=n_iter: np.sqrt(spectral.mel_to_linear(m, mel_config, n_iter=n))))
    rows.append(dict(name="librosa mel_to_stft, power=2.0", domain="power", iters=None,
                     invert=lambda m: librosa.feature.inverse.mel_to_stft(m.T, sr=SAMPLE_RATE, n_fft=N_FFT, power=2.0).T))
    rows.append(dict(name="specsynth mel_to_linear", domain="magnitude", iters=_mel_default_iters(),
                     invert=lambda m: spectral.mel_to_linear(m, mel_config)))
    rows.append(dict(name="librosa mel_to_stft, power=1.0", domain="magnitude", iters=None,
                     invert=lambda m: librosa.feature.inverse.mel_to_stft(m.T, sr=SAMPLE_RATE, n_fft=N_FFT, power=1.0).T))
    return rows


# ---------------------------------------------------------------------------------------------
# Measuring


def _mel_input(mag, basis_t, domain):
    return ((mag * mag if domain == "power" else mag) @ basis_t).astype(np.float32)


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def measure(notes, repeats):
    config = spectral.SpectralConfig(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop=HOP)
    mel_config = config.replace(representation="mel")
    basis_t = spectral.mel_basis(mel_config).T
    phase_rows = our_methods(config) + peer_methods()
    mel_rows = mel_methods(mel_config)
    for row in phase_rows + mel_rows:
        row["sc"], row["times"] = [], []
    for row in mel_rows:
        row["e2e"], row["moved"] = [], []
    pinv_t = np.linalg.pinv(spectral.mel_basis(mel_config).astype(np.float64)).T.astype(np.float32)

    # warm up once on the first note: numba JIT / cache loading, lws processors, librosa imports
    x0 = notes[0][1]
    for row in phase_rows:
        row["run"](row["prepare"](x0))
    mag0 = spectral.magnitude(x0, config)
    for row in mel_rows:
        row["invert"](_mel_input(mag0, basis_t, row["domain"]))

    for i, (label, x) in enumerate(notes):
        states = [row["prepare"](x) for row in phase_rows]
        mag = spectral.magnitude(x, config)
        mels = {d: _mel_input(mag, basis_t, d) for d in ("power", "magnitude")}
        per_note = {id(row): [] for row in phase_rows + mel_rows}
        for r in range(repeats):
            # interleaved: every method once per repeat, so load changes hit all of them
            for row, state in zip(phase_rows, states):
                if r and per_note[id(row)][0] > SLOW_CALL:
                    continue
                dt, y = _timed(row["run"], state)
                per_note[id(row)].append(dt)
                if r == 0:
                    row["sc"].append(row["score"](state, y))
            for row in mel_rows:
                if r and per_note[id(row)][0] > SLOW_CALL:
                    continue
                mel = mels[row["domain"]]
                dt, lin = _timed(row["invert"], mel)
                per_note[id(row)].append(dt)
                if r == 0:
                    row["sc"].append(_sc(lin, mag))
                    y = phase.reconstruct(lin, config=config, length=len(x))
                    row["e2e"].append(metrics.spectral_convergence(mag, y, config))
                    if row["iters"] is None:  # how far librosa's L-BFGS moved from its own start
                        start = np.maximum(mel @ pinv_t, 0)
                        sol = lin * lin if row["domain"] == "power" else lin
                        row["moved"].append(float(np.linalg.norm(sol - start) / max(np.linalg.norm(start), 1e-12)))
        for row in phase_rows + mel_rows:
            row["times"].append(statistics.median(per_note[id(row)]))
        default = next(r for r in phase_rows if r.get("default"))
        peer = next(r for r in phase_rows if r.get("peer") == "lws")
        print(f"[{i + 1:2d}/{len(notes)}] {label:58s} default {default['sc'][-1]:7.2f} dB   "
              f"lws peer {peer['sc'][-1]:7.2f} dB", file=sys.stderr)
    return phase_rows, mel_rows


# ---------------------------------------------------------------------------------------------
# Reporting


def _summary(row):
    t = statistics.median(row["times"])
    return dict(sc=statistics.median(row["sc"]), worst=max(row["sc"]), ms=1000 * t, rtf=SECONDS / t)


def phase_table(rows):
    lines = [
        "| method | iterations | SC convention | median SC (dB) | worst SC (dB) | median ms / note | median RTF (x real time) |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = _summary(row)
        name = f"**{row['name']}**" if row.get("default") else row["name"]
        lines.append(f"| {name} | {row['iters']} | {row['conv']} | {s['sc']:.2f} | {s['worst']:.2f} | "
                     f"{s['ms']:.1f} | {s['rtf']:.1f} |")
    return "\n".join(lines)


def mel_table(rows):
    lines = [
        "| mel inverse | mel input | n_iter | median ms / note | median RTF (x real time) | "
        "linear-magnitude SC (dB) | end-to-end SC after default phase (dB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    default_iters = _mel_default_iters()
    for row in rows:
        s = _summary(row)
        if row["iters"] is None:
            iters = "L-BFGS"
        else:
            iters = f"{row['iters']}" + (" (default)" if row["iters"] == default_iters else "")
        lines.append(f"| {row['name']} | {row['domain']} | {iters} | {s['ms']:.1f} | {s['rtf']:.0f} | "
                     f"{s['sc']:.2f} | {statistics.median(row['e2e']):.2f} |")
    return "\n".join(lines)


def _mel_default_iters():
    import inspect

    return inspect.signature(spectral.mel_to_linear).parameters["n_iter"].default


def paired_speedup(fast, slow):
    """Median over notes of slow time / fast time on the same note (the two were timed
    interleaved, so this is less sensitive to background load than a ratio of medians)."""
    return statistics.median(s / f for f, s in zip(fast["times"], slow["times"]))


def targets(phase_rows):
    """[(passed, text)] for the three phase targets."""
    by = {(r["name"], r["iters"]): _summary(r) for r in phase_rows}
    default = next(r for r in phase_rows if r.get("default"))
    d = _summary(default)
    lws_row = next(r for r in phase_rows if r.get("peer") == "lws")
    lws_peer = _summary(lws_row)
    out = []

    speed = paired_speedup(default, lws_row)
    ok = d["sc"] <= lws_peer["sc"] + 1 and speed >= 3
    out.append((ok, f"(a) default ({default['name'].split()[1]} {default['iters']}) reaches lws's quality within 1 dB "
                    f"in at most a third of lws's time: SC {d['sc']:.2f} dB vs lws {lws_peer['sc']:.2f} dB "
                    f"(limit {lws_peer['sc'] + 1:.2f}); {speed:.2f}x faster than lws (need >= 3; median times "
                    f"{d['ms']:.1f} vs {lws_peer['ms']:.1f} ms / note)"))

    ours = [r for r in phase_rows if r["conv"] == "specsynth"]
    best = min(ours, key=lambda r: _summary(r)["sc"])
    b = _summary(best)
    out.append((b["sc"] <= -40, f"(b) the best method reaches <= -40 dB: {best['name']} {best['iters']} at "
                                f"{b['sc']:.2f} dB ({b['ms']:.1f} ms / note)"))

    f32 = by[("specsynth fgla", 32)]
    l32 = by[("librosa.griffinlim", 32)]
    speedup = paired_speedup(*(next(r for r in phase_rows if (r["name"], r["iters"]) == key)
                               for key in [("specsynth fgla", 32), ("librosa.griffinlim", 32)]))
    ok = speedup >= 3 and f32["sc"] <= l32["sc"]
    out.append((ok, f"(c) fgla 32 is >= 3x faster than librosa.griffinlim 32 with equal or better SC: "
                    f"{speedup:.2f}x ({f32['ms']:.1f} vs {l32['ms']:.1f} ms / note); SC {f32['sc']:.2f} dB vs "
                    f"{l32['sc']:.2f} dB"))
    return out


def mel_remark(mel_rows):
    default_iters = _mel_default_iters()
    lines = []
    for domain in ("power", "magnitude"):
        rows = [r for r in mel_rows if r["domain"] == domain]
        lib = next(r for r in rows if r["iters"] is None)
        ls = _summary(lib)
        dflt = next((r for r in rows if r["iters"] == default_iters), None)
        if dflt is not None:
            s = _summary(dflt)
            verdict = ("better than" if s["sc"] < ls["sc"] - 0.1 else
                       "worse than" if s["sc"] > ls["sc"] + 0.1 else "level with")
            lines.append(
                f"- Mel {domain}: default `mel_to_linear` (n_iter={default_iters}) is {verdict} librosa's NNLS "
                f"({s['sc']:.2f} vs {ls['sc']:.2f} dB linear, {statistics.median(dflt['e2e']):.2f} vs "
                f"{statistics.median(lib['e2e']):.2f} dB end-to-end) and {ls['ms'] / s['ms']:.0f}x faster "
                f"({s['ms']:.1f} vs {ls['ms']:.1f} ms / note).")
        stuck = sum(m < 1e-3 for m in lib["moved"])
        lines.append(
            f"- Mel {domain}: librosa's L-BFGS-B returned its own start, the clipped pseudo-inverse "
            f"max(M^+ y, 0), unchanged (relative change < 1e-3) on {stuck} of {len(lib['moved'])} notes; its "
            f"objective is scaled by 1/size, so at these magnitudes the projected gradient is often already "
            f"below scipy's pgtol=1e-5 at the start; where it stops there it is no better than the clipped "
            f"pseudo-inverse (`mel_to_linear` n_iter=0 is that start plus a tiny spread).")
        sweep = [r for r in rows if r["iters"] is not None]
        if len(sweep) > 1:
            best = min(sweep, key=lambda r: statistics.median(r["e2e"]))
            best_e2e = statistics.median(best["e2e"])
            enough = min((r for r in sweep if statistics.median(r["e2e"]) <= best_e2e + 0.25), key=lambda r: r["iters"])
            lines.append(
                f"- Mel {domain}, n_iter trade-off: best end-to-end SC in the sweep is n_iter={best['iters']} "
                f"({best_e2e:.2f} dB, {_summary(best)['ms']:.1f} ms / note); the fewest iterations within 0.25 dB "
                f"of it is n_iter={enough['iters']} ({statistics.median(enough['e2e']):.2f} dB, "
                f"{_summary(enough)['ms']:.1f} ms / note); the default is {default_iters}.")
    return "\n".join(lines)


def machine_info():
    import librosa
    import lws
    import numba
    import scipy

    return {
        "CPU": f"{cpu_name()}, {os.cpu_count()} cores",
        "load": load_average(),
        "Python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
        "librosa": librosa.__version__, "lws": getattr(lws, "__version__", "unknown"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_section(info, notes, repeats, phase_rows, mel_rows, elapsed, command):
    tgt = targets(phase_rows)
    families = sorted({label.split(":")[0] for label, _ in notes})
    lines = [
        SECTION,
        "",
        f"`{command}` ({len(notes)} notes, {repeats} timing repeats, whole run {elapsed:.0f} s)",
        "",
        f"- Machine: {info['CPU']}; load average (1/5/15 min) {info['load']} at the start, {load_average()} at the "
        "end (the machine is shared: under load every time goes up, BLAS-bound ones most)",
        f"- Python {info['Python']}, numpy {info['numpy']}, scipy {info['scipy']}, numba {info['numba']}, "
        f"librosa {info['librosa']}, lws {info['lws']}",
        f"- Date: {info['date']}",
        f"- Audio: {len(notes)} General MIDI soundfont notes (TimGM6mb, {len(families)} families: "
        f"{', '.join(families)}), {SECONDS:g} s each ({HOLD:g} s held), {SAMPLE_RATE} Hz, peak-normalized; "
        f"n_fft {N_FFT}, hop {HOP}.",
        "- SC = 20 log10(||A - B||_F / ||B||_F), B the magnitudes the method was given, A the magnitudes "
        "of its output, each in the convention it analysed in: specsynth (lws framing, `hann` window), "
        "librosa (centred periodic Hann), lws (its sqrt-Hann). Lower is better. RTF = audio seconds / "
        "reconstruction seconds (median over notes of each note's median over repeats, calls over "
        f"{SLOW_CALL:g} s timed once per note; analysis not timed). "
        "Speed-ups in the targets are medians over notes of the per-note time ratio.",
        "- specsynth's STFTs use `scipy.fft` with `workers=-1` (all cores); librosa's use numpy's "
        "single-threaded FFT. librosa.griffinlim is itself a fast Griffin-Lim (momentum 0.99, random "
        "start, seed 0).",
        "",
        phase_table(phase_rows),
        "",
        "### Mel inverse",
        "",
        "Same notes; `SpectralConfig(representation=\"mel\")` (128 Slaney mel bands). Mel input "
        "*power* is `mag**2 @ spectral.mel_basis(cfg).T`, the library's mel convention (what "
        "`spectral.frames_to_magnitude` inverts; ours takes the square root of `mel_to_linear`'s output, "
        "librosa runs with `power=2.0`); mel *magnitude* is `mag @ spectral.mel_basis(cfg).T` (librosa "
        "`power=1.0`). Linear SC compares the recovered linear magnitude with the true one; end-to-end SC "
        "runs the default phase reconstruction on it and compares the result's magnitude with the true one.",
        "",
        mel_table(mel_rows),
        "",
        mel_remark(mel_rows),
        "",
        "### Targets",
        "",
    ]
    for ok, text in tgt:
        lines.append(f"- **{'PASS' if ok else 'FAIL'}** {text}")
    lines.append("")
    return "\n".join(lines), tgt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=DEFAULT_NOTES, help=f"notes to render (1..{len(NOTES)}, default {DEFAULT_NOTES})")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help=f"timing repeats per note (default {DEFAULT_REPEATS})")
    parser.add_argument("--write", action="store_true", help="write the results into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    t0 = time.perf_counter()
    info = machine_info()
    notes = render_notes(args.notes)
    phase_rows, mel_rows = measure(notes, args.repeats)
    elapsed = time.perf_counter() - t0
    command = ".venv/bin/python benchmarks/phase.py" + " ".join([""] + list(sys.argv[1:] if argv is None else argv))
    section, tgt = render_section(info, notes, args.repeats, phase_rows, mel_rows, elapsed, command)
    print(section)
    if args.write:
        write_section(SECTION, section)
        print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    print(f"total runtime {elapsed:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
