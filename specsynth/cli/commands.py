"""The subcommands: each checks its arguments and files, then calls the library.

Every check that needs no model runs before a model loads, so a mistake is reported at once.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .. import limits
from ..errors import SpecsynthError
from ..files import atomic_output, check_writable_dir, output_folder, refuse_existing, shipped


def _pitch_arg(value):
    """``--pitch``: "auto" or a label 0..128, checked before any model loads."""
    from ..pitch import check_pitch

    return value if value == "auto" else check_pitch(_int_arg(value, "--pitch"))


def _check_inputs(*paths):
    """Every audio input's header, before any model loads (a missing or unreadable file fails fast)."""
    from ..audio import check_input

    for path in paths:
        if path is not None:
            check_input(path)


def _int_arg(value, name):
    try:
        return int(value)
    except ValueError:
        raise SpecsynthError(f"{name} must be an integer, got {value!r}") from None


def parse_ranges(text, name, lo=0, hi=127):
    """'0-7,40,73' -> [0..7, 40, 73], checked against lo..hi."""
    values = []
    try:
        for part in str(text).split(","):
            a, _, b = part.strip().partition("-")
            values.extend(range(int(a), int(b or a) + 1))
    except ValueError:
        raise SpecsynthError(f"{name} must look like 0-7,40,73, got {text!r}") from None
    bad = [v for v in values if not lo <= v <= hi]
    if bad or not values:
        raise SpecsynthError(f"{name} must be within {lo}..{hi}, got {text!r}")
    return sorted(set(values))


def cmd_reconstruct(args):
    from tqdm import tqdm

    from .. import audio
    from ..reconstruct import output_paths, reconstruct_file

    limits.check_iters(args.iters, "--iters")
    limits.check_max_seconds(args.max_seconds, "--max-seconds")
    # Read every input and check every output before writing anything (not even the folder), so
    # one bad file leaves no partial output.
    for path in args.inputs:
        audio.load(path, max_seconds=args.max_seconds)
    outs = output_paths(args.inputs, args.outdir, overwrite=args.overwrite)
    with output_folder(args.outdir):
        bar = tqdm(list(zip(args.inputs, outs)), disable=len(outs) < 4, unit="file", file=sys.stderr)
        for src, dst in bar:
            r = reconstruct_file(src, dst, method=args.method, n_iter=args.iters, overwrite=args.overwrite,
                                 max_seconds=args.max_seconds, normalize=args.normalize)
            line = f"{r['output']}\tspectral convergence {r['spectral_convergence_db']:.1f} dB"
            (bar.write if not bar.disable else print)(line)
    return 0


def cmd_dataset(args):
    from tqdm import tqdm

    from .. import data, spectral

    config = spectral.MODEL_CONFIG.replace(representation=args.representation)
    refuse_existing(args.out, args.overwrite)
    check_writable_dir(Path(args.out).resolve().parent)
    # progress only on a terminal: piped stderr must hold nothing but an error's one line
    bar = lambda seq: tqdm(seq, unit="sound", file=sys.stderr, disable=None)  # noqa: E731
    if args.soundfont is not None:
        if args.folder:
            raise SpecsynthError("give either a folder or --soundfont, not both")
        sf2 = None if args.soundfont == "default" else args.soundfont
        if sf2 is not None and not os.path.isfile(sf2):
            raise SpecsynthError(f"{sf2}: no such soundfont file")
        items, summary = data.items_from_soundfont(
            config, programs=parse_ranges(args.programs, "--programs"), pitches=parse_ranges(args.pitches, "--pitches"),
            velocities=parse_ranges(args.velocities, "--velocities", 1, 127), soundfont=sf2, progress=bar)
    elif args.folder:
        items, summary = data.items_from_folder(args.folder, config, pitch=args.pitch,
                                                chunk_seconds=args.chunk_seconds, progress=bar)
    else:
        raise SpecsynthError("give a folder of audio, or --soundfont")
    # items is a one-pass generator: write_dataset analyses and stores them one at a time, and the
    # summary (skipped files) is complete once it has consumed them
    written = data.Dataset(data.write_dataset(args.out, items, config, summary, overwrite=args.overwrite))
    skipped = summary.get("skipped", 0)
    print(f"wrote {args.out}: {len(written.items)} sounds, {skipped} skipped")
    for reason in summary.get("skipped_reasons", [])[:10]:
        print(f"  skipped {reason}")
    return 0


