"""Real recordings for the pretrained model: three Debian sample packs, listed, split and summarised.

``make pretrained`` installs the packs with apt (``make test`` and ``make demo`` never need them);
this module only finds their files. Loading (mono, float32, resampling) is ``specsynth.audio``'s job.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import soundfile as sf

from ..errors import ConfigError

# Package -> its installed sample roots and licence line for the model card (from its copyright file).
PACKS = {
    "sonic-pi-samples": {
        "roots": (Path("/usr/share/sonic-pi/samples"),),
        "licence": "CC0 (130 Freesound samples, authors credited per file in the copyright file; "
                   "credit is courtesy) and MIT (the other 35, (c) Samuel Aaron: keep the notice)",
    },
    "lmms-common": {
        "roots": (Path("/usr/share/lmms/samples"),),
        "licence": "GPL-2+ ((c) the LMMS developers; keep the notice; upstream issue LMMS/lmms#2752 "
                   "questions GPL-2+ for the whole tree)",
    },
    "hydrogen-drumkits": {
        "roots": (Path("/usr/share/hydrogen/data/drumkits"),),
        "licence": "per kit: rumpf_kit_z01_h2 CC-BY-3.0 (Emanuel Rumpf), Audiophob CC0, circAfrique v4 "
                   "CC-BY-SA-3.0 (Jim Harney), ElectricEmpireKit GPL-2+ (Artemiy Pavlov), The Black Pearl "
                   "1.0 GPL-2 (Glen MacArthur); credit each author",
    },
}

# Five kits, 4.1 min (the other packs give ~5.5 min each), for variety under the most open licences: two
# acoustic kits, two electronic, hand percussion. ForzeeStereo (9.4 min) alone would outweigh either other
# pack; BJA_Pacific and the Millo kits would add more acoustic kits of the same kind.
HYDROGEN_KITS = ("rumpf_kit_z01_h2", "The Black Pearl 1.0", "circAfrique v4", "ElectricEmpireKit",
                 "Audiophob")

# Never trained on: tabla, a pitched drum (tuned strokes with clear partials and pitch bends) unlike any
# training sound, and lmms effects (explosions, sweeps, warps, scratches: noise-led, no pitch).
HELDOUT_CATEGORIES = (("sonic-pi-samples", "tabla"), ("lmms-common", "effects"))

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff")
# lmms shapes/waveforms are single-cycle oscillator tables (~0.1 s), not recordings.
_LMMS_SKIP = ("shapes", "waveforms")


def _category(pack, rel):
    """The kind of sound of ``rel`` (a path relative to its pack root), or None to skip the file."""
    if pack == "sonic-pi-samples":
        return rel.name.split("_")[0] if len(rel.parts) == 1 else None
    if len(rel.parts) < 2:
        return None
    if pack == "hydrogen-drumkits":
        return rel.parts[0] if rel.parts[0] in HYDROGEN_KITS else None
    return None if rel.parts[0] in _LMMS_SKIP else rel.parts[0]


def missing_packs():
    """Names of the packs with no installed sample root, in ``PACKS`` order.

    Returns
    -------
    list of str
        Empty when every pack is installed (``make pretrained`` installs them).
    """
    return [pack for pack, info in PACKS.items() if not any(Path(r).is_dir() for r in info["roots"])]


def pack_files():
    """Every usable audio file of the installed packs, sorted by pack and path.

    A file is usable when soundfile can read it and it has samples (5 lmms Ogg files cannot be read).

    Returns
    -------
    list of dict
        ``{"path": Path, "pack": str, "category": str, "rel": str, "seconds": float}``; ``rel`` is the
        POSIX path relative to the pack root. A pack that is not installed has no entries.
    """
    files = []
    for pack, info in PACKS.items():
        for root in map(Path, info["roots"]):
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                category = _category(pack, rel)
                if category is None or path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
                    continue
                try:
                    header = sf.info(str(path))
                except (sf.LibsndfileError, RuntimeError, OSError):
                    continue
                if header.frames > 0:
                    files.append({"path": path, "pack": pack, "category": category,
                                  "rel": rel.as_posix(), "seconds": header.frames / header.samplerate})
    return sorted(files, key=lambda f: (f["pack"], f["rel"]))


def _rel(entry):
    """The entry's path relative to its pack root (its whole path when no root contains it)."""
    path = Path(entry["path"])
    roots = [r for r in PACKS.get(entry["pack"], {}).get("roots", ()) if path.is_relative_to(r)]
    return entry.get("rel") or (path.relative_to(roots[0]).as_posix() if roots else path.as_posix())


def _is_heldout_category(entry):  # its category is held out, or its name names one (loop_tabla)
    tokens = set(Path(_rel(entry)).stem.lower().split("_"))
    return any(entry["pack"] == pack and (entry["category"] == cat or cat in tokens)
               for pack, cat in HELDOUT_CATEGORIES)


def split(files, *, heldout_fraction=0.1):
    """Split pack files into training files, held-out files and held-out categories.

    Parameters
    ----------
    files : list of dict
        Entries as from :func:`pack_files` (``path``, ``pack``, ``category``; ``rel`` optional).
    heldout_fraction : float
        Share, in [0, 1), of the other files held out whole, chosen by a SHA-1 of ``pack/rel``: the same
        file is held out on every machine and in any order.

    Returns
    -------
    train, heldout_files, heldout_categories : list of dict
        Each sorted by pack and relative path.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ConfigError(f"heldout_fraction must be in [0, 1), got {heldout_fraction!r}")
    train, heldout_files, heldout_categories = [], [], []
    for entry in sorted(files, key=lambda f: (f["pack"], _rel(f), str(f["path"]))):
        if _is_heldout_category(entry):
            heldout_categories.append(entry)
            continue
        digest = hashlib.sha1(f"{entry['pack']}/{_rel(entry)}".encode()).digest()
        share = int.from_bytes(digest[:8], "big") / 2.0**64
        (heldout_files if share < heldout_fraction else train).append(entry)
    return train, heldout_files, heldout_categories


def summary(files):
    """Counts and seconds per pack and category.

    Returns
    -------
    dict
        ``{pack: {"files": int, "seconds": float, "categories": {category: {"files", "seconds"}}}}``;
        seconds come from each entry's ``seconds`` or, when absent, the file's header.
    """
    def counter():
        return {"files": 0, "seconds": 0.0}

    out = defaultdict(lambda: {**counter(), "categories": defaultdict(counter)})
    for entry in files:
        seconds = entry.get("seconds")
        if seconds is None:
            info = sf.info(str(entry["path"]))
            seconds = info.frames / info.samplerate
        for slot in (out[entry["pack"]], out[entry["pack"]]["categories"][entry["category"]]):
            slot["files"] += 1
            slot["seconds"] += seconds
    return {pack: {**totals, "categories": dict(sorted(totals["categories"].items()))}
            for pack, totals in sorted(out.items())}
