"""Job kinds: one class per kind of ``[[job]]``, registered in :data:`KINDS`.

A kind owns its keys (required, and optional with their defaults), the checks of those keys,
its expansion into items (one per output file) and the rendering of an item. Adding a kind is
one class here, decorated with :func:`register`, and a line in the README's manifest section.
Kinds that export an instrument add its items with :func:`sfz_item`; they are written after the
samples they list (their ``depends``), by :func:`write_export`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import audio, limits
from ..errors import ConfigError, SpecsynthError
from ..files import why_unreadable
from ..pitch import UNPITCHED
from .index import INDEX

KINDS = {}  # name -> Kind, in the order they are registered
ALIASES = {"reconstruct": "resynthesize"}  # older manifests' names; the index keeps the new one
SFZ = "sfz"  # the kind of an exported instrument's item in a plan and in the index


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


def register(cls):
    """Class decorator: make a :class:`Kind` available to manifests under ``cls.name``."""
    KINDS[cls.name] = cls()
    return cls


def kind_named(name):
    """The registered kind called ``name`` (or an alias of it), or None."""
    return KINDS.get(ALIASES.get(name, name)) if isinstance(name, str) else None


# ---------------------------------------------------------------------------------------------
# Checks of job keys: each takes (value, name) and returns the normalized value or raises
# ConfigError with a message starting with ``name`` (e.g. "key 'steps' must be ...").


def check_sound(value, name, base):
    """A sound spec -> ``"gm:..."`` unchanged, or an absolute file path (which must exist)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a sound: a file path or 'gm:PROGRAM:PITCH', got {value!r}")
    if limits.is_gm(value):
        limits.parse_gm(value, name)
        return value
    path = (base / value).absolute()
    problem = why_unreadable(path)
    if problem == "no such file":
        raise ConfigError(f"{name} names a file that does not exist: {path}")
    if problem is not None:
        raise ConfigError(f"{name} names a file that cannot be read ({problem}): {path!r}")
    if not path.is_file():
        raise ConfigError(f"{name} must name an audio file, but {path} is a folder")
    return str(path)


def check_pitches(value, name):
    lo, hi = limits.MIDI
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{name} must be a non-empty list of MIDI notes (ints {lo}..{hi}), got {value!r}")
    for p in value:
        try:
            limits.check_int(p, lo, hi, name)
        except ConfigError:
            raise ConfigError(f"{name} must be a list of MIDI notes (ints {lo}..{hi}), got {p!r} in it") from None
    if len(set(value)) != len(value):
        raise ConfigError(f"{name} must not repeat a pitch, got {value!r}")
    return sorted(value)


def check_pitch(value, name):
    return limits.check_int(value, limits.MIDI[0], UNPITCHED, name)


def check_mode(value, name):
    return limits.check_choice(value, ("linear", "slerp"), name)


def check_export(value, name):
    return limits.check_choice(value, (SFZ,), name)


def check_out(value, name, single_file_format=None):
    """``out`` as a relative posix path inside OUTDIR; a single file gets ``single_file_format``'s
    extension unless it has one of the written formats."""
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise ConfigError(f"{name} must be a relative path inside the output folder, got {value!r}")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ConfigError(f"{name} must be a relative path inside the output folder (no '..', not absolute), "
                          f"got {value!r}")
    if path.parts[0] == INDEX:
        raise ConfigError(f"{name} must not be {INDEX}: that name is the output folder's index")
    if single_file_format and path.suffix.lower() not in audio.WRITE_FORMATS:
        if path.suffix:
            raise ConfigError(f"{name} must end in .wav or .flac (or have no extension), got {value!r}")
        path = path.with_name(f"{path.name}.{single_file_format}")
    return path.as_posix()


