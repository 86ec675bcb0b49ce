"""The ``specsynth`` command: thin argument parsing over the library.

User errors print one line to stderr and exit with code 2. TensorFlow is imported only by the
subcommands that touch a model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__, limits
from .errors import SpecsynthError, from_os_error
from .files import atomic_output, check_writable_dir, output_folder, refuse_existing, shipped

PHASE_METHODS = ("griffinlim", "fgla", "lws", "lws+fgla")


class _Formatter(argparse.HelpFormatter):
    """Help that states every option's default (unless its text already does)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False or action.default == argparse.SUPPRESS \
                or not action.option_strings:
            return text
        return f"{text} (default: {action.default})".strip()


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, exit 2, like every other user error
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _add_phase_args(p):
    p.add_argument("--method", choices=PHASE_METHODS, default="lws+fgla",
                   help="phase reconstruction (default: lws+fgla)")
    p.add_argument("--iters", type=int, default=None, metavar="N",
                   help="iterations of the method (default: the method's own)")


def build_parser():
    parser = _Parser(prog="specsynth", description="Spectrogram latent-space sound design.")
    parser.add_argument("--version", action="version", version=f"specsynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("reconstruct", help="analyse files, drop the phase, reconstruct it, write WAVs")
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files")
    p.add_argument("-o", "--outdir", required=True, help="folder for OUTDIR/<name>.wav")
    _add_phase_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--max-seconds", type=float, default=limits.MAX_INPUT_SECONDS,
                   help=f"refuse longer inputs (default {limits.MAX_INPUT_SECONDS:g})")
    p.add_argument("--normalize", choices=("peak", "loudness"), default=None,
                   help="normalize the output (default: keep the input's level)")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("info", help="describe an audio file")
    p.add_argument("file")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("dataset", help="make a training set from a folder of audio or from soundfont notes")
    p.add_argument("folder", nargs="?", help="folder of audio (recursive); omit with --soundfont")
    p.add_argument("-o", "--out", required=True, help="dataset folder to write")
    p.add_argument("--soundfont", nargs="?", const="default", default=None,
                   help="render General MIDI notes (default: the soundfont pretty_midi ships)")
    p.add_argument("--programs", default="0-127", help="GM programs, e.g. 0-7,40,73 (default 0-127)")
    p.add_argument("--pitches", default="36-84", help="MIDI pitches (default 36-84)")
    p.add_argument("--velocities", default="100", help="velocities (default 100)")
    p.add_argument("--pitch", choices=("auto", "name", "none"), default="auto",
                   help="folder labels: auto (the note in an NSynth-style name, cello_60.wav, else "
                        "estimated with pyin), name (names only, else unpitched) or none")
    p.add_argument("--representation", choices=("stft", "mel"), default="stft",
                   help="frames as dB STFT bins or mel bands")
    p.add_argument("--chunk-seconds", type=float, default=4.0, help="long files are cut into chunks this long")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("train", help="train a model bundle (VAE, then the LSTM prior) on a dataset")
    p.add_argument("data", help="a dataset folder from `specsynth dataset`")
    p.add_argument("--out", required=True, help="bundle folder to write")
    from .model.train import TrainSettings  # the defaults, stated in the help (no TensorFlow imported)

    d = TrainSettings()
    p.add_argument("--epochs", type=int, default=d.epochs, help="VAE epochs")
    p.add_argument("--prior-epochs", type=int, default=d.prior_epochs, help="prior epochs (0: no prior training)")
    p.add_argument("--z", type=int, default=d.z_dim, help="latent size")
    p.add_argument("--beta", type=float, default=d.beta, help="weight of the VAE's KL term")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="segments per batch")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam's learning rate")
    p.add_argument("--width", type=int, default=d.width, help="convolution channels")
    p.add_argument("--prior-units", type=int, default=d.prior_units, help="LSTM units of the prior")
    p.add_argument("--prior-sampled-inputs", type=float, default=d.prior_sampled_inputs,
                   help="share of the prior's input history replaced by its own samples in training")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (the same seed repeats a run)")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    p.add_argument("--strategy", choices=("mirrored",), default=None,
                   help="tf.distribute.MirroredStrategy over the GPUs (or logical CPUs)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("encode", help="audio -> latent sequence [time, z] as .npy")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--out", required=True, help="Z.npy")
    _add_model_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="latent sequence .npy -> audio")
    p.add_argument("input", metavar="Z.npy")
    p.add_argument("-o", "--out", required=True, help="OUT.wav")
    p.add_argument("--model", default="pretrained", help="bundle folder (default: pretrained/)")
    p.add_argument("--pitch", required=True, help="MIDI note 0-127 to decode at, 128 for unpitched")
    _add_phase_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("interpolate", help="a series of sounds from A to B through the latent space")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--steps", type=int, default=5, help="sounds in the series, A and B included (default 5)")
    p.add_argument("--mode", choices=("linear", "slerp"), default="linear", help="how latents are blended")
    p.add_argument("-o", "--outdir", required=True)
    _add_render_args(p)
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("mix", help="four corner sounds mixed at an XY position, like NSynth Super")
    p.add_argument("corners", nargs="+", metavar="C", help="4 corner sounds: (0,0) (1,0) (0,1) (1,1)")
    p.add_argument("--xy", required=True, help="position as X,Y in 0..1, e.g. 0.25,0.7")
    p.add_argument("--mode", choices=("linear", "slerp"), default="linear", help="how latents are blended")
    p.add_argument("-o", "--out", required=True, help="OUT.wav")
    _add_render_args(p)
    p.set_defaults(func=cmd_mix)

    p = sub.add_parser("loop", help="a seamless texture loop grown by the LSTM prior")
    p.add_argument("seed_sound", nargs="?", metavar="SEED", help="a sound to continue (optional)")
    p.add_argument("--seconds", type=float, default=8.0, help="loop length")
    p.add_argument("--temperature", type=float, default=0.8, help="prior sampling temperature (0: most likely path)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("-o", "--out", required=True, help="OUT.wav")
    _add_render_args(p)
    p.set_defaults(func=cmd_loop)

    p = sub.add_parser("render", help="batch-render the jobs of a TOML manifest")
    p.add_argument("manifest", metavar="MANIFEST.toml")
    p.add_argument("-o", "--outdir", default=None, help="output folder (default: out/ beside the manifest)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="validate and list what would be rendered")
    p.add_argument("--model", default=None, help="use this bundle for every job (overrides the manifest)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--wait", action="store_true", help="wait for another render writing into OUTDIR (default: refuse)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("app", help="start the Streamlit app")
    p.add_argument("--port", type=int, default=8501, help="the server's port")
    p.set_defaults(func=cmd_app)
    return parser


def _add_render_args(p):
    p.add_argument("--model", default="pretrained", help="bundle folder (default: pretrained/)")
    p.add_argument("--pitch", default=None, help="render at this MIDI note, 128 for unpitched (default: from the "
                   "sounds; a loop with no seed sound: the model's Model.walk_pitch)")
    _add_phase_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _add_model_args(p):
    p.add_argument("--model", default="pretrained", help="bundle folder (default: pretrained/)")
    p.add_argument("--pitch", default="auto",
                   help="MIDI note 0-127, 128 for unpitched, or auto (estimated with pyin; the default)")


def _pitch_arg(value):
    return value if value == "auto" else _int_arg(value, "--pitch")


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

    from . import audio
    from .reconstruct import output_paths, reconstruct_file

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

    from . import data, spectral


    config = spectral.SpectralConfig(representation=args.representation)
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
    data.write_dataset(args.out, items, config, summary, overwrite=args.overwrite)
    skipped = summary.get("skipped", 0)
    print(f"wrote {args.out}: {len(items)} sounds, {skipped} skipped")
    for reason in summary.get("skipped_reasons", [])[:10]:
        print(f"  skipped {reason}")
    return 0


def cmd_train(args):
    from .model.train import TrainSettings, train

    settings = TrainSettings(seed=args.seed, strategy=args.strategy, epochs=args.epochs,
                             prior_epochs=args.prior_epochs, z_dim=args.z, beta=args.beta, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, width=args.width, prior_units=args.prior_units,
                             prior_sampled_inputs=args.prior_sampled_inputs)
    model = train(args.data, args.out, settings=settings, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps(model.metrics, indent=1))
    return 0


def _load_model(name):
    from . import load

    return load(name)


def cmd_encode(args):
    import numpy as np

    from . import audio

    out = Path(args.out)
    if out.suffix != ".npy":
        raise SpecsynthError(f"{out}: the output must be a .npy file")
    pitch = _pitch_arg(args.pitch)
    refuse_existing(out, args.overwrite)
    audio.check_input(args.input)  # a bad input or output is refused before the model loads
    model = _load_model(args.model)
    samples, _ = audio.load(args.input, sample_rate=model.sample_rate)
    z = model.encode(samples, pitch=pitch)
    with atomic_output(out, overwrite=args.overwrite) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, z.astype(np.float32))
    label = model.pitch_label(pitch, samples)
    print(f"{out}\t{z.shape[0]} frames x {z.shape[1]} dims at {model.frame_rate:g} Hz, pitch {label}")
    return 0


def cmd_decode(args):
    from . import audio
    from .model.bundle import check_bundle
    from .ops import read_latents

    limits.check_iters(args.iters, "--iters")
    pitch = _int_arg(args.pitch, "--pitch")
    _refuse_existing([args.out], args.overwrite)
    z = read_latents(args.input, frame_rate=check_bundle(args.model)["config"].frame_rate)
    model = _load_model(args.model)
    if z.shape[1] != model.z_dim:
        raise SpecsynthError(f"{args.input}: expected a [time, {model.z_dim}] array for this model, got shape {z.shape}")
    y = model.synthesize(z, pitch=pitch, method=args.method, n_iter=args.iters)
    audio.write(args.out, audio.normalize_audio(y), model.sample_rate, overwrite=args.overwrite)
    print(f"{args.out}\t{len(y) / model.sample_rate:.2f} s")
    return 0


def _render_pitch_arg(args):
    return None if args.pitch is None else _int_arg(args.pitch, "--pitch")


def _refuse_existing(paths, overwrite):
    for path in paths:
        refuse_existing(path, overwrite)


def cmd_interpolate(args):
    from . import audio, ops

    limits.check_iters(args.iters, "--iters")
    limits.check_steps(args.steps, "--steps")
    with output_folder(args.outdir) as outdir:
        outs = [outdir / f"{Path(args.a).stem}_to_{Path(args.b).stem}_{i:02d}.wav" for i in range(args.steps)]
        _refuse_existing(outs, args.overwrite)
        model = _load_model(args.model)
        a, b = ops.encode_sound(model, args.a), ops.encode_sound(model, args.b)
        series = ops.interpolate_series(model, a, b, args.steps, mode=args.mode, pitch=_render_pitch_arg(args),
                                        method=args.method, n_iter=args.iters)
        for path, r in zip(outs, series):
            audio.write(path, audio.normalize_audio(r.samples), r.sample_rate, overwrite=args.overwrite)
            print(f"{path}\talpha {r.params['alpha']:.2f}\tpitch {r.pitch}")
    return 0


def cmd_mix(args):
    from . import audio, ops

    limits.check_iters(args.iters, "--iters")
    if len(args.corners) != 4:
        raise SpecsynthError(f"mix needs 4 corner sounds, (0,0) (1,0) (0,1) (1,1); got {len(args.corners)}")
    try:
        x, y = (float(v) for v in args.xy.split(","))
    except ValueError:
        raise SpecsynthError(f"--xy must look like 0.25,0.7, got {args.xy!r}") from None
    ops.xy_weights(x, y)  # validates the range before the model loads
    _refuse_existing([args.out], args.overwrite)
    model = _load_model(args.model)
    r = ops.mix_xy(model, args.corners, x, y, mode=args.mode, pitch=_render_pitch_arg(args), method=args.method,
                   n_iter=args.iters)
    audio.write(args.out, audio.normalize_audio(r.samples), r.sample_rate, overwrite=args.overwrite)
    w = ", ".join(f"{v:.2f}" for v in r.params["weights"])
    print(f"{args.out}\tweights {w}\tpitch {r.pitch}")
    return 0


def cmd_loop(args):
    from . import audio, ops

    limits.check_iters(args.iters, "--iters")
    limits.check_loop_seconds(args.seconds, "--seconds")
    limits.check_temperature(args.temperature, "--temperature")
    limits.check_seed(args.seed, "--seed")
    _refuse_existing([args.out], args.overwrite)
    model = _load_model(args.model)
    r = ops.loop(model, args.seed_sound, seconds=args.seconds, temperature=args.temperature, seed=args.seed,
                 pitch=_render_pitch_arg(args), method=args.method, n_iter=args.iters)
    audio.write(args.out, audio.normalize_audio(r.samples), r.sample_rate, overwrite=args.overwrite)
    print(f"{args.out}\t{r.seconds:.2f} s\tseam flux {r.metrics['seam_flux']:.2f} "
          f"(median inside {r.metrics['median_flux']:.2f}; at the blend point {r.metrics['blend_flux']:.2f})")
    return 0


def cmd_render(args):
    from .render import run_manifest

    return run_manifest(args.manifest, outdir=args.outdir, workers=args.workers, dry_run=args.dry_run,
                        overwrite=args.overwrite, model_override=args.model, wait=args.wait)


def cmd_app(args):
    import subprocess

    app = shipped("apps/specsynth_app.py")
    if not app.exists():
        raise SpecsynthError(f"{app}: the app is not installed with this copy of specsynth")
    from .ui import MAX_UPLOAD_MB

    # the server refuses uploads over the app's own limit before reading them (Streamlit's default is 200 MB)
    return subprocess.call([sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
                            "--server.headless", "true", "--browser.gatherUsageStats", "false",
                            "--server.maxUploadSize", str(MAX_UPLOAD_MB)])


def cmd_info(args):
    from .audio import file_info

    info = file_info(args.file)
    for key, value in info.items():
        print(f"{key:12s} {value:.3f}" if isinstance(value, float) else f"{key:12s} {value}")
    return 0


def _join_values(argv, options=("--xy",)):
    """``--xy -0.1,0.5`` as ``--xy=-0.1,0.5``: argparse takes a value that starts with '-' for an option."""
    out, argv = [], list(argv)
    for i, arg in enumerate(argv):
        if out and out[-1] in options and arg.startswith("-") and i > 0 and argv[i - 1] in options:
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(_join_values(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_usage(sys.stderr)
        sys.stderr.write("specsynth: error: give a command (specsynth --help lists them)\n")
        return 2
    try:
        return args.func(args) or 0
    except SpecsynthError as exc:
        sys.stderr.write(f"specsynth: {exc}\n")
        return exc.exit_code
    except OSError as exc:  # a full disk, a folder one cannot enter, a name too long: the user's, not a bug
        sys.stderr.write(f"specsynth: {from_os_error(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("specsynth: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
