"""The output folder's index: ``index.json``, its journal, fingerprints and the resume decisions.

See the package docstring (:mod:`specsynth.render`) for the index format and the resume rules.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from .. import files
from ..errors import ManifestError

INDEX = "index.json"
JOURNAL = ".index.journal"  # finished items since index.json was written; see journal
INDEX_VERSION = 1


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


def journal(outdir, out, entry):
    """Record one finished item in O(1): a line appended to the journal, merged by load_index.
    (Rewriting index.json after every item made a big batch quadratic in its size.)"""
    with open(Path(outdir) / JOURNAL, "a") as fh:
        fh.write(json.dumps([out, entry]) + "\n")


def write_index(outdir, manifest, outputs):
    """Replace ``OUTDIR/index.json`` atomically with ``outputs``; the journal is folded into it."""
    data = {"format_version": INDEX_VERSION, "manifest": str(manifest), "outputs": dict(sorted(outputs.items()))}
    with files.atomic_output(Path(outdir) / INDEX, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1))
    (Path(outdir) / JOURNAL).unlink(missing_ok=True)  # everything it held is in index.json now


def entry(item, status, metrics=None, error=None):
    """An item's index entry."""
    entry = {"job": item.job, "kind": item.kind, "status": status, "params": item.params,
             "settings": item.settings, "fingerprint": item.fingerprint}
    if metrics is not None:
        entry["metrics"] = metrics
        entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if error is not None:
        entry["error"] = error
    return entry


def _file_stamp(spec):
    if spec is None or spec.startswith("gm:"):
        return spec
    try:
        st = os.stat(spec)
        return [spec, st.st_size, st.st_mtime_ns]
    except OSError:
        return [spec, None]


def fingerprint(item):
    """A hash of everything that determines an item's output: its kind, parameters, settings,
    input files' sizes and times, the model bundle's time and the outputs it depends on."""
    sounds = {k: ([_file_stamp(s) for s in v] if isinstance(v, list) else _file_stamp(v))
              for k, v in item.sounds.items()}
    model = item.settings.get("model")
    try:
        model_stamp = os.stat(Path(model) / "config.json").st_mtime_ns if model else None
    except OSError:
        model_stamp = None
    blob = json.dumps([item.kind, item.params, item.settings, sounds, model_stamp, item.depends], sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def decide(items, outdir, index, overwrite, job_label, problems):
    """What to do with each item given the files on disk and the index: {out: action}, one of
    ``"render"``, ``"skip"``, ``"resume"`` or ``"stale"``. Sets each item's fingerprint; appends
    to ``problems`` the outputs in the way and the existing files the index does not list."""
    actions, clashes = {}, {}
    for item in items:
        item.fingerprint = fingerprint(item)
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


def remove_stale_temps(outdir, items):
    """Hidden temporary files a killed run left beside the outputs it was writing."""
    for out in [INDEX, *(item.out for item in items)]:
        path = Path(outdir) / out
        for tmp in path.parent.glob(f".{path.name}.*.part") if path.parent.is_dir() else ():
            tmp.unlink(missing_ok=True)