class Kind:
    """A kind of job. Subclasses set ``name``, ``required`` (``out`` among them) and ``optional``
    ({key: default}), and define :meth:`key_checks`, :meth:`expand` and :meth:`render`."""

    name = ""
    required = ()
    optional = {}
    single_file = False  # ``out`` is the output file itself, not a folder of outputs

    def key_checks(self, base):
        """{key: check(value, name)} for every key but ``out``; ``base`` is the manifest's folder."""
        raise NotImplementedError

    def check_values(self, values):
        """A problem between valid keys, as the text after "job N (kind): ", or None."""
        return None

    def check_job(self, job, where, base, fmt, problems):
        """Validate a job's own keys; returns {key: normalized value}, or None if any is invalid."""
        checks = {**self.key_checks(base),
                  "out": lambda v, name: check_out(v, name, fmt if self.single_file else None)}
        values, ok = {}, True
        for key in self.required:
            if key not in job:
                problems.append(f"{where}: key '{key}' is missing")
                ok = False
        for key in (*self.required, *self.optional):
            if key in job:
                try:
                    values[key] = checks[key](job[key], f"key '{key}'")
                except ConfigError as exc:
                    problems.append(f"{where}: {exc}")
                    ok = False
            elif key in self.optional:
                values[key] = self.optional[key]
        problem = self.check_values(values) if ok else None
        if problem:
            problems.append(f"{where}: {problem}")
        return values if ok and not problem else None

    def item(self, position, settings, **fields):
        return Item(job=position, kind=self.name, settings=settings, **fields)

    def expand(self, position, values, settings, ext):
        """A validated job -> its items; ``ext`` is the audio files' extension."""
        raise NotImplementedError

    def render(self, model, item, source, opts):
        """An :class:`specsynth.ops` result for ``item``; ``source(spec)`` encodes a sound,
        ``opts`` are the phase method's keyword arguments."""
        raise NotImplementedError


def sfz_item(position, settings, out, samples, comment):
    """The item of an SFZ instrument at ``out`` mapping ``samples`` ([(path relative to out's
    folder, pitch)]); it depends on those samples, so it is written after them."""
    regions = [{"sample": sample, "pitch": pitch} for sample, pitch in samples]
    folder = PurePosixPath(out).parent.as_posix()
    return Item(job=position, kind=SFZ, out=out, settings=settings, params={"regions": regions, "comment": comment},
                depends=[f"{folder}/{r['sample']}" for r in regions])


def write_export(item, outdir, failed):
    """Write an exported instrument once its samples exist: (metrics, None) or (None, reason)."""
    from ..export import write_sfz

    bad = [d for d in item.depends if d in failed or not (Path(outdir) / d).is_file()]
    if bad:
        return None, f"not written: {len(bad)} of its samples failed ({bad[0]})"
    try:
        write_sfz(Path(outdir) / item.out, item.params["regions"], comment=item.params["comment"])
    except SpecsynthError as exc:
        return None, str(exc)
    return {"regions": len(item.params["regions"])}, None


def describe_kind(kind):
    """How a plan's summary names the files of an item kind."""
    return "SFZ instrument" if kind == SFZ else kind


# ---------------------------------------------------------------------------------------------
# The kinds


def _sound(base):
    return lambda value, name: check_sound(value, name, base)


@register
class Interpolate(Kind):
    """Two sounds and the steps between them -> out/step_00.wav ..."""

    name = "interpolate"
    required = ("a", "b", "steps", "out")
    optional = {"mode": "linear", "pitch": None}

    def key_checks(self, base):
        return {"a": _sound(base), "b": _sound(base), "steps": limits.check_steps, "mode": check_mode,
                "pitch": check_pitch}

    def expand(self, position, v, settings, ext):
        width = max(2, len(str(v["steps"] - 1)))
        return [self.item(position, settings, out=f"{v['out']}/step_{i:0{width}d}.{ext}",
                          sounds={"a": v["a"], "b": v["b"]},
                          params={"alpha": i / (v["steps"] - 1), "a": v["a"], "b": v["b"], "mode": v["mode"],
                                  "pitch": v["pitch"]})
                for i in range(v["steps"])]

    def render(self, model, item, source, opts):
        from .. import ops

        p = item.params
        return ops.interpolate(model, source(item.sounds["a"]), source(item.sounds["b"]), p["alpha"],
                               mode=p["mode"], pitch=p["pitch"], **opts)


