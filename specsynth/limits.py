"""Every user-facing limit and the validator that enforces it (no TensorFlow here).

The command line, manifests, the app and the library call these, so a limit is written once.
Each validator takes the value and ``name``, the way the caller shows it to the user
(``"--steps"``, ``"key 'steps'"``, ``"steps"``), and returns the value normalized, or raises
:class:`~specsynth.errors.ConfigError` with a one-line message that starts with ``name``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .errors import ConfigError

ITERS = (0, 10000)               # phase iterations
STEPS = (2, 1000)                # sounds in an interpolation series, both ends included
RESOLUTION = (2, 64)             # points per side of an XY grid
LOOP_SECONDS = (0.25, 600.0)     # length of a loop
TEMPERATURE = (0.0, 10.0)        # prior sampling temperature
SEED = (0, 2**32 - 1)            # random seeds
MIDI = (0, 127)                  # MIDI notes and General MIDI programs
MAX_INPUT_SECONDS = 600.0        # the longest audio input read by default
GM_SECONDS = (0.25, 30.0)        # length of a soundfont note
GM_DEFAULT_SECONDS = 4.0
GM_MAX_HOLD_SECONDS = 3.0        # a soundfont note's key is held for 3/4 of it, at most 3 s


def check_int(value, lo, hi, name, what="an int"):
    """``value`` as an int in ``lo..hi`` (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be {what} in {lo}..{hi}, got {value!r}")
    return int(value)


def check_number(value, lo, hi, name):
    """``value`` as a finite float in ``lo..hi`` (NaN and bools are refused)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or not lo <= value <= hi):
        raise ConfigError(f"{name} must be a number in {lo:g}..{hi:g}, got {value!r}")
    return float(value)


def check_choice(value, choices, name):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_iters(value, name="iterations"):
    """Phase iterations; ``None`` means the method's own default."""
    return None if value is None else check_int(value, *ITERS, name)


def check_steps(value, name="steps"):
    return check_int(value, *STEPS, name)


def check_resolution(value, name="resolution"):
    return check_int(value, *RESOLUTION, name)


def check_loop_seconds(value, name="loop length"):
    return check_number(value, *LOOP_SECONDS, name)


def check_temperature(value, name="temperature"):
    return check_number(value, *TEMPERATURE, name)


def check_seed(value, name="seed"):
    return check_int(value, *SEED, name)


def check_max_seconds(value, name="max seconds"):
    """An input length limit: a positive finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GMNote:
    """A General MIDI soundfont note: ``gm:PROGRAM:PITCH[:SECONDS]``."""

    program: int
    pitch: int
    seconds: float = GM_DEFAULT_SECONDS

    @property
    def hold(self):
        """Seconds the key is held before release."""
        return min(GM_MAX_HOLD_SECONDS, 0.75 * self.seconds)

    @property
    def spec(self):
        return f"gm:{self.program}:{self.pitch}:{self.seconds:g}"


def is_gm(text):
    """Whether a sound spec names a soundfont note rather than a file."""
    return isinstance(text, str) and text.startswith("gm:")


def parse_gm(text, name="sound"):
    """``"gm:PROGRAM:PITCH[:SECONDS]"`` -> :class:`GMNote`; raises ConfigError if malformed."""
    parts = str(text).split(":")[1:]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        program, pitch = int(parts[0]), int(parts[1])
        seconds = float(parts[2]) if len(parts) == 3 else GM_DEFAULT_SECONDS
    except ValueError:
        raise ConfigError(f"{name} must be a file or 'gm:PROGRAM:PITCH[:SECONDS]', got {text!r}") from None
    lo, hi = GM_SECONDS
    if not (MIDI[0] <= program <= MIDI[1] and MIDI[0] <= pitch <= MIDI[1] and lo <= seconds <= hi):
        raise ConfigError(f"{name} needs a program and pitch in 0..127 and {lo:g}..{hi:g} seconds, got {text!r}")
    return GMNote(program, pitch, seconds)
