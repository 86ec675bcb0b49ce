"""Running a plan: rendering items in-process or in a pool of spawned workers, the progress bar,
the printed plan and the per-job summary (see :mod:`specsynth.render`)."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .. import audio, files, limits
from ..errors import SpecsynthError
from ..pitch import pitch_from_name
from .index import entry, journal, remove_stale_temps, write_index
from .kinds import KINDS, describe_kind, write_export
from .manifest import EXECUTORS, ManifestProblems, plan_manifest

# Per process (each worker has its own): loaded once, used by every item that worker renders.
_MODELS = {}   # bundle path -> Model, or the exception loading it raised
_SOURCES = {}  # (bundle path, sound) -> ops.Source: a job's corners are encoded once per worker


def _init_worker(model_paths, parent=None):
    """Forget earlier runs' models and sounds, then load each model once (the pool's initializer).

    In a pool worker (``parent``: the rendering process's pid) Ctrl-C is the parent's to handle
    (the terminal sends it to the whole process group), and the worker exits when the parent dies.
    """
    if parent is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _exit_with_parent(parent)
    _MODELS.clear()
    _SOURCES.clear()
    for path in model_paths:
        try:
            _load_model(path)
        except SpecsynthError:
            pass  # remembered: each item that needs this model fails with the reason


def _exit_with_parent(parent):
    """End this process when ``parent`` dies, however it dies (SIGKILL included): the kernel's
    parent-death signal where Linux offers it, and a thread watching the parent pid everywhere."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _load_model(path):
    """The loaded bundle; a bundle that fails to load fails each of its items, not the whole run."""
    from .. import load

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
    from .. import ops
    from ..soundfont import render_gm

    key = (str(model.path), spec)
    if key not in _SOURCES:
        if limits.is_gm(spec):
            note = limits.parse_gm(spec)
            src = ops.encode_sound(model, render_gm(note, model.sample_rate), pitch=note.pitch, name=spec)
        else:
            named = pitch_from_name(spec)
            src = ops.encode_sound(model, spec, pitch="auto" if named is None else named)
        _SOURCES[key] = src
    return _SOURCES[key]


def render_item(item, outdir, *, model=None, source=None):
    """Render one audio item and write it atomically; returns its metrics dict.

    ``model`` and ``source(spec)`` (an encoded sound) default to the bundle the item's settings
    name and this process's encodings of its sound specs; the app passes its own.
    """
    started = time.perf_counter()
    s = item.settings
    model = model or _load_model(s["model"])
    r = KINDS[item.kind].render(model, item, source or (lambda spec: _source(model, spec)),
                                {"method": s["method"], "n_iter": s["iters"]})
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


def _describe(item):
    if item.depends:
        text = f"{len(item.depends)} samples"
    else:
        shown = {k: v for k, v in item.params.items() if v is not None}
        for key in item.sounds.keys() & shown.keys():  # files by their name; soundfont notes as written
            specs = shown[key] if isinstance(shown[key], list) else [shown[key]]
            shown[key] = ",".join(s if limits.is_gm(s) else Path(s).name for s in specs)
        text = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    return f"job {item.job} {item.kind}" + (f"  {text}" if text else "")


def print_plan(plan, *, file=None):
    """One line per output: action, path, job and key parameters; then a count."""
    file = file or sys.stdout
    for item in plan.items:
        action = "broken" if not item.depends and item.settings["model"] in plan.broken else plan.actions[item.out]
        print(f"{action:7s} {item.out}  {_describe(item)}", file=file)
    n = len(plan.to_render)
    print(f"dry run: {len(plan.items)} outputs, {n} to render, {len(plan.items) - n} already done, "
          f"in {plan.outdir}", file=file)


def run_manifest(manifest, *, outdir=None, workers=None, dry_run=False, overwrite=False, model_override=None,
                 executor=None, ray_address=None, wait=False):
    """Validate, plan and render a manifest; the function behind ``specsynth render``.

    Parameters
    ----------
    manifest, outdir, overwrite, model_override
        As for :func:`~specsynth.render.plan_manifest`.
    workers : int or None
        Processes to render in (spawned, each loading the model once); 1 renders in-process.
        With the Ray executor, actors to start. None: 1 process, or one actor per Ray CPU.
    dry_run : bool
        Print the plan and write nothing.
    executor : {"process", "ray"} or None
        Where items render: local processes, or Ray tasks (:mod:`.ray_executor`); None: the
        manifest's ``[defaults] executor``, else "process".
    ray_address : str or None
        The Ray cluster to join (None: RAY_ADDRESS, else a local Ray).
    wait : bool
        If another render holds OUTDIR's lock (:class:`specsynth.files.folder_lock`), wait for it
        rather than refuse.

    Returns
    -------
    int
        0 if every output is done, 1 if some item failed (a job whose model bundle is unusable
        fails up front, the others render), 2 if the manifest is invalid or the executor is not
        available (every problem is printed to stderr, one line each, and nothing is written, not
        even OUTDIR) or another render holds OUTDIR.
    """

    def plan():
        try:
            if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
                raise ManifestProblems([f"--workers must be an int >= 1, got {workers!r}"])
            if executor is not None and executor not in EXECUTORS:
                raise ManifestProblems([f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}"])
            planned = plan_manifest(manifest, outdir=outdir, overwrite=overwrite, model_override=model_override)
            if (executor or planned.executor) == "ray" and not dry_run:
                _check_ray()
            return planned
        except ManifestProblems as exc:
            for line in exc.problems:
                sys.stderr.write(f"specsynth: {line}\n")
            return None

    first = plan()
    if first is None:
        return 2
    if dry_run:
        print_plan(first)
        return 0
    with files.output_folder(first.outdir) as outdir, files.folder_lock(outdir, wait=wait):
        # planned again under the lock: a render that held it may have finished items meanwhile
        second = plan()
        return 2 if second is None else render_plan(second, workers=workers, executor=executor,
                                                     ray_address=ray_address)


def _check_ray():
    """Ray is an optional extra: say how to install it before anything is written."""
    import importlib

    try:
        importlib.import_module("ray")  # the Ray path only: the CLI's start stays fast
    except ImportError:
        raise ManifestProblems(['--executor ray needs Ray, which is not installed: pip install "specsynth[ray]"']) from None


def render_plan(plan, *, workers=None, executor=None, ray_address=None):
    """Render a :class:`Plan`'s pending items, updating the index after each; returns 0 or 1.

    Audio items render first (in ``workers`` processes, or on Ray when ``executor`` (default
    ``plan.executor``) is "ray"); exported instruments, which depend on them, are written after.
    Items of a bundle in ``plan.broken`` fail up front, one line per job.
    """
    from tqdm import tqdm

    outdir = files.check_writable_dir(plan.outdir)
    todo = plan.to_render
    skipped = len(plan.items) - len(todo)
    index = dict(plan.index)
    failed, rendered = _fail_broken(plan, todo, index), 0
    for item in todo:
        if item.out not in failed:
            index[item.out] = entry(item, "pending")
    write_index(outdir, plan.manifest.absolute(), index)
    remove_stale_temps(outdir, plan.items)
    sounds = [i for i in todo if not i.depends and i.out not in failed]
    exports = [i for i in todo if i.depends]
    bar = tqdm(total=len(todo), initial=len(failed), unit="file", file=sys.stderr, desc="render", mininterval=0.5)

    def finish(item, metrics, error):
        nonlocal rendered
        if error is None:
            rendered += 1
            index[item.out] = entry(item, "done", metrics)
        else:
            failed[item.out] = error
            index[item.out] = entry(item, "failed", error=error)
            bar.write(f"specsynth: failed: {item.out}: {error}", file=sys.stderr)
        journal(outdir, item.out, index[item.out])
        bar.update(1)

    model_paths = sorted({i.settings["model"] for i in sounds})
    try:
        with _terminate_as_interrupt():
            if (executor or plan.executor) == "ray":
                from .ray_executor import render_on_ray

                render_on_ray(sounds, outdir, workers, model_paths, finish, address=ray_address)
            elif (workers := min(workers or 1, max(1, len(sounds)))) == 1:
                if sounds:
                    _init_worker(model_paths)
                for item in sounds:
                    finish(item, *_render_safely(item, outdir))
            else:
                _render_in_pool(sounds, outdir, workers, model_paths, finish)
            for item in exports:
                finish(item, *write_export(item, outdir, failed))
    finally:
        bar.close()
        write_index(outdir, plan.manifest.absolute(), index)
    _print_made(plan, failed)
    print(f"rendered {rendered}, skipped {skipped} (already done), failed {len(failed)}; output folder {outdir}")
    return 1 if failed else 0


def _fail_broken(plan, todo, index):
    """Enter the items of unusable bundles as failed in ``index``, with one line per job on
    stderr; returns {out: reason} for them."""
    failed, reported = {}, set()
    for item in todo:
        reason = plan.broken.get(item.settings["model"]) if not item.depends else None
        if reason is None:
            continue
        failed[item.out] = f"model bundle unusable: {reason}"
        index[item.out] = entry(item, "failed", error=failed[item.out])
        if item.job not in reported:
            reported.add(item.job)
            sys.stderr.write(f"specsynth: {plan.manifest}: job {item.job} ({item.kind}): key 'model': {reason}; "
                             "its outputs are not rendered\n")
    return failed


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM stops a render as Ctrl-C does (workers stopped, the index written), in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_made(plan, failed):
    """What each job made and where: one line per job, and one per exported instrument set."""
    by_job = {}
    for item in plan.items:
        by_job.setdefault((item.job, bool(item.depends)), []).append(item)
    for (job, _), items in sorted(by_job.items()):
        ok = [i for i in items if i.out not in failed]
        folders = sorted({str(Path(i.out).parent) for i in ok})
        where = ", ".join(str(plan.outdir / f) for f in folders) if folders else "-"
        print(f"  job {job} ({describe_kind(items[0].kind)}): {len(ok)} of {len(items)} files in {where}")


def _render_in_pool(items, outdir, workers, model_paths, finish):
    """Render ``items`` in ``workers`` spawned processes, calling ``finish`` as each completes.

    On Ctrl-C (or any exception) the finished items are recorded, the rest are cancelled and the
    workers killed at once, not waited for; the temporary files they were writing are removed. Workers start with SIGINT blocked and then ignore it,
    and exit when this process dies (:func:`_exit_with_parent`).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(model_paths, os.getpid()))
    futures, done = {}, set()
    try:
        # spawned while SIGINT is blocked, so a Ctrl-C cannot hit a worker before it ignores it
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for item in items:
                futures[pool.submit(_render_safely, item, str(outdir))] = item
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        for future in as_completed(futures):
            done.add(future)
            finish(futures[future], *_result(future))
    except BaseException:
        processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        for future in futures:  # finished while we were stopped: recorded, not redone next time
            if future not in done and future.done() and not future.cancelled() and future.exception() is None:
                done.add(future)
                finish(futures[future], *future.result())
        for process in processes:
            process.join(5)
        remove_stale_temps(outdir, [item for future, item in futures.items() if future not in done])
        raise
    pool.shutdown()


def _result(future):
    try:
        return future.result()
    except Exception as exc:  # a worker died (e.g. killed for memory)
        return None, f"worker failed ({type(exc).__name__}: {exc})"