def cmd_train(args):
    from ..model.train import TrainSettings, train

    settings = TrainSettings(seed=args.seed, strategy=args.strategy, epochs=args.epochs,
                             prior_epochs=args.prior_epochs, z_dim=args.z, beta=args.beta, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, width=args.width, prior_units=args.prior_units,
                             prior_sampled_inputs=args.prior_sampled_inputs)
    model = train(args.data, args.out, settings=settings, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps(model.metrics, indent=1))
    return 0


def _load_model(name):
    from .. import load

    return load(name)


def cmd_encode(args):
    import numpy as np

    from .. import audio

    out = Path(args.out)
    if out.suffix != ".npy":
        raise SpecsynthError(f"{out}: the output must be a .npy file")
    pitch = _pitch_arg(args.pitch)
    _check_inputs(args.input)
    _refuse_existing([out], args.overwrite)
    model = _load_model(args.model)
    samples, _ = audio.load(args.input, sample_rate=model.sample_rate)
    z = model.encode(samples, pitch=pitch)
    with atomic_output(out, overwrite=args.overwrite) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, z.astype(np.float32))
    from ..ops import contour_label

    print(f"{out}\t{z.shape[0]} frames x {model.z_dim} latents + f0 and voicing at {model.frame_rate:g} Hz, "
          f"pitch {contour_label(z)}")
    return 0


def cmd_decode(args):
    from .. import audio
    from ..ops import read_latents

    limits.check_iters(args.iters, "--iters")
    pitch = None if args.pitch is None else _pitch_arg(args.pitch)
    audio.check_output(args.out)
    _refuse_existing([args.out], args.overwrite)
    from ..model.bundle import check_bundle  # reads the bundle's frame rate without TensorFlow

    z = read_latents(args.input, frame_rate=check_bundle(args.model)["config"].frame_rate)
    model = _load_model(args.model)
    if z.shape[1] != model.latent_width:
        raise SpecsynthError(f"{args.input}: expected a [time, {model.latent_width}] array for this model "
                             f"({model.z_dim} latents, f0, voicing), got shape {z.shape}")
    y = model.synthesize(z, pitch=pitch, method=args.method, n_iter=args.iters)
    audio.write(args.out, audio.normalize_audio(y), model.sample_rate, overwrite=args.overwrite)
    print(f"{args.out}\t{len(y) / model.sample_rate:.2f} s")
    return 0


def _render_pitch_arg(args):
    return None if args.pitch is None else _pitch_arg(args.pitch)


def _refuse_existing(paths, overwrite):
    for path in paths:
        refuse_existing(path, overwrite)


def cmd_interpolate(args):
    from .. import audio, ops

    limits.check_iters(args.iters, "--iters")
    limits.check_steps(args.steps, "--steps")
    pitch = _render_pitch_arg(args)
    _check_inputs(args.a, args.b)
    outs = [Path(args.outdir) / f"{Path(args.a).stem}_to_{Path(args.b).stem}_{i:02d}.wav" for i in range(args.steps)]
    _refuse_existing(outs, args.overwrite)
    with output_folder(args.outdir):  # made now, removed again if it is still empty after a failure
        model = _load_model(args.model)
        a, b = ops.encode_sound(model, args.a), ops.encode_sound(model, args.b)
        series = ops.interpolate_series(model, a, b, args.steps, mode=args.mode, pitch=pitch,
                                        method=args.method, n_iter=args.iters)
        for path, r in zip(outs, series):
            audio.write(path, audio.normalize_audio(r.samples), r.sample_rate, overwrite=args.overwrite)
            print(f"{path}\talpha {r.params['alpha']:.2f}\tpitch {r.pitch}")
    return 0


