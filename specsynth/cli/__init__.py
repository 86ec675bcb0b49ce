"""The ``specsynth`` command: thin argument parsing over the library.

User errors print one line to stderr and exit with code 2. TensorFlow is imported only by the
subcommands that touch a model.
"""
from __future__ import annotations

import sys

from ..errors import SpecsynthError, from_os_error
from .parser import build_parser

__all__ = ["build_parser", "main"]


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
