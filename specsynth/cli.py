"""The ``specsynth`` command: thin argument parsing over the library.

User errors print one line to stderr and exit with code 2. TensorFlow is imported only by the
subcommands that touch a model.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import SpecsynthError

PHASE_METHODS = ("griffinlim", "fgla", "lws", "lws+fgla")


class _Parser(argparse.ArgumentParser):
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
    p.add_argument("--max-seconds", type=float, default=600.0, help="refuse longer inputs (default 600)")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("info", help="describe an audio file")
    p.add_argument("file")
    p.set_defaults(func=cmd_info)
    return parser


def cmd_reconstruct(args):
    from tqdm import tqdm

    from . import audio, phase
    from .reconstruct import output_paths, reconstruct_file

    _check_iters(args.iters)
    audio.check_writable_dir(args.outdir)
    outs = output_paths(args.inputs, args.outdir, overwrite=args.overwrite)
    # Read every input before writing anything, so one bad file leaves no partial output.
    for path in args.inputs:
        audio.load(path, max_seconds=args.max_seconds)
    bar = tqdm(list(zip(args.inputs, outs)), disable=len(outs) < 4, unit="file", file=sys.stderr)
    for src, dst in bar:
        r = reconstruct_file(src, dst, method=args.method, n_iter=args.iters, overwrite=args.overwrite,
                             max_seconds=args.max_seconds)
        line = f"{r['output']}\tspectral convergence {r['spectral_convergence_db']:.1f} dB"
        (bar.write if not bar.disable else print)(line)
    return 0


def _check_iters(n):
    if n is not None and not 0 <= n <= 10000:
        raise SpecsynthError(f"--iters must be in 0..10000, got {n}")


def cmd_info(args):
    from .audio import file_info

    info = file_info(args.file)
    for key, value in info.items():
        print(f"{key:12s} {value:.3f}" if isinstance(value, float) else f"{key:12s} {value}")
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except SpecsynthError as exc:
        sys.stderr.write(f"specsynth: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("specsynth: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
