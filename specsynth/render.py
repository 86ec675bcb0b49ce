"""Batch rendering from a TOML manifest: validation, planning, workers and a resumable output index.

A manifest has an optional ``[defaults]`` table and ``[[job]]`` entries::

    [defaults]
    model = "pretrained"        # a bundle folder (relative to the manifest) or "pretrained"
    method = "lws+fgla"         # griffinlim | fgla | lws | lws+fgla
    iters = 8                   # phase iterations (default: the method's own)
    sample_rate = 44100         # output rate in Hz (default: the model's; resampled with soxr)
    normalize = "peak"          # "peak" | "loudness" | false (keep the level the operation made)
    format = "wav"              # "wav" | "flac"

    [[job]]
    kind = "interpolate"        # a, b, steps, out; optional mode (linear|slerp), pitch
    a = "gm:42:48"              # a sound: a file, or a General MIDI soundfont note
    b = "sounds/flute_72.wav"
    steps = 5
    out = "cello_to_flute"      # -> OUTDIR/cello_to_flute/step_00.wav ... step_04.wav

Kinds and their keys (any job may also override the defaults' keys):

``interpolate``  a, b, steps, out; mode, pitch             -> out/step_00.wav ...
``grid``         corners (4), resolution, out; pitches, mode, export = "sfz"
                                                            -> out/x0_y0.wav ... (out/p060/x0_y0.wav with pitches)
``loop``         seconds, out; seed_sound, temperature, seed, pitch  -> out (a file, e.g. loops/rain.wav)
``pitch``        sound, pitches, out; export = "sfz"        -> out/note_060.wav ...
``reconstruct``  sound, out                                 -> out (a file)

Grid corners are in :func:`specsynth.ops.xy_weights` order: (0,0), (1,0), (0,1), (1,1); ``xI_yJ``
is the point (I/(resolution-1), J/(resolution-1)). A single-file ``out`` ending in .wav or .flac
keeps that format; without an extension ``format``'s is added.

Sounds: a path (relative to the manifest's folder) or ``"gm:PROGRAM:PITCH[:SECONDS]"``, a note of
the General MIDI soundfont (default 4 s), peak-normalized. A sound's pitch label is known for
soundfont notes, read from NSynth-style file names (``cello_48.wav``), else estimated (pyin).

Everything is validated before anything renders; every problem is reported on its own line as
``MANIFEST: job N (kind): key 'k' ...`` and the run exits with code 2.

The index
---------
``OUTDIR/index.json`` is replaced atomically whenever it changes. It maps each output (a path
relative to OUTDIR) to its job position, kind, parameters, a fingerprint of everything that
determines the output (parameters, settings, input files' sizes and times, the model bundle),
a status and, once finished, metrics (``render_ms``, ``seconds``, ``pitch``; loops also
``seam_flux``, ``median_flux`` and ``blend_flux``). At the start of a run every output to
render is entered as ``pending``; each is marked ``done`` (or ``failed``) as it finishes. So
after a kill at any moment the index is valid JSON, and every file it lists as done is complete
(outputs are written atomically too).

Resuming: an output is skipped when its file exists and the index lists it as ``done`` with the
same fingerprint. It is rendered again when it is missing, ``pending`` or ``failed`` (a run was
interrupted), or stale (the manifest, an input file or the model changed). A file that exists but
is not in the index was not made by ``specsynth render`` into this folder: without
``--overwrite`` that is an error reported up front, so nothing a user had is replaced. Outputs
that are not in this run's plan, and their index entries, are left alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import audio, files, phase
from .errors import ManifestError, SpecsynthError
from .pitch import UNPITCHED, pitch_from_name

INDEX = "index.json"
JOURNAL = ".index.journal"  # finished items since index.json was written; see _journal
INDEX_VERSION = 1
DEFAULTS = {"model": "pretrained", "method": phase.DEFAULT_METHOD, "iters": None, "sample_rate": None,
            "normalize": "peak", "format": "wav"}
# kind -> (required keys, optional keys with their defaults)
KINDS = {
    "interpolate": (("a", "b", "steps", "out"), {"mode": "linear", "pitch": None}),
    "grid": (("corners", "resolution", "out"), {"pitches": None, "mode": "linear", "export": None}),
    "loop": (("seconds", "out"), {"seed_sound": None, "temperature": 0.8, "seed": 0, "pitch": None}),
    "pitch": (("sound", "pitches", "out"), {"export": None}),
    "reconstruct": (("sound", "out"), {}),
}
SINGLE_FILE = ("loop", "reconstruct")
GM_NOTE_SECONDS = 4.0


class ManifestProblems(ManifestError):
    """Every problem found in a manifest (``problems``, one line each); the message is the first."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(self.problems[0])


