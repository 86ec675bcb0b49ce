"""Batch rendering from a TOML manifest: validation, planning, workers and a resumable output index.

The package: :mod:`.manifest` reads and validates a manifest, :mod:`.kinds` holds one class per job
kind, :mod:`.index` the output index and resume rules, :mod:`.runner` renders a plan (in-process
or in a process pool), :mod:`.ray_executor` renders it as Ray tasks (imported only when chosen).

A manifest has an optional ``[defaults]`` table and ``[[job]]`` entries::

    [defaults]
    model = "pretrained"        # a bundle folder (relative to the manifest) or "pretrained"
    method = "lws+fgla"         # a phase method: one of specsynth.phase.METHODS
    iters = 8                   # phase iterations (default: the method's own)
    sample_rate = 44100         # output rate in Hz (default: the model's; resampled with soxr)
    normalize = "peak"          # "peak" | "loudness" | false (keep the level the operation made)
    format = "wav"              # "wav" | "flac"
    executor = "process"        # "process" | "ray": where items render (docs/scaling.md); the
                                # run's setting, [defaults] only, not part of any fingerprint

    [[job]]
    kind = "interpolate"        # a, b, steps, out; optional mode (linear|slerp), pitch
    a = "gm:42:48"              # a sound: a file, or a General MIDI soundfont note
    b = "sounds/flute_72.wav"
    steps = 5
    out = "cello_to_flute"      # -> OUTDIR/cello_to_flute/step_00.wav ... step_04.wav

Kinds: each is one class in :mod:`.kinds` (its keys, their checks, its outputs, its rendering);
``specsynth.render.KINDS`` lists them, and the README's manifest section names their keys. Any
job may also override the defaults' keys.

Grid corners are in :func:`specsynth.ops.xy_weights` order: (0,0), (1,0), (0,1), (1,1); ``xI_yJ``
is the point (I/(resolution-1), J/(resolution-1)). A single-file ``out`` ending in .wav or .flac
keeps that format; without an extension ``format``'s is added.

Sounds: a path (relative to the manifest's folder) or ``"gm:PROGRAM:PITCH[:SECONDS]"``, a note of
the General MIDI soundfont (default 4 s), peak-normalized. A sound's pitch label is known for
soundfont notes, read from NSynth-style file names (``cello_48.wav``), else estimated (specsynth.pitch.estimate_pitch).

Everything is validated before anything renders; every problem is reported on its own line as
``MANIFEST: job N (kind): key 'k' ...`` and the run exits with code 2, writing nothing (OUTDIR is
made only once the manifest is valid). A model bundle whose files are malformed
(:func:`specsynth.model.bundle.check_bundle`) is not such a problem: one bad bundle would
otherwise hold back every job of a long batch, so it fails only its own jobs, up front, with one
``key 'model'`` line each; their outputs are recorded as failed, the other jobs render, and the
run exits with code 1.

One render at a time writes into an OUTDIR: it holds ``OUTDIR/.specsynth.lock``
(:class:`specsynth.files.folder_lock`) and plans again once it has it; a second render is refused
with code 2, or with ``wait`` waits for the lock. Ctrl-C or SIGTERM cancels what is queued and
kills the workers at once; what finished is in the index. Workers exit when the render process
dies, however it dies.

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

from .index import INDEX, INDEX_VERSION, JOURNAL, load_index
from .kinds import ALIASES, KINDS, Item, Kind, register
from .manifest import DEFAULTS, ManifestProblems, Plan, plan_manifest
from .runner import print_plan, render_item, render_plan, run_manifest

__all__ = [
    "ALIASES", "DEFAULTS", "INDEX", "INDEX_VERSION", "JOURNAL", "KINDS", "Item", "Kind", "ManifestProblems",
    "Plan", "load_index", "plan_manifest", "print_plan", "register", "render_item", "render_plan", "run_manifest",
]