def cmd_mix(args):
    from .. import audio, ops

    limits.check_iters(args.iters, "--iters")
    if len(args.corners) != 4:
        raise SpecsynthError(f"mix needs 4 corner sounds, (0,0) (1,0) (0,1) (1,1); got {len(args.corners)}")
    try:
        x, y = (float(v) for v in args.xy.split(","))
    except ValueError:
        raise SpecsynthError(f"--xy must look like 0.25,0.7, got {args.xy!r}") from None
    ops.xy_weights(x, y)  # validates the range before the model loads
    pitch = _render_pitch_arg(args)
    _check_inputs(*args.corners)
    audio.check_output(args.out)
    _refuse_existing([args.out], args.overwrite)
    model = _load_model(args.model)
    r = ops.mix_xy(model, args.corners, x, y, mode=args.mode, pitch=pitch, method=args.method,
                   n_iter=args.iters)
    audio.write(args.out, audio.normalize_audio(r.samples), r.sample_rate, overwrite=args.overwrite)
    w = ", ".join(f"{v:.2f}" for v in r.params["weights"])
    print(f"{args.out}\tweights {w}\tpitch {r.pitch}")
    return 0


def cmd_loop(args):
    from .. import audio, ops

    limits.check_iters(args.iters, "--iters")
    limits.check_loop_seconds(args.seconds, "--seconds")
    limits.check_temperature(args.temperature, "--temperature")
    limits.check_seed(args.seed, "--seed")
    pitch = _render_pitch_arg(args)
    _check_inputs(args.seed_sound)
    audio.check_output(args.out)
    _refuse_existing([args.out], args.overwrite)
    model = _load_model(args.model)
    r = ops.loop(model, args.seed_sound, seconds=args.seconds, temperature=args.temperature, seed=args.seed,
                 pitch=pitch, method=args.method, n_iter=args.iters)
    audio.write(args.out, audio.normalize_audio(r.samples), r.sample_rate, overwrite=args.overwrite)
    print(f"{args.out}\t{r.seconds:.2f} s\tseam flux {r.metrics['seam_flux']:.2f} "
          f"(median inside {r.metrics['median_flux']:.2f}; at the blend point {r.metrics['blend_flux']:.2f})")
    return 0


def cmd_render(args):
    from ..render import run_manifest

    return run_manifest(args.manifest, outdir=args.outdir, workers=args.workers, dry_run=args.dry_run,
                        overwrite=args.overwrite, model_override=args.model, executor=args.executor,
                        ray_address=args.ray_address, wait=args.wait)


def cmd_app(args):
    import signal
    import subprocess

    from ..ui import MAX_UPLOAD_MB

    app = shipped("apps/specsynth_app.py")
    if not app.exists():
        raise SpecsynthError(f"{app}: the app is not installed with this copy of specsynth")
    env = dict(os.environ)
    if args.model is not None:
        if not Path(args.model).is_dir():
            raise SpecsynthError(f"{args.model}: no such folder (a model bundle, or a folder of bundles)")
        env["SPECSYNTH_MODEL"] = str(Path(args.model).resolve())
    # the server refuses uploads over the app's own limit before reading them (Streamlit's default is 200 MB)
    child = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
                              "--server.headless", "true", "--browser.gatherUsageStats", "false",
                              "--server.maxUploadSize", str(MAX_UPLOAD_MB)], env=env)

    def pass_on(signum, frame):  # stopping `specsynth app` stops the server it started
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, pass_on)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # the terminal's Ctrl-C reached the server too; wait for it to stop
            continue


def cmd_info(args):
    from ..audio import file_info, load, measure
    from ..pitch import UNPITCHED, estimate_pitch, midi_to_hz

    info = file_info(args.file)
    samples, rate = load(args.file, normalize=None)
    info.update(measure(samples, rate))
    label = estimate_pitch(samples, rate)
    info["pitch"] = "unpitched" if label == UNPITCHED else f"{label} (MIDI, {float(midi_to_hz(label)):.1f} Hz)"
    for key, value in info.items():
        shown = "-" if value is None else f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:14s} {shown}")
    return 0