@dataclass
class Item:
    """One output file of a plan.

    ``out`` is relative to OUTDIR (forward slashes); ``params`` the item's own parameters (as
    written to the index); ``settings`` the job's model, phase method, iterations, output rate and
    normalization; ``sounds`` the resolved inputs by role; ``depends`` the outputs an SFZ lists.
    """

    job: int
    kind: str
    out: str
    params: dict
    settings: dict
    sounds: dict = field(default_factory=dict)
    depends: list = field(default_factory=list)
    fingerprint: str = ""


@dataclass
class Plan:
    """A validated manifest: its items, the output folder, the index read from it, and what to do
    with each item (``actions[out]`` is ``"render"``, ``"skip"``, ``"resume"`` or ``"stale"``)."""

    manifest: Path
    outdir: Path
    items: list
    index: dict
    actions: dict

    @property
    def to_render(self):
        return [item for item in self.items if self.actions[item.out] != "skip"]


class _Invalid(Exception):
    """A bad value; the message completes "key 'k' ..."."""


# ---------------------------------------------------------------------------------------------
# Value checks: each returns the normalized value or raises _Invalid.


def _int(value, lo, hi, what="an int"):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _Invalid(f"must be {what} in {lo}..{hi}, got {value!r}")
    return value


def _number(value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise _Invalid(f"must be a number in {lo:g}..{hi:g}, got {value!r}")
    return float(value)


def _choice(value, choices):
    if value not in choices:
        raise _Invalid(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _pitches(value):
    if not isinstance(value, list) or not value:
        raise _Invalid(f"must be a non-empty list of MIDI notes (ints 0..127), got {value!r}")
    for p in value:
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 127:
            raise _Invalid(f"must be a list of MIDI notes (ints 0..127), got {p!r} in it")
    if len(set(value)) != len(value):
        raise _Invalid(f"must not repeat a pitch, got {value!r}")
    return sorted(value)


def parse_gm(text):
    """``"gm:PROGRAM:PITCH[:SECONDS]"`` -> (program, pitch, seconds); raises _Invalid if malformed."""
    parts = text.split(":")[1:]
    try:
        program, pitch = int(parts[0]), int(parts[1])
        seconds = float(parts[2]) if len(parts) == 3 else GM_NOTE_SECONDS
        if len(parts) not in (2, 3):
            raise ValueError
    except (ValueError, IndexError):
        raise _Invalid(f"must be a file or 'gm:PROGRAM:PITCH[:SECONDS]', got {text!r}") from None
    if not (0 <= program <= 127 and 0 <= pitch <= 127 and 0.25 <= seconds <= 30):
        raise _Invalid(f"needs a program and pitch in 0..127 and 0.25..30 seconds, got {text!r}")
    return program, pitch, seconds


def _sound(value, base):
    """A sound spec -> "gm:..." unchanged, or an absolute file path (which must exist)."""
    if not isinstance(value, str) or not value:
        raise _Invalid(f"must be a sound: a file path or 'gm:PROGRAM:PITCH', got {value!r}")
    if value.startswith("gm:"):
        parse_gm(value)
        return value
    path = (base / value).absolute()
    if not path.exists():
        raise _Invalid(f"names a file that does not exist: {path}")
    if not path.is_file():
        raise _Invalid(f"must name an audio file, but {path} is a folder")
    return str(path)


def _model(value, base):
    if not isinstance(value, str) or not value:
        raise _Invalid(f"must be a model bundle folder or 'pretrained', got {value!r}")
    from .model.bundle import resolve  # no TensorFlow at import

    path = resolve(value) if value == "pretrained" else (base / value).absolute()
    if not (path / "config.json").is_file():
        raise _Invalid(f"names no model bundle: {path} is not a folder with config.json")
    return str(path)


def _out(value, kind, fmt):
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"must be a relative path inside the output folder, got {value!r}")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise _Invalid(f"must be a relative path inside the output folder (no '..', not absolute), got {value!r}")
    if path.parts[0] == INDEX:
        raise _Invalid(f"must not be {INDEX}: that name is the output folder's index")
    if kind in SINGLE_FILE:
        if path.suffix.lower() not in audio.WRITE_FORMATS:
            if path.suffix:
                raise _Invalid(f"must end in .wav or .flac (or have no extension), got {value!r}")
            path = path.with_name(f"{path.name}.{fmt}")
    return path.as_posix()


# ---------------------------------------------------------------------------------------------
# Reading and validating a manifest


def _read_toml(manifest, label):
    if not manifest.exists():
        raise ManifestProblems([f"{label}: no such manifest file"])
    if manifest.is_dir():
        raise ManifestProblems([f"{label}: is a folder, not a manifest file"])
    try:
        with open(manifest, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestProblems([f"{label}: not valid TOML ({str(exc).splitlines()[0]})"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestProblems([f"{label}: cannot be read ({exc})"]) from None


def _check_settings(table, where, base, problems, model_override):
    """Validate the defaults' keys present in ``table``; returns the valid ones."""
    checks = {
        "model": lambda v: _model(v, base),
        "method": lambda v: _choice(v, phase.METHODS),
        "iters": lambda v: _int(v, 0, 10000),
        "sample_rate": lambda v: _int(v, audio.MIN_RATE, audio.MAX_RATE, "an int (Hz)"),
        "normalize": lambda v: _choice(v, ("peak", "loudness", False)),
        "format": lambda v: _choice(v, ("wav", "flac")),
    }
    settings = {}
    for key, check in checks.items():
        if key not in table or (key == "model" and model_override is not None):
            continue
        try:
            settings[key] = check(table[key])
        except _Invalid as exc:
            problems.append(f"{where}: key '{key}' {exc}")
    return settings


def _check_job(job, where, kind, base, fmt, problems):
    """Validate a job's own keys; returns {key: normalized value}, or None if any is invalid."""
    required, optional = KINDS[kind]
    checks = {
        "a": lambda v: _sound(v, base), "b": lambda v: _sound(v, base),
        "sound": lambda v: _sound(v, base), "seed_sound": lambda v: _sound(v, base),
        "steps": lambda v: _int(v, 2, 1000), "resolution": lambda v: _int(v, 2, 64),
        "mode": lambda v: _choice(v, ("linear", "slerp")), "pitch": lambda v: _int(v, 0, UNPITCHED),
        "pitches": _pitches, "export": lambda v: _choice(v, ("sfz",)),
        "seconds": lambda v: _number(v, 0.25, 600), "temperature": lambda v: _number(v, 0, 10),
        "seed": lambda v: _int(v, 0, 2**32 - 1), "out": lambda v: _out(v, kind, fmt),
    }

    def corners(value):
        if not isinstance(value, list) or len(value) != 4:
            raise _Invalid(f"must be a list of 4 sounds, got {value!r}")
        resolved = []
        for i, v in enumerate(value, 1):
            try:
                resolved.append(_sound(v, base))
            except _Invalid as exc:
                raise _Invalid(f"sound {i} {exc}") from None
        return resolved

    checks["corners"] = corners
    values, ok = {}, True
    for key in required:
        if key not in job:
            problems.append(f"{where}: key '{key}' is missing")
            ok = False
    for key in (*required, *optional):
        if key in job:
            try:
                values[key] = checks[key](job[key])
            except _Invalid as exc:
                problems.append(f"{where}: key '{key}' {exc}")
                ok = False
        elif key in optional:
            values[key] = optional[key]
    if ok and kind == "grid" and values["export"] == "sfz" and not values["pitches"]:
        problems.append(f"{where}: key 'export' needs 'pitches' (the notes the instrument spans)")
        ok = False
    return values if ok else None


def _file_stamp(spec):
    if spec is None or spec.startswith("gm:"):
        return spec
    try:
        st = os.stat(spec)
        return [spec, st.st_size, st.st_mtime_ns]
    except OSError:
        return [spec, None]


def _fingerprint(item):
    sounds = {k: ([_file_stamp(s) for s in v] if isinstance(v, list) else _file_stamp(v))
              for k, v in item.sounds.items()}
    model = item.settings.get("model")
    try:
        model_stamp = os.stat(Path(model) / "config.json").st_mtime_ns if model else None
    except OSError:
        model_stamp = None
    blob = json.dumps([item.kind, item.params, item.settings, sounds, model_stamp, item.depends], sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _expand(position, kind, v, settings):
    """A validated job -> its items (one per output file)."""
    ext = settings["format"]
    out = v["out"]
    common = dict(job=position, kind=kind, settings={k: settings[k] for k in DEFAULTS if k != "format"})
    items = []
    if kind == "interpolate":
        width = max(2, len(str(v["steps"] - 1)))
        for i in range(v["steps"]):
            alpha = i / (v["steps"] - 1)
            items.append(Item(out=f"{out}/step_{i:0{width}d}.{ext}", sounds={"a": v["a"], "b": v["b"]},
                              params={"alpha": alpha, "a": v["a"], "b": v["b"], "mode": v["mode"],
                                      "pitch": v["pitch"]}, **common))
    elif kind == "grid":
        n = v["resolution"]
        for pitch in v["pitches"] or [None]:
            folder = out if pitch is None else f"{out}/p{pitch:03d}"
            for j in range(n):
                for i in range(n):
                    items.append(Item(out=f"{folder}/x{i}_y{j}.{ext}", sounds={"corners": v["corners"]},
                                      params={"x": i / (n - 1), "y": j / (n - 1), "pitch": pitch,
                                              "mode": v["mode"], "corners": v["corners"]}, **common))
        if v["export"] == "sfz":
            name = PurePosixPath(out).name
            for j in range(n):
                for i in range(n):
                    regions = [{"sample": f"p{p:03d}/x{i}_y{j}.{ext}", "pitch": p} for p in v["pitches"]]
                    items.append(Item(out=f"{out}/x{i}_y{j}.sfz", params={"regions": regions, "comment":
                                      f"made by specsynth render: {name}, x={i / (n - 1):g} y={j / (n - 1):g}"},
                                      depends=[f"{out}/{r['sample']}" for r in regions],
                                      **{**common, "kind": "sfz"}))
    elif kind == "pitch":
        for p in v["pitches"]:
            items.append(Item(out=f"{out}/note_{p:03d}.{ext}", sounds={"sound": v["sound"]},
                              params={"pitch": p, "sound": v["sound"]}, **common))
        if v["export"] == "sfz":
            name = PurePosixPath(out).name
            regions = [{"sample": f"note_{p:03d}.{ext}", "pitch": p} for p in v["pitches"]]
            items.append(Item(out=f"{out}/{name}.sfz", params={"regions": regions,
                                                               "comment": f"made by specsynth render: {name}"},
                              depends=[f"{out}/{r['sample']}" for r in regions], **{**common, "kind": "sfz"}))
    elif kind == "loop":
        items.append(Item(out=out, sounds={"seed_sound": v["seed_sound"]},
                          params={k: v[k] for k in ("seconds", "temperature", "seed", "pitch", "seed_sound")},
                          **common))
    else:
        items.append(Item(out=out, sounds={"sound": v["sound"]}, params={"sound": v["sound"]}, **common))
    return items


def _check_outputs(items, outdir, job_label, problems):
    """Outputs must stay inside OUTDIR (symlinks resolved), be written by one job only, and not
    sit below another job's file. ``job_label(item)`` names the item's job in messages."""
    root = outdir.resolve()
    by_path, reported = {}, set()
    for item in items:
        target = (outdir / item.out).resolve()
        if not target.is_relative_to(root) and (item.job, "escape") not in reported:
            reported.add((item.job, "escape"))
            problems.append(f"{job_label(item)}: key 'out' leads outside the output folder through a symlink "
                            f"({item.out} -> {target})")
        other = by_path.get(item.out)
        if other is not None and other.job != item.job and (other.job, item.job) not in reported:
            reported.add((other.job, item.job))
            problems.append(f"{job_label(item)}: key 'out' writes {item.out}, which job {other.job} writes too")
        by_path.setdefault(item.out, item)
    for item in items:  # an output that is a folder of another job's output
        for parent in PurePosixPath(item.out).parents:
            other = by_path.get(parent.as_posix())
            if other is not None and (other.job, item.job, "nest") not in reported:
                reported.add((other.job, item.job, "nest"))
                problems.append(f"{job_label(item)}: key 'out' writes {item.out} inside "
                                f"{parent}, which job {other.job} writes as a file")


def load_index(outdir):
    """The ``outputs`` mapping of ``OUTDIR/index.json`` ({} if there is none); raises ManifestError
    if the file is not a render index."""
    path = Path(outdir) / INDEX
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        outputs = data["outputs"]
        if not isinstance(outputs, dict) or data.get("format_version") != INDEX_VERSION:
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise ManifestError(f"{path}: is not a specsynth render index (move it away, or use --overwrite)") from None
    return {**outputs, **_read_journal(outdir)}


def _read_journal(outdir):
    """Entries appended since index.json was last written (a killed run's finished items)."""
    entries = {}
    try:
        lines = (Path(outdir) / JOURNAL).read_text().splitlines()
    except OSError:
        return entries
    for line in lines:
        try:
            out, entry = json.loads(line)
            entries[out] = entry
        except (ValueError, TypeError):
            continue  # a line cut short by a kill: that item was not finished
    return entries


def _journal(outdir, out, entry):
    """Record one finished item in O(1): a line appended to the journal, merged by load_index.
    (Rewriting index.json after every item made a big batch quadratic in its size.)"""
    with open(Path(outdir) / JOURNAL, "a") as fh:
        fh.write(json.dumps([out, entry]) + "\n")


def _write_index(outdir, manifest, outputs):
    data = {"format_version": INDEX_VERSION, "manifest": str(manifest), "outputs": dict(sorted(outputs.items()))}
    with files.atomic_output(Path(outdir) / INDEX, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1))
    (Path(outdir) / JOURNAL).unlink(missing_ok=True)  # everything it held is in index.json now


def plan_manifest(manifest, *, outdir=None, overwrite=False, model_override=None):
    """Read and validate a manifest and decide what to render.

    Parameters
    ----------
    manifest : str or Path
        The TOML manifest.
    outdir : str, Path or None
        Output folder; default ``out/`` beside the manifest.
    overwrite : bool
        Render every output again and allow replacing files the index does not list.
    model_override : str, Path or None
        Use this bundle (or "pretrained") for every job, whatever the manifest says.

    Returns
    -------
    Plan

    Raises
    ------
    ManifestProblems
        With every problem found (``.problems``, one line each), before anything is written.
    """
    label = str(manifest)
    manifest = Path(manifest)
    data = _read_toml(manifest, label)
    base = manifest.absolute().parent
    outdir = Path(outdir) if outdir is not None else base / "out"
    problems = []
    items, job_kinds = _validate(data, label, base, model_override, problems)

    def job_label(item):
        return f"{label}: job {item.job} ({job_kinds[item.job]})"

    _check_outputs(items, outdir, job_label, problems)
    index = {}
    try:
        index = load_index(outdir)
    except ManifestError as exc:
        if not overwrite:
            problems.append(str(exc))
    actions = _decide(items, outdir, index, overwrite, job_label, problems)
    if problems:
        raise ManifestProblems(problems)
    return Plan(manifest, outdir, items, index, actions)


def _validate(data, label, base, model_override, problems):
    """Check the parsed manifest's tables and jobs; returns (items, {position: kind})."""
    for key in data:
        if key not in ("defaults", "job"):
            problems.append(f"{label}: unknown table or key '{key}' (a manifest has [defaults] and [[job]] entries)")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(f"{label}: 'defaults' must be a table")
        defaults = {}
    for key in defaults:
        if key not in DEFAULTS:
            problems.append(f"{label}: defaults: unknown key '{key}' (allowed: {', '.join(DEFAULTS)})")
    override = {}
    if model_override is not None:
        try:
            override["model"] = _model(str(model_override), Path.cwd())
        except _Invalid as exc:
            problems.append(f"{label}: model override {exc}")
    base_settings = {**DEFAULTS, **_check_settings(defaults, f"{label}: defaults", base, problems, model_override),
                     **override}
    jobs = data.get("job", [])
    if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
        problems.append(f"{label}: 'job' must be an array of tables ([[job]] entries)")
        jobs = []
    elif not jobs:
        problems.append(f"{label}: no [[job]] entries: nothing to render")
    items, job_kinds = [], {}
    for position, job in enumerate(jobs, 1):
        kind = job.get("kind")
        if kind not in KINDS:
            problems.append(f"{label}: job {position}: key 'kind' must be one of {', '.join(KINDS)}, got {kind!r}"
                            if "kind" in job else f"{label}: job {position}: key 'kind' is missing")
            continue
        where = f"{label}: job {position} ({kind})"
        job_kinds[position] = kind
        required, optional = KINDS[kind]
        for key in job:
            if key not in ("kind", *required, *optional, *DEFAULTS):
                problems.append(f"{where}: unknown key '{key}' (allowed: {', '.join((*required, *optional))}, "
                                f"and the defaults' keys)")
        settings = {**base_settings, **_check_settings(job, where, base, problems, model_override), **override}
        values = _check_job(job, where, kind, base, settings["format"], problems)
        if values is None:
            continue
        if "model" not in defaults and "model" not in job and not override:
            try:  # the built-in default, "pretrained": checked once, for the jobs that use it
                settings["model"] = _model(settings["model"], base)
            except _Invalid as exc:
                if not any("default 'pretrained'" in line for line in problems):
                    problems.append(f"{where}: key 'model' (default 'pretrained') {exc}")
                continue
        items.extend(_expand(position, kind, values, settings))
    return items, job_kinds


def _decide(items, outdir, index, overwrite, job_label, problems):
    """What to do with each item given the files on disk and the index: {out: action}."""
    actions, clashes = {}, {}
    for item in items:
        item.fingerprint = _fingerprint(item)
        path = outdir / item.out
        entry = index.get(item.out)
        below = next((p for p in path.parents if p != outdir and p.is_relative_to(outdir) and p.is_file()), None)
        if path.is_dir() or below is not None:
            problems.append(f"{job_label(item)}: key 'out': {below or path} is in the way "
                            f"({'a file' if below else 'a folder'})")
        elif overwrite or not path.exists():
            actions[item.out] = "render"
        elif entry is None:
            clashes.setdefault(item.job, []).append(item)
        elif entry.get("status") != "done":
            actions[item.out] = "resume"
        elif entry.get("fingerprint") != item.fingerprint:
            actions[item.out] = "stale"
        else:
            actions[item.out] = "skip"
    for clash in clashes.values():
        what = (f"{outdir / clash[0].out} already exists and is" if len(clash) == 1 else
                f"{outdir / clash[0].out} and {len(clash) - 1} more of its outputs already exist and are")
        problems.append(f"{job_label(clash[0])}: key 'out': {what} not in {INDEX} (not made by specsynth "
                        "render); use --overwrite to replace them")
    return actions


# ---------------------------------------------------------------------------------------------
# Rendering one item (in a worker process, or in-process when workers == 1)

_MODELS = {}   # bundle path -> Model, or the exception loading it raised
_SOURCES = {}  # (bundle path, sound) -> ops.Source: a job's corners are encoded once per worker


def _init_worker(model_paths):
    """Forget earlier runs' models and sounds, then load each model once (the pool's initializer)."""
    _MODELS.clear()
    _SOURCES.clear()
    for path in model_paths:
        try:
            _load_model(path)
        except SpecsynthError:
            pass  # remembered: each item that needs this model fails with the reason


def _load_model(path):
    """The loaded bundle; a bundle that fails to load fails each of its items, not the whole run."""
    from . import load

    if path not in _MODELS:
        try:
            _MODELS[path] = load(path)
        except SpecsynthError as exc:
            _MODELS[path] = exc
    if isinstance(_MODELS[path], Exception):
        raise _MODELS[path]
    return _MODELS[path]


def _source(model, spec):
    """The encoded sound for a spec, cached per worker."""
    from . import ops
    from .errors import AudioError
    from .soundfont import render_note

    key = (str(model.path), spec)
    if key not in _SOURCES:
        if spec.startswith("gm:"):
            program, pitch, seconds = parse_gm(spec)
            x = render_note(program, pitch, seconds=seconds, hold=min(3.0, 0.75 * seconds),
                            sample_rate=model.sample_rate)
            if float(abs(x).max()) < 1e-4:
                raise AudioError(f"soundfont note {spec} is silent")
            src = ops.encode_sound(model, audio.normalize_audio(x), pitch=pitch, name=spec)
        else:
            named = pitch_from_name(spec)
            src = ops.encode_sound(model, spec, pitch="auto" if named is None else named)
        _SOURCES[key] = src
    return _SOURCES[key]


def render_item(item, outdir):
    """Render one audio item and write it atomically; returns its metrics dict."""
    from . import ops

    started = time.perf_counter()
    s, p = item.settings, item.params
    model = _load_model(s["model"])
    opts = {"method": s["method"], "n_iter": s["iters"]}
    if item.kind == "interpolate":
        a, b = _source(model, item.sounds["a"]), _source(model, item.sounds["b"])
        r = ops.interpolate(model, a, b, p["alpha"], mode=p["mode"], pitch=p["pitch"], **opts)
    elif item.kind == "grid":
        corners = [_source(model, c) for c in item.sounds["corners"]]
        r = ops.mix_xy(model, corners, p["x"], p["y"], mode=p["mode"], pitch=p["pitch"], **opts)
    elif item.kind == "pitch":
        r = ops.render_pitch(model, _source(model, item.sounds["sound"]), p["pitch"], **opts)
    elif item.kind == "loop":
        seed = item.sounds["seed_sound"]
        r = ops.loop(model, None if seed is None else _source(model, seed), seconds=p["seconds"],
                     temperature=p["temperature"], seed=p["seed"], pitch=p["pitch"], **opts)
    elif item.kind == "reconstruct":
        r = ops.resynthesize(model, _source(model, item.sounds["sound"]), **opts)
    else:
        raise ValueError(f"not an audio item kind: {item.kind}")
    samples, rate = r.samples, model.sample_rate
    if s["sample_rate"] and s["sample_rate"] != rate:
        samples, rate = audio.resample(samples, rate, s["sample_rate"]), s["sample_rate"]
    samples = audio.normalize_audio(samples, mode=s["normalize"] or None, sample_rate=rate)
    audio.write(Path(outdir) / item.out, samples, rate, overwrite=True)
    metrics = {k: float(v) for k, v in r.metrics.items() if k != "render_ms"}
    metrics.update(render_ms=round((time.perf_counter() - started) * 1000, 1), seconds=len(samples) / rate,
                   sample_rate=int(rate), pitch=int(r.pitch))
    return metrics


def _render_safely(item, outdir):
    """(metrics, None) or (None, one-line reason): one bad item must not stop the batch."""
    try:
        return render_item(item, outdir), None
    except SpecsynthError as exc:
        return None, str(exc)
    except Exception as exc:  # a bug or an odd input: report it on one line, keep going
        text = str(exc).strip().splitlines()
        return None, f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _write_sfz_item(item, outdir, failed):
    from .export import write_sfz

    bad = [d for d in item.depends if d in failed or not (Path(outdir) / d).is_file()]
    if bad:
        return None, f"not written: {len(bad)} of its samples failed ({bad[0]})"
    try:
        write_sfz(Path(outdir) / item.out, item.params["regions"], comment=item.params["comment"])
    except SpecsynthError as exc:
        return None, str(exc)
    return {"regions": len(item.params["regions"])}, None


# ---------------------------------------------------------------------------------------------
# Running a plan


def _describe(item):
    shown = {k: v for k, v in item.params.items() if k not in ("regions", "comment") and v is not None}
    for key in ("a", "b", "sound", "seed_sound"):
        if isinstance(shown.get(key), str) and not shown[key].startswith("gm:"):
            shown[key] = Path(shown[key]).name
    if "corners" in shown:
        shown["corners"] = ",".join(c if c.startswith("gm:") else Path(c).name for c in shown["corners"])
    text = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    if item.kind == "sfz":
        text = f"{len(item.depends)} samples"
    return f"job {item.job} {item.kind}" + (f"  {text}" if text else "")


def print_plan(plan, *, file=None):
    """One line per output: action, path, job and key parameters; then a count."""
    file = file or sys.stdout
    for item in plan.items:
        print(f"{plan.actions[item.out]:7s} {item.out}  {_describe(item)}", file=file)
    n = len(plan.to_render)
    print(f"dry run: {len(plan.items)} outputs, {n} to render, {len(plan.items) - n} already done, "
          f"in {plan.outdir}", file=file)


def _entry(item, status, metrics=None, error=None):
    entry = {"job": item.job, "kind": item.kind, "status": status, "params": item.params,
             "settings": item.settings, "fingerprint": item.fingerprint}
    if metrics is not None:
        entry["metrics"] = metrics
        entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if error is not None:
        entry["error"] = error
    return entry


def _remove_stale_temps(outdir, items):
    """Hidden temporary files a killed run left beside the outputs it was writing."""
    for out in [INDEX, *(item.out for item in items)]:
        path = Path(outdir) / out
        for tmp in path.parent.glob(f".{path.name}.*.part") if path.parent.is_dir() else ():
            tmp.unlink(missing_ok=True)


def run_manifest(manifest, *, outdir=None, workers=1, dry_run=False, overwrite=False, model_override=None):
    """Validate, plan and render a manifest; the function behind ``specsynth render``.

    Parameters
    ----------
    manifest : str or Path
        The TOML manifest.
    outdir : str, Path or None
        Output folder; default ``out/`` beside the manifest.
    workers : int
        Processes to render in (spawned, each loading the model once); 1 renders in-process.
    dry_run : bool
        Print the plan and write nothing.
    overwrite : bool
        Render everything again, replacing existing files.
    model_override : str, Path or None
        Use this bundle for every job.

    Returns
    -------
    int
        0 if every output is done, 1 if some item failed, 2 if the manifest is invalid (every
        problem is printed to stderr, one line each, and nothing is written).
    """
    try:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ManifestProblems([f"--workers must be an int >= 1, got {workers!r}"])
        plan = plan_manifest(manifest, outdir=outdir, overwrite=overwrite, model_override=model_override)
    except ManifestProblems as exc:
        for line in exc.problems:
            sys.stderr.write(f"specsynth: {line}\n")
        return 2
    if dry_run:
        print_plan(plan)
        return 0
    return render_plan(plan, workers=workers)


def render_plan(plan, *, workers=1):
    """Render a :class:`Plan`'s pending items, updating the index after each; returns 0 or 1."""
    from tqdm import tqdm

    outdir = files.check_writable_dir(plan.outdir)
    todo = plan.to_render
    skipped = len(plan.items) - len(todo)
    index = dict(plan.index)
    for item in todo:
        index[item.out] = _entry(item, "pending")
    _write_index(outdir, plan.manifest.absolute(), index)
    _remove_stale_temps(outdir, todo)
    sounds = [i for i in todo if i.kind != "sfz"]
    exports = [i for i in todo if i.kind == "sfz"]
    failed, rendered = {}, 0
    bar = tqdm(total=len(todo), unit="file", file=sys.stderr, desc="render", mininterval=0.5)

    def finish(item, metrics, error):
        nonlocal rendered
        if error is None:
            rendered += 1
            index[item.out] = _entry(item, "done", metrics)
        else:
            failed[item.out] = error
            index[item.out] = _entry(item, "failed", error=error)
            bar.write(f"specsynth: failed: {item.out}: {error}", file=sys.stderr)
        _journal(outdir, item.out, index[item.out])
        bar.update(1)

    model_paths = sorted({i.settings["model"] for i in sounds})
    workers = min(workers, max(1, len(sounds)))
    try:
        if workers == 1:
            if sounds:
                _init_worker(model_paths)
            for item in sounds:
                finish(item, *_render_safely(item, outdir))
        else:
            _render_in_pool(sounds, outdir, workers, model_paths, finish)
        for item in exports:
            finish(item, *_write_sfz_item(item, outdir, failed))
    finally:
        bar.close()
        _write_index(outdir, plan.manifest.absolute(), index)
    _print_made(plan, failed)
    print(f"rendered {rendered}, skipped {skipped} (already done), failed {len(failed)}; output folder {outdir}")
    return 1 if failed else 0


def _print_made(plan, failed):
    """What each job made and where: one line per job."""
    by_job = {}
    for item in plan.items:
        by_job.setdefault((item.job, item.kind if item.kind == "sfz" else "audio"), []).append(item)
    for (job, what), items in sorted(by_job.items()):
        ok = [i for i in items if i.out not in failed]
        folders = sorted({str(Path(i.out).parent) for i in ok})
        where = ", ".join(str(plan.outdir / f) for f in folders) if folders else "-"
        kind = "SFZ instrument" if what == "sfz" else items[0].kind
        print(f"  job {job} ({kind}): {len(ok)} of {len(items)} files in {where}")


def _render_in_pool(items, outdir, workers, model_paths, finish):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(model_paths,)) as pool:
        futures = {pool.submit(_render_safely, item, str(outdir)): item for item in items}
        for future in as_completed(futures):
            try:
                metrics, error = future.result()
            except Exception as exc:  # a worker died (e.g. killed for memory)
                metrics, error = None, f"worker failed ({type(exc).__name__}: {exc})"
            finish(futures[future], metrics, error)
