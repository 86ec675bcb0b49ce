"""Reading a manifest and validating it into a :class:`Plan` (see :mod:`specsynth.render`).

Every problem is collected, one line each (``MANIFEST: job N (kind): key 'k' ...``), and raised
together as :class:`ManifestProblems` before anything is written.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import audio, limits, phase
from ..errors import ConfigError, ManifestError
from ..files import why_unreadable
from .index import decide, load_index
from .kinds import KINDS, kind_named

DEFAULTS = {"model": "pretrained", "method": phase.DEFAULT_METHOD, "iters": None, "sample_rate": None,
            "normalize": "peak", "format": "wav"}
# Settings of the whole run, allowed in [defaults] only: how it renders, not what (not fingerprinted)
EXECUTORS = ("process", "ray")
RUN_DEFAULTS = {"executor": "process"}


class ManifestProblems(ManifestError):
    """Every problem found in a manifest (``problems``, one line each); the message is the first."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(self.problems[0])


@dataclass
class Plan:
    """A validated manifest: its items, the output folder, the index read from it, and what to do
    with each item (``actions[out]`` is ``"render"``, ``"skip"``, ``"resume"`` or ``"stale"``).

    ``broken`` maps each bundle that fails :func:`~specsynth.model.bundle.check_bundle` to the
    reason: its jobs' items fail up front (recorded as failed), the other jobs still render."""

    manifest: Path
    outdir: Path
    items: list
    index: dict
    actions: dict
    executor: str = RUN_DEFAULTS["executor"]
    broken: dict = field(default_factory=dict)

    @property
    def to_render(self):
        return [item for item in self.items if self.actions[item.out] != "skip"]


def check_model(value, name, base):
    """A bundle folder (relative to ``base``) or "pretrained" -> the bundle's absolute path."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a model bundle folder or 'pretrained', got {value!r}")
    from ..model.bundle import resolve  # no TensorFlow at import

    path = resolve(value) if value == "pretrained" else (base / value).absolute()
    if not (path / "config.json").exists():  # a malformed one is check_bundle's: see Plan.broken
        raise ConfigError(f"{name} names no model bundle: {path} is not a folder with config.json")
    return str(path)


def _read_toml(manifest, label):
    problem = why_unreadable(manifest)
    if problem == "no such file":
        raise ManifestProblems([f"{label}: no such manifest file"])
    if problem is not None:
        raise ManifestProblems([f"{label}: cannot be read ({problem})"])
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
    formats = tuple(ext.lstrip(".") for ext in audio.WRITE_FORMATS)
    checks = {
        "model": lambda v, name: check_model(v, name, base),
        "method": lambda v, name: limits.check_choice(v, phase.METHODS, name),
        "iters": limits.check_iters,
        "sample_rate": lambda v, name: limits.check_int(v, audio.MIN_RATE, audio.MAX_RATE, name, "an int (Hz)"),
        "normalize": lambda v, name: limits.check_choice(v, ("peak", "loudness", False), name),
        "format": lambda v, name: limits.check_choice(v, formats, name),
    }
    settings = {}
    for key, check in checks.items():
        if key not in table or (key == "model" and model_override is not None):
            continue
        try:
            settings[key] = check(table[key], f"key '{key}'")
        except ConfigError as exc:
            problems.append(f"{where}: {exc}")
    return settings


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
    items, job_kinds, run_settings = _validate(data, label, base, model_override, problems)

    def job_label(item):
        return f"{label}: job {item.job} ({job_kinds[item.job]})"

    _check_outputs(items, outdir, job_label, problems)
    index = {}
    try:
        index = load_index(outdir)
    except ManifestError as exc:
        if not overwrite:
            problems.append(str(exc))
    actions = decide(items, outdir, index, overwrite, job_label, problems)
    if problems:
        raise ManifestProblems(problems)
    return Plan(manifest, outdir, items, index, actions, broken=_broken_bundles(items), **run_settings)


def _broken_bundles(items):
    """{bundle path: why it is unusable} for the bundles the items use that fail check_bundle."""
    from ..errors import BundleError
    from ..model.bundle import check_bundle  # no TensorFlow at import

    broken = {}
    for path in sorted({item.settings["model"] for item in items if not item.depends}):
        try:
            check_bundle(path)
        except BundleError as exc:
            broken[path] = str(exc)
    return broken


def _validate(data, label, base, model_override, problems):
    """Check the parsed manifest's tables and jobs; returns (items, {position: kind name}, run settings)."""
    for key in data:
        if key not in ("defaults", "job"):
            problems.append(f"{label}: unknown table or key '{key}' (a manifest has [defaults] and [[job]] entries)")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(f"{label}: 'defaults' must be a table")
        defaults = {}
    for key in defaults:
        if key not in DEFAULTS and key not in RUN_DEFAULTS:
            problems.append(f"{label}: defaults: unknown key '{key}' (allowed: {', '.join([*DEFAULTS, *RUN_DEFAULTS])})")
    run_settings = {}
    if "executor" in defaults:
        try:
            run_settings["executor"] = limits.check_choice(defaults["executor"], EXECUTORS, "key 'executor'")
        except ConfigError as exc:
            problems.append(f"{label}: defaults: {exc}")
    override = {}
    if model_override is not None:
        try:
            override["model"] = check_model(str(model_override), "model override", Path.cwd())
        except ConfigError as exc:
            problems.append(f"{label}: {exc}")
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
        kind = kind_named(job.get("kind"))
        if kind is None:
            problems.append(f"{label}: job {position}: key 'kind' must be one of {', '.join(KINDS)}, "
                            f"got {job['kind']!r}" if "kind" in job else f"{label}: job {position}: key 'kind' is missing")
            continue
        where = f"{label}: job {position} ({kind.name})"
        job_kinds[position] = kind.name
        for key in job:
            if key not in ("kind", *kind.required, *kind.optional, *DEFAULTS):
                problems.append(f"{where}: unknown key '{key}' (allowed: {', '.join((*kind.required, *kind.optional))}, "
                                f"and the defaults' keys)")
        settings = {**base_settings, **_check_settings(job, where, base, problems, model_override), **override}
        values = kind.check_job(job, where, base, settings["format"], problems)
        if values is None:
            continue
        if "model" not in defaults and "model" not in job and not override:
            try:  # the built-in default, "pretrained": checked once, for the jobs that use it
                settings["model"] = check_model(settings["model"], "key 'model' (default 'pretrained')", base)
            except ConfigError as exc:
                if not any("default 'pretrained'" in line for line in problems):
                    problems.append(f"{where}: {exc}")
                continue
        item_settings = {k: settings[k] for k in DEFAULTS if k != "format"}
        items.extend(kind.expand(position, values, item_settings, settings["format"]))
    return items, job_kinds, run_settings
