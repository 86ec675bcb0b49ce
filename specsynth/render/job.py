"""One job rendered on its own, into a folder or a zip in memory: the app's export.

The files are those ``specsynth render`` makes for the same ``[[job]]`` under OUTDIR (the
kind's :meth:`~specsynth.render.kinds.Kind.expand` names them, :func:`~.runner.render_item`
renders and writes each, :func:`~.kinds.write_export` writes the SFZ instruments), without the
index: a one-off export, not a resumable batch.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from ..errors import SpecsynthError
from .kinds import check_out, kind_named, write_export
from .manifest import DEFAULTS
from .runner import render_item


def job_items(kind, values, *, model, method=DEFAULTS["method"], iters=None, fmt="wav",
              sample_rate=None, normalize=DEFAULTS["normalize"]):
    """The items of one job: ``values`` are its keys (``out`` among them), already checked by the
    caller; missing optional keys take the kind's defaults."""
    k = kind_named(kind)
    if k is None:
        raise SpecsynthError(f"no job kind {kind!r}")
    values = {**k.optional, **values}
    values["out"] = check_out(values["out"], "key 'out'", fmt if k.single_file else None)
    settings = {"model": str(model.path), "method": method, "iters": iters, "sample_rate": sample_rate,
                "normalize": normalize}
    return k.expand(1, values, settings, fmt)


def render_job(kind, values, model, folder, *, source, **settings):
    """Render a job's items into ``folder``: audio first, then the instruments that list it.
    ``source(spec)`` encodes a sound named in ``values``. Returns the written paths, relative to
    ``folder`` (forward slashes), in the order written."""
    items = job_items(kind, values, model=model, **settings)
    written, failed = [], {}
    for item in [i for i in items if not i.depends]:
        render_item(item, folder, model=model, source=source)
        written.append(item.out)
    for item in [i for i in items if i.depends]:
        _, error = write_export(item, folder, failed)
        if error:
            raise SpecsynthError(f"{item.out}: {error}")
        written.append(item.out)
    return written


def job_zip(kind, values, model, *, source, **settings):
    """:func:`render_job` into a temporary folder, returned as the bytes of a zip of its files."""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="specsynth-export-") as folder:
        written = render_job(kind, values, model, folder, source=source, **settings)
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in written:
                zf.write(Path(folder) / name, name)
    return buf.getvalue()
