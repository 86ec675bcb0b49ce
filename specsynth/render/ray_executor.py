"""Rendering a plan's audio items as Ray tasks, on one machine or a cluster (``--executor ray``).

Imported only when the Ray executor is chosen, so ``import ray`` never slows the CLI's start.

Each Ray actor (one CPU) loads every model of the run once, like a process-pool worker, and
renders items with the same code (:func:`specsynth.render.runner._render_safely`). The driver
(the ``specsynth render`` process) keeps everything else: validation, planning, fingerprints,
the index and its journal, resume, the progress bar and the summary.

Where outputs are written: **by the driver**. A worker renders an item into its own local
temporary folder, reads the file back and returns its bytes; the driver writes them atomically to
``OUTDIR/item.out`` and only then journals the item as done. So the output folder need not be
shared with, or even reachable from, the other machines; a node that dies mid-write leaves no
partial file in OUTDIR; and "the file exists and the index says done" is decided by one process,
as with the pool. The price is that every output travels through Ray's object store to the
driver (about 128 KB for a 4 s 16 kHz 16-bit sound), which bounds a run by the driver's network
and disk (see docs/scaling.md). The models and input sound files, by contrast, are read by the
workers: they must exist at the same absolute paths on every node (shared storage, or copied);
soundfont notes need nothing.

Failures: a failure of the machine (the actor's process dies, a node is lost, a worker is killed
for memory) is retried by Ray: actors are restarted (``max_restarts``, reloading the models) and
their unfinished tasks run again (``max_task_retries``). When the retries are spent, the item is
reported as failed ("worker failed ..."), as the pool does. A failure of the input (a broken
sound file, a silent note) is not retried: it comes back as the ``(metrics, error)`` result and
is reported as a failed item at once.

Ctrl-C: results already back are recorded, outstanding tasks are cancelled and the actors ended,
then KeyboardInterrupt goes on to the caller (the index keeps the rest ``pending``).
"""
from __future__ import annotations

import tempfile
from collections import deque
from pathlib import Path

import ray

from .. import files
from ..errors import SpecsynthError

MAX_RESTARTS = 3       # an actor whose process or node dies is started again this many times
MAX_TASK_RETRIES = 3   # and the tasks it had not finished are run again this many times
IN_FLIGHT = 2          # tasks queued per actor: the next one starts while the driver writes files
CHUNK = 8              # items per task: Ray's per-task cost is paid once for several sounds


@ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)
class RenderActor:
    """A render worker: loads each model once, renders items into a local folder, returns bytes."""

    def __init__(self, model_paths):
        from .runner import _init_worker

        _init_worker(model_paths)

    def render(self, items):
        """[(metrics, error, file bytes or None)] for a chunk of items; an input's failure is a result."""
        from .runner import _render_safely

        results = []
        with tempfile.TemporaryDirectory(prefix="specsynth-ray-") as scratch:
            for item in items:
                metrics, error = _render_safely(item, scratch)
                results.append((metrics, error, None if error else (Path(scratch) / item.out).read_bytes()))
        return results


def connect(address=None):
    """Join the Ray cluster at ``address`` (or RAY_ADDRESS), else start a local one; True if this
    call started or joined it (so the caller shuts it down), False if Ray was already up."""
    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return True


def cluster_cpus():
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def render_on_ray(items, outdir, workers, model_paths, finish, *, address=None):
    """Render ``items`` on Ray actors; ``finish(item, metrics, error)`` records each as it comes back.

    Parameters
    ----------
    items : list of Item
        Audio items (no exports).
    outdir : Path
        The output folder, on the driver's machine.
    workers : int or None
        Actors to start (one CPU each); None: one per CPU of the cluster.
    model_paths : list of str
        Bundles each actor loads once.
    finish : callable
        The runner's recorder (index entry, journal, progress bar).
    address : str or None
        A Ray cluster's address ("auto", "HOST:6379", "ray://HOST:10001"); None: RAY_ADDRESS, else local.
    """
    if not items:
        return
    started = connect(address)
    try:
        n = min(workers or cluster_cpus(), len(items))
        actors = [RenderActor.remote(model_paths) for _ in range(n)]
        _drive(actors, deque(items), Path(outdir), finish)
    finally:
        if started:
            ray.shutdown()


def _drive(actors, queue, outdir, finish):
    pending = {}  # ObjectRef -> (chunk of items, actor)
    # chunks no larger than an even share, so a small batch still spreads over every actor
    size = max(1, min(CHUNK, len(queue) // (IN_FLIGHT * len(actors))))

    def submit(actor):
        if queue:
            chunk = [queue.popleft() for _ in range(min(size, len(queue)))]
            pending[actor.render.remote(chunk)] = (chunk, actor)

    def record(ref):
        chunk, actor = pending.pop(ref)
        for item, result in zip(chunk, _results(ref, chunk)):
            finish(item, *_write(result, item, outdir))
        return actor

    try:
        for _ in range(IN_FLIGHT):
            for actor in actors:
                submit(actor)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            submit(record(ready[0]))
    except KeyboardInterrupt:
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in ready:  # finished before the interrupt: keep them
            record(ref)
        raise
    finally:
        for ref in pending:
            ray.cancel(ref)
        for actor in actors:
            ray.kill(actor, no_restart=True)


def _results(ref, chunk):
    """A finished task's [(metrics, error, bytes)], one per item of its chunk."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:  # the retries are spent: the machine's failure, reported
        reason = f"worker failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})"
        return [(None, reason, None)] * len(chunk)


def _write(result, item, outdir):
    """(metrics, error) for one rendered item, its file written atomically into OUTDIR."""
    metrics, error, data = result
    if error is not None:
        return None, error
    try:
        with files.atomic_output(outdir / item.out, overwrite=True) as tmp:
            Path(tmp).write_bytes(data)
    except SpecsynthError as exc:  # e.g. the driver's disk is full: this item fails, the run goes on
        return None, str(exc)
    return metrics, None
