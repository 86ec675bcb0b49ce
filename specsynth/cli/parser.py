"""The command line's arguments: one parser with a subcommand per stage, help that states defaults."""
from __future__ import annotations

import argparse
import sys

from .. import __version__, limits
from ..phase import DEFAULT_METHOD, METHODS
from . import commands as c


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
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD, help="phase reconstruction")
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
    p.set_defaults(func=c.cmd_reconstruct)

    p = sub.add_parser("info", help="describe an audio file")
    p.add_argument("file")
    p.set_defaults(func=c.cmd_info)

    p = sub.add_parser("dataset", help="make a training set from a folder of audio or from soundfont notes "
                                       "(44.1 kHz frames and per-frame pitch contours, on disk)")
    p.add_argument("folder", nargs="?", help="folder of audio (recursive); omit with --soundfont")
    p.add_argument("-o", "--out", required=True, help="dataset folder to write")
    p.add_argument("--soundfont", nargs="?", const="default", default=None,
                   help="render General MIDI notes (default: the soundfont pretty_midi ships)")
    p.add_argument("--programs", default="0-127", help="GM programs, e.g. 0-7,40,73 (default 0-127)")
    p.add_argument("--pitches", default="36-84", help="MIDI pitches (default 36-84)")
    p.add_argument("--velocities", default="100", help="velocities (default 100)")
    p.add_argument("--pitch", choices=("auto", "name", "none"), default="auto",
                   help="folder labels: auto (the note in an NSynth-style name, cello_60.wav, else the "
                        "median f0 of the sound's voiced frames), name (names only, else unpitched) or none; "
                        "pitch contours are tracked either way")
    p.add_argument("--representation", choices=("stft", "mel"), default="stft",
                   help="frames as dB STFT bins or mel bands")
    p.add_argument("--chunk-seconds", type=float, default=4.0, help="long files are cut into chunks this long")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    p.set_defaults(func=c.cmd_dataset)

    p = sub.add_parser("train", help="train a model bundle (VAE, then the LSTM prior) on a dataset")
    p.add_argument("data", help="a dataset folder from `specsynth dataset`")
    p.add_argument("--out", required=True, help="bundle folder to write")
    from ..model.settings import TrainSettings  # the defaults, stated in the help (no TensorFlow imported)

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
    p.set_defaults(func=c.cmd_train)

    p = sub.add_parser("encode", help="audio -> latent sequence [time, z] as .npy")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--out", required=True, help="Z.npy")
    _add_model_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=c.cmd_encode)

    p = sub.add_parser("decode", help="latent sequence .npy -> audio")
    p.add_argument("input", metavar="Z.npy")
    p.add_argument("-o", "--out", required=True, help="OUT.wav")
    p.add_argument("--model", default="pretrained", help="bundle folder (default: pretrained/)")
    p.add_argument("--pitch", default=None, help="transpose the file's pitch contour so its median is this MIDI note "
                   "0-127, or 128 for unpitched (default: the contour as encoded)")
    _add_phase_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=c.cmd_decode)

    p = sub.add_parser("interpolate", help="a series of sounds from A to B through the latent space")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--steps", type=int, default=5, help="sounds in the series, A and B included (default 5)")
    p.add_argument("--mode", choices=("linear", "slerp"), default="linear", help="how latents are blended")
    p.add_argument("-o", "--outdir", required=True)
    _add_render_args(p)
    p.set_defaults(func=c.cmd_interpolate)

    p = sub.add_parser("mix", help="four corner sounds mixed at an XY position, like NSynth Super")
    p.add_argument("corners", nargs="+", metavar="C", help="4 corner sounds: (0,0) (1,0) (0,1) (1,1)")
    p.add_argument("--xy", required=True, help="position as X,Y in 0..1, e.g. 0.25,0.7")
    p.add_argument("--mode", choices=("linear", "slerp"), default="linear", help="how latents are blended")
    p.add_argument("-o", "--out", required=True, help="OUT.wav")
    _add_render_args(p)
    p.set_defaults(func=c.cmd_mix)

    p = sub.add_parser("loop", help="a seamless texture loop grown by the LSTM prior")
    p.add_argument("seed_sound", nargs="?", metavar="SEED", help="a sound to continue (optional)")
    p.add_argument("--seconds", type=float, default=8.0, help="loop length")
    p.add_argument("--temperature", type=float, default=0.8, help="prior sampling temperature (0: most likely path)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("-o", "--out", required=True, help="OUT.wav")
    _add_render_args(p)
    p.set_defaults(func=c.cmd_loop)

    p = sub.add_parser("render", help="batch-render the jobs of a TOML manifest")
    p.add_argument("manifest", metavar="MANIFEST.toml")
    p.add_argument("-o", "--outdir", default=None, help="output folder (default: out/ beside the manifest)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes to render in (default: 1); with --executor ray, actors (default: one per CPU)")
    p.add_argument("--executor", choices=("process", "ray"), default=None,
                   help="render in local processes, or as Ray tasks on this machine or a cluster (docs/scaling.md; "
                   "pip install 'specsynth[ray]') (default: the manifest's [defaults] executor, else process)")
    p.add_argument("--ray-address", default=None,
                   help="the Ray cluster to join, e.g. HOST:6379 (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--dry-run", action="store_true", help="validate and list what would be rendered")
    p.add_argument("--model", default=None, help="use this bundle for every job (overrides the manifest)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--wait", action="store_true", help="wait for another render writing into OUTDIR (default: refuse)")
    p.set_defaults(func=c.cmd_render)

    p = sub.add_parser("app", help="start the Streamlit app")
    p.add_argument("--port", type=int, default=8501, help="the server's port")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a bundle folder, or a folder of bundles, offered in the app's model picker beside pretrained")
    p.set_defaults(func=c.cmd_app)
    return parser


def _add_render_args(p):
    p.add_argument("--model", default="pretrained", help="bundle folder (default: pretrained/)")
    p.add_argument("--pitch", default=None, help="transpose the result's pitch contour so its median is this MIDI "
                   "note, 128 for unpitched (default: the sounds' own contours, blended; a loop with no seed sound "
                   "walks at the model's Model.walk_pitch)")
    _add_phase_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _add_model_args(p):
    p.add_argument("--model", default="pretrained", help="bundle folder (default: pretrained/)")
    p.add_argument("--pitch", default="auto",
                   help="the input's pitch contour is tracked; a MIDI note 0-127 transposes it so its median is "
                        "that note (to correct an octave), 128 marks the sound unpitched (default: auto, as tracked)")