@register
class Grid(Kind):
    """Four corners mixed on an XY grid -> out/x0_y0.wav ... (out/p060/x0_y0.wav with pitches)."""

    name = "grid"
    required = ("corners", "resolution", "out")
    optional = {"pitches": None, "mode": "linear", "export": None}

    def key_checks(self, base):
        def corners(value, name):
            if not isinstance(value, list) or len(value) != 4:
                raise ConfigError(f"{name} must be a list of 4 sounds, got {value!r}")
            return [check_sound(v, f"{name} sound {i}", base) for i, v in enumerate(value, 1)]

        return {"corners": corners, "resolution": limits.check_resolution, "pitches": check_pitches,
                "mode": check_mode, "export": check_export}

    def check_values(self, values):
        if values["export"] == SFZ and not values["pitches"]:
            return "key 'export' needs 'pitches' (the notes the instrument spans)"
        return None

    def expand(self, position, v, settings, ext):
        out, n, items = v["out"], v["resolution"], []
        for pitch in v["pitches"] or [None]:
            folder = out if pitch is None else f"{out}/p{pitch:03d}"
            for j in range(n):
                for i in range(n):
                    items.append(self.item(position, settings, out=f"{folder}/x{i}_y{j}.{ext}",
                                           sounds={"corners": v["corners"]},
                                           params={"x": i / (n - 1), "y": j / (n - 1), "pitch": pitch,
                                                   "mode": v["mode"], "corners": v["corners"]}))
        if v["export"] == SFZ:
            name = PurePosixPath(out).name
            for j in range(n):
                for i in range(n):
                    items.append(sfz_item(position, settings, f"{out}/x{i}_y{j}.sfz",
                                          [(f"p{p:03d}/x{i}_y{j}.{ext}", p) for p in v["pitches"]],
                                          f"made by specsynth render: {name}, x={i / (n - 1):g} y={j / (n - 1):g}"))
        return items

    def render(self, model, item, source, opts):
        from .. import ops

        p = item.params
        corners = [source(c) for c in item.sounds["corners"]]
        return ops.mix_xy(model, corners, p["x"], p["y"], mode=p["mode"], pitch=p["pitch"], **opts)


@register
class Loop(Kind):
    """A loop grown by the prior, from a seed sound or from nothing -> out (a file)."""

    name = "loop"
    required = ("seconds", "out")
    optional = {"seed_sound": None, "temperature": 0.8, "seed": 0, "pitch": None}
    single_file = True

    def key_checks(self, base):
        return {"seconds": limits.check_loop_seconds, "seed_sound": _sound(base),
                "temperature": limits.check_temperature, "seed": limits.check_seed, "pitch": check_pitch}

    def expand(self, position, v, settings, ext):
        return [self.item(position, settings, out=v["out"], sounds={"seed_sound": v["seed_sound"]},
                          params={k: v[k] for k in ("seconds", "temperature", "seed", "pitch", "seed_sound")})]

    def render(self, model, item, source, opts):
        from .. import ops

        p, seed = item.params, item.sounds["seed_sound"]
        return ops.loop(model, None if seed is None else source(seed), seconds=p["seconds"],
                        temperature=p["temperature"], seed=p["seed"], pitch=p["pitch"], **opts)


@register
class Pitch(Kind):
    """A sound rendered at several pitches -> out/note_060.wav ... (and out/OUT.sfz)."""

    name = "pitch"
    required = ("sound", "pitches", "out")
    optional = {"export": None}

    def key_checks(self, base):
        return {"sound": _sound(base), "pitches": check_pitches, "export": check_export}

    def expand(self, position, v, settings, ext):
        out = v["out"]
        items = [self.item(position, settings, out=f"{out}/note_{p:03d}.{ext}", sounds={"sound": v["sound"]},
                           params={"pitch": p, "sound": v["sound"]})
                 for p in v["pitches"]]
        if v["export"] == SFZ:
            name = PurePosixPath(out).name
            items.append(sfz_item(position, settings, f"{out}/{name}.sfz",
                                  [(f"note_{p:03d}.{ext}", p) for p in v["pitches"]],
                                  f"made by specsynth render: {name}"))
        return items

    def render(self, model, item, source, opts):
        from .. import ops

        return ops.render_pitch(model, source(item.sounds["sound"]), item.params["pitch"], **opts)


@register
class Resynthesize(Kind):
    """A sound sent through the model (encode, decode) -> out (a file)."""

    name = "resynthesize"
    required = ("sound", "out")
    optional = {}
    single_file = True

    def key_checks(self, base):
        return {"sound": _sound(base)}

    def expand(self, position, v, settings, ext):
        return [self.item(position, settings, out=v["out"], sounds={"sound": v["sound"]},
                          params={"sound": v["sound"]})]

    def render(self, model, item, source, opts):
        from .. import ops

        return ops.resynthesize(model, source(item.sounds["sound"]), **opts)
