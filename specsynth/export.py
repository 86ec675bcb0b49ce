"""Sampler export: SFZ instruments over rendered samples.

Layout (what ``specsynth render`` writes for ``export = "sfz"``): one ``.sfz`` file per playable
instrument, with one ``<region>`` per sample, all under a single ``<group>``::

    // made by specsynth render: cello_keys
    <group>
    <region> sample=note_048.wav pitch_keycenter=48 lokey=0 hikey=51
    <region> sample=note_055.wav pitch_keycenter=55 lokey=52 hikey=57
    ...

Sample paths are relative to the .sfz file and use forward slashes. Each sample covers the keys
closest to its own pitch: neighbouring ranges split halfway between the two rendered pitches,
the lowest extends down to key 0 and the highest up to key 127, so every key plays exactly one
sample (transposed from its ``pitch_keycenter``). Only SFZ v1 opcodes are used, which every SFZ
player (sfizz, Sforzando, Decent Sampler's importer, ...) reads.

A four-corner grid is exported as one .sfz per XY position (``x0_y1.sfz`` ...) rather than as
layered groups in one file: groups without a switch would all sound at once.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from .files import atomic_output
from .errors import ConfigError


def key_ranges(pitches):
    """Keyboard ranges ``[(lokey, hikey), ...]`` for sorted, distinct MIDI ``pitches``, tiling 0..127.

    Parameters
    ----------
    pitches : sequence of int
        Rendered MIDI notes (0..127), strictly increasing.

    Returns
    -------
    list of (int, int)
        One inclusive range per pitch; range ``i`` holds ``pitches[i]``, the ranges do not
        overlap, and together they cover 0..127. The boundary between neighbours ``p < q`` is
        ``hikey = (p + q) // 2``.
    """
    pitches = [int(p) for p in pitches]
    if not pitches:
        raise ConfigError("an SFZ instrument needs at least one sample")
    if any(not 0 <= p <= 127 for p in pitches) or any(b <= a for a, b in zip(pitches, pitches[1:])):
        raise ConfigError(f"SFZ pitches must be distinct MIDI notes 0..127 in increasing order, got {pitches}")
    his = [(a + b) // 2 for a, b in zip(pitches, pitches[1:])] + [127]
    los = [0] + [h + 1 for h in his[:-1]]
    return list(zip(los, his))


def sfz_text(regions, *, comment=None):
    """The text of an SFZ instrument. ``regions``: dicts with ``sample`` (relative path) and ``pitch``."""
    regions = sorted(regions, key=lambda r: int(r["pitch"]))
    ranges = key_ranges([r["pitch"] for r in regions])
    lines = [f"// {line}" for line in (comment or "").splitlines()] + ["<group>"]
    for region, (lo, hi) in zip(regions, ranges):
        sample = PurePosixPath(*Path(str(region["sample"]).replace("\\", "/")).parts).as_posix()
        if Path(sample).is_absolute() or ".." in Path(sample).parts:
            raise ConfigError(f"SFZ sample paths must be relative and inside the instrument's folder, got {sample!r}")
        lines.append(f"<region> sample={sample} pitch_keycenter={int(region['pitch'])} lokey={lo} hikey={hi}")
    return "\n".join(lines) + "\n"


def write_sfz(path, regions, *, comment=None, overwrite=True):
    """Write an SFZ instrument atomically (temporary file beside ``path``, then rename).

    Parameters
    ----------
    path : str or Path
        The ``.sfz`` file to write.
    regions : list of dict
        One per sample: ``sample`` (path relative to the .sfz's folder) and ``pitch`` (the MIDI
        note it sounds at, used as ``pitch_keycenter``). Any order; pitches must be distinct.
    comment : str or None
        Written at the top as ``//`` comment lines.
    overwrite : bool
        Replace an existing file (default); otherwise raise OutputError if it exists.

    Returns
    -------
    Path
    """
    text = sfz_text(regions, comment=comment)
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
