"""Bad inputs and faults, one row each: the command (a real subprocess), its exit code, a fragment
of its message, no traceback, and no file left behind or lost.

ROWS are user errors (exit 2, exactly one stderr line). The faults after them need more than one
command: a full disk (a 64 kB tmpfs, when mounting is permitted), Ctrl-C, SIGTERM and SIGKILL of
a 2-worker render and its resume (no orphan process, no finished work redone), two renders on one
folder, a malformed bundle inside a render with a good job, and a short upload in every app slot.
Everything runs against the tiny model and 1 s soundfont notes.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SR, descendants, folder_snapshot, harmonic_tone, living, mentioning, run_cli, write_wav
from tiny_model import tiny_bundle_fixture

tiny_bundle = tiny_bundle_fixture()
LONG = "n" * 300  # a file name over the 255-byte limit
FAST = "--method griffinlim --iters 2"
NO_DAC = ("capsh", "--drop=cap_dac_override,cap_dac_read_search", "--")  # root that file modes do bind


def _break_bundle(path, how):
    if how == "list":
        (path / "config.json").write_text("[]")
    elif how == "not_utf8":
        (path / "config.json").write_bytes(b'{"format_version": "\xff\xfe"}')
    elif how == "folder":
        (path / "config.json").unlink()
        (path / "config.json").mkdir()
    elif how == "truncated_norm":
        data = (path / "norm.npz").read_bytes()
        (path / "norm.npz").write_bytes(data[: len(data) // 2])
    elif how == "missing":
        (path / "norm.npz").unlink()


BUNDLES = {"list": "config.json must hold a JSON object", "not_utf8": "config.json is not UTF-8",
           "folder": "config.json cannot be read", "truncated_norm": "norm.npz is invalid",
           "missing": "incomplete bundle: missing norm.npz"}
ODD_NPY = {
    "empty": (lambda p: p.write_bytes(b""), "not a .npy array"),
    "npz": (lambda p: np.savez(open(p, "wb"), a=np.zeros((3, 4)), b=np.zeros(2)), "an .npz archive"),
    "strings": (lambda p: np.save(p, np.array([["a", "b", "c", "d"]])), "latents are real numbers"),
    "records": (lambda p: np.save(p, np.zeros((3, 4), dtype=[("x", "f4")])), "latents are real numbers"),
    "complex": (lambda p: np.save(p, np.zeros((3, 4), np.complex64)), "latents are real numbers"),
    "datetime64": (lambda p: np.save(p, np.zeros((3, 4), "datetime64[s]")), "latents are real numbers"),
    "3e39": (lambda p: np.save(p, np.full((3, 4), 3e39)), "too large for float32"),
}
PITCH_JOB = '[[job]]\nkind = "pitch"\nmodel = "{model}"\nsound = "gm:0:60:1"\npitches = {pitches}\nout = "{out}"\n'


def manifest(path, *jobs, head='[defaults]\nmethod = "griffinlim"\niters = 2\n\n'):
    path.write_text(head + "\n".join(jobs))
    return path


@pytest.fixture(scope="module")
def ws(tiny_bundle, tmp_path_factory):
    """The inputs every row reads (never written): bundles good and bad, sounds, latents, manifests."""
    ws = tmp_path_factory.mktemp("inputs")
    for how in BUNDLES:
        shutil.copytree(tiny_bundle, ws / how)
        _break_bundle(ws / how, how)
    write_wav(ws / "x.wav", harmonic_tone(220.0, seconds=1.0))
    np.save(ws / "z.npy", np.zeros((20, 4 + 2), np.float32))  # the tiny model: z 4, f0, voicing
    (ws / "npy").mkdir()
    for name, (make, _) in ODD_NPY.items():
        make(ws / "npy" / f"{name}.npy")
    os.symlink(ws / "loop2", ws / "loop1")
    os.symlink(ws / "loop1", ws / "loop2")
    shutil.copy(ws / "x.wav", ws / "secret.wav")
    os.chmod(ws / "secret.wav", 0)
    (ws / "noconfig").mkdir()
    tiny = tiny_bundle
    manifest(ws / "good.toml", PITCH_JOB.format(model=tiny, pitches="[60, 62]", out="p"))
    manifest(ws / "nul_out.toml", PITCH_JOB.format(model=tiny, pitches="[60]", out="a\\u0000b"))
    manifest(ws / "nul_sound.toml", PITCH_JOB.format(model=tiny, pitches="[60]", out="p").replace(
        "gm:0:60:1", "x\\u0000.wav"))
    manifest(ws / "nul_model.toml", PITCH_JOB.format(model="tiny\\u0000", pitches="[60]", out="p"))
    manifest(ws / "loop_sound.toml", PITCH_JOB.format(model=tiny, pitches="[60]", out="p").replace(
        "gm:0:60:1", "loop1"))
    manifest(ws / "noconfig.toml", PITCH_JOB.format(model="noconfig", pitches="[60]", out="p"))
    manifest(ws / "missing_sound.toml", PITCH_JOB.format(model=tiny, pitches="[60]", out="p").replace(
        "gm:0:60:1", "nope.wav"))
    (ws / "latin1.toml").write_bytes(b'# caf\xe9\n[[job]]\nkind = "loop"\n')
    (ws / "folder.toml").mkdir()
    shutil.copy(ws / "good.toml", ws / "secret.toml")
    os.chmod(ws / "secret.toml", 0)
    return ws


def _rows():
    rows = []
    model_commands = {
        "encode": "encode {ws}/x.wav -o {out}/z.npy --pitch 60 --model {model}",
        "decode": "decode {ws}/z.npy -o {out}/y.wav --pitch 60 --model {model}",
        "interpolate": "interpolate {ws}/x.wav {ws}/x.wav -o {out}/i --steps 2 --model {model}",
        "mix": "mix {ws}/x.wav {ws}/x.wav {ws}/x.wav {ws}/x.wav --xy 0.5,0.5 -o {out}/m.wav --model {model}",
        "loop": "loop -o {out}/l.wav --seconds 1 --model {model}",
    }
    for how, words in BUNDLES.items():
        for command, args in model_commands.items():
            rows.append((f"bundle-{how}-{command}", args.replace("{model}", "{ws}/" + how), words))
    for command, args in {
        "encode": "encode {ws}/x.wav -o {out}/{long}.npy --pitch 60 --model {tiny}",
        "decode": "decode {ws}/z.npy -o {out}/{long}.wav --pitch 60 --model {tiny}",
        "interpolate": "interpolate {ws}/x.wav {ws}/x.wav -o {out}/{long} --model {tiny}",
        "mix": "mix {ws}/x.wav {ws}/x.wav {ws}/x.wav {ws}/x.wav --xy 0,0 -o {out}/{long}.wav --model {tiny}",
        "loop": "loop -o {out}/{long}.wav --model {tiny}",
        "reconstruct": "reconstruct {ws}/x.wav -o {out}/{long}",
        "render": "render {ws}/good.toml -o {out}/{long}",
        "info": "info {ws}/{long}.wav",
        "model": "encode {ws}/x.wav -o {out}/z.npy --model {ws}/{long}",
    }.items():
        rows.append((f"long-name-{command}", args, "file name too long"))
    for command, args in {
        "info": "info {ws}/loop1",
        "encode": "encode {ws}/loop1 -o {out}/z.npy --model {tiny}",
        "decode": "decode {ws}/loop1 -o {out}/y.wav --pitch 60 --model {tiny}",
        "reconstruct": "reconstruct {ws}/loop1 -o {out}/r",
        "model": "encode {ws}/x.wav -o {out}/z.npy --model {ws}/loop1",
        "output": "encode {ws}/x.wav -o {ws}/loop1/z.npy --model {tiny}",
        "render-manifest": "render {ws}/loop1 -o {out}/r",
        "render-sound": "render {ws}/loop_sound.toml -o {out}/r",
    }.items():
        rows.append((f"symlink-loop-{command}", args, "symlink loop"))
    rows += [
        ("nul-in-out", "render {ws}/nul_out.toml -o {out}/r", "key 'out' must be a relative path"),
        ("nul-in-sound", "render {ws}/nul_sound.toml -o {out}/r", "NUL byte"),
        ("nul-in-model", "render {ws}/nul_model.toml -o {out}/r", "names no model bundle"),
        ("manifest-not-utf8", "render {ws}/latin1.toml -o {out}/r", "cannot be read"),
        ("manifest-folder", "render {ws}/folder.toml -o {out}/r", "is a folder"),
        ("manifest-missing", "render {ws}/none.toml -o {out}/r", "no such manifest file"),
        ("model-without-config", "render {ws}/noconfig.toml -o {out}/r", "names no model bundle"),
        ("manifest-missing-sound", "render {ws}/missing_sound.toml -o {out}/r", "does not exist"),
        ("loop-seed-minus-1", "loop -o {out}/l.wav --seed -1 --model {tiny}", "--seed"),
        ("loop-seconds-nan", "loop -o {out}/l.wav --seconds nan --model {tiny}", "--seconds"),
        ("loop-temperature-negative", "loop -o {out}/l.wav --temperature -1 --model {tiny}", "--temperature"),
        ("reconstruct-max-seconds-nan", "reconstruct {ws}/x.wav -o {out}/r --max-seconds nan", "--max-seconds"),
        ("interpolate-one-step", "interpolate {ws}/x.wav {ws}/x.wav -o {out}/i --steps 1", "--steps"),
        ("mix-outside-the-pad", "mix {ws}/x.wav {ws}/x.wav {ws}/x.wav {ws}/x.wav --xy 2,0 -o {out}/m.wav", "x"),
        ("encode-pitch-word", "encode {ws}/x.wav -o {out}/z.npy --pitch high --model {tiny}", "--pitch"),
        ("render-workers-0", "render {ws}/good.toml -o {out}/r --workers 0", "--workers"),
        ("permission-info", "!info {ws}/secret.wav", "permission denied"),
        ("permission-encode", "!encode {ws}/secret.wav -o {out}/z.npy --model {tiny}", "permission denied"),
        ("permission-manifest", "!render {ws}/secret.toml -o {out}/r", "permission denied"),
    ]
    for name, (_, words) in ODD_NPY.items():
        rows.append((f"decode-npy-{name}", "decode {ws}/npy/" + name + ".npy -o {out}/y.wav --pitch 60 --model {tiny}",
                     words))
    return rows


ROWS = _rows()


def tree(folder):
    """Every file (with its bytes) and folder under ``folder``: what a failed command must not change."""
    folder = Path(folder)
    folders = {str(p.relative_to(folder)) + "/": None for p in folder.rglob("*") if p.is_dir()} if folder.exists() else {}
    return {**folder_snapshot(folder), **folders}


def no_dac_prefix():
    if os.geteuid() != 0 or not shutil.which("capsh"):
        pytest.skip("file permissions do not bind root without capsh")
    return NO_DAC


@pytest.mark.parametrize("args, words", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(ws, tiny_bundle, tmp_path, args, words):
    out = tmp_path / "out"
    out.mkdir()
    prefix = no_dac_prefix() if args.startswith("!") else ()
    argv = args.lstrip("!").format(ws=ws, out=out, tiny=tiny_bundle, long=LONG).split()
    before = tree(ws)
    if prefix:
        cmd = shlex.join([sys.executable, "-m", "specsynth.cli", *argv])
        result = subprocess.run([*prefix, "-c", cmd], capture_output=True, text=True, cwd=REPO, timeout=120)
    else:
        result = run_cli(*argv)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("specsynth"), result.stderr
    assert words in lines[0], lines[0]
    assert "System error" not in lines[0]
    assert tree(out) == {}, "the failed command left files or folders behind"
    assert tree(ws) == before, "the failed command changed its inputs"


# -- a full disk ---------------------------------------------------------------------------------

FULL = {
    "encode": "encode {ws}/x.wav -o {full}/z.npy --pitch 60 --model {tiny}",
    "decode": "decode {ws}/z.npy -o {full}/y.wav --pitch 60 --model {tiny} " + FAST,
    "loop": "loop -o {full}/l.wav --seconds 1 --model {tiny} " + FAST,
    "reconstruct": "reconstruct {ws}/x.wav -o {full}/r " + FAST,
    "interpolate": "interpolate {ws}/x.wav {ws}/x.wav -o {full}/i --steps 2 --model {tiny} " + FAST,
    "render": "render {ws}/good.toml -o {full}/r",
}


@pytest.fixture
def full_disk(tmp_path):
    """A 64 kB tmpfs filled to the last byte (root, where mounting is permitted; else skipped)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        with open(folder / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("command", list(FULL))
def test_full_disk(ws, tiny_bundle, full_disk, command):
    before = tree(full_disk)
    result = run_cli(*FULL[command].format(ws=ws, full=full_disk, tiny=tiny_bundle).split())
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert "the disk is full" in result.stderr
    assert tree(full_disk) == before


# -- signals, kills and resuming -------------------------------------------------------------------


def start_render(manifest_path, outdir, *extra):
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.Popen([sys.executable, "-m", "specsynth.cli", "render", str(manifest_path), "-o", str(outdir),
                             *extra], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,  # its own process group, as a terminal's job
                            preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal():
    """Ctrl-C handled as a terminal's job has it, whatever this test process left ignored or blocked
    (a child inherits both, and Python never handles a SIGINT it started with ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def wait_until(proc, check, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            found = check()
        except (OSError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"the render never got there: {proc.communicate()[1][-2000:]}")


def done_items(outdir):
    from specsynth.render import load_index

    return {k: (outdir / k).stat().st_mtime_ns for k, e in load_index(outdir).items() if e["status"] == "done"}


def many_notes(tmp_path, tiny, n, seconds=1, iters=2):
    job = PITCH_JOB.replace("gm:0:60:1", f"gm:0:60:{seconds}")
    return manifest(tmp_path / "many.toml", job.format(model=tiny, pitches=list(range(30, 30 + n)), out="p"),
                    head=f'[defaults]\nmethod = "griffinlim"\niters = {iters}\n\n')


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_stopped_render_leaves_no_orphans_and_resumes(tiny_bundle, tmp_path, how):
    # slow enough that the stop lands mid-run: with the tiny model a note can take milliseconds,
    # and a stop that takes a few seconds to land would find the run finished
    n = 96
    path, outdir = many_notes(tmp_path, tiny_bundle, n, seconds=2, iters=48), tmp_path / "out"
    proc = start_render(path, outdir, "--workers", "2")
    wait_until(proc, lambda: done_items(outdir))
    family = descendants(proc.pid)
    assert len(family) >= 2, "the workers should be running"
    started = time.perf_counter()
    if how == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group, workers included
    else:
        proc.send_signal(getattr(signal, how))
    out, err = proc.communicate(timeout=60)  # EOF: no worker holds the caller's stdout open
    stopped = time.perf_counter() - started
    print(f"{how}: the render stopped in {stopped:.2f} s")
    assert "Traceback" not in err and "SystemError" not in err, err[-3000:]
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130 and err.splitlines()[-1] == "specsynth: interrupted", err[-2000:]
    time.sleep(5)
    assert living(family) == [] and mentioning(str(outdir)) == [], "orphan processes outlived the render"
    finished = done_items(outdir)
    assert 1 <= len(finished) < n, "the stop came after the run had finished: make the manifest longer"
    assert not list(outdir.rglob("*.part")) or how == "SIGKILL"  # a killed worker's are removed
    result = run_cli("render", path, "-o", outdir, "--workers", "1", timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"skipped {len(finished)} (already done)" in result.stdout
    assert all((outdir / k).stat().st_mtime_ns == t for k, t in finished.items()), "finished work was redone"
    assert len(done_items(outdir)) == n and not list(outdir.rglob("*.part"))


def holds_lock(outdir):
    lock = outdir / ".specsynth.lock"
    return lock.exists() and b"pid" in lock.read_bytes()


def test_second_render_on_one_folder_is_refused(tiny_bundle, tmp_path):
    path, outdir = many_notes(tmp_path, tiny_bundle, 48), tmp_path / "out"
    first = start_render(path, outdir)
    try:
        wait_until(first, lambda: holds_lock(outdir))
        result = run_cli("render", path, "-o", outdir)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert f"another specsynth render is writing here (pid {first.pid} on" in result.stderr
        assert "--wait" in result.stderr and result.stdout == ""
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=60)
    assert not (outdir / ".specsynth.lock").exists()


def test_second_render_waits_with_wait(tiny_bundle, tmp_path):
    path, outdir = many_notes(tmp_path, tiny_bundle, 6), tmp_path / "out"
    first = start_render(path, outdir)
    wait_until(first, lambda: holds_lock(outdir))
    second = start_render(path, outdir, "--wait")
    out1, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (err1[-2000:], err2[-2000:])
    assert "rendered 6, skipped 0" in out1 and "rendered 0, skipped 6" in out2  # nothing rendered twice
    assert "specsynth: waiting for the render writing" in err2 and "Traceback" not in err1 + err2


# -- a malformed bundle inside a render, leftovers ------------------------------------------------


def test_bad_bundles_fail_only_their_jobs(ws, tiny_bundle, tmp_path):
    jobs = [PITCH_JOB.format(model=tiny_bundle, pitches="[60, 62]", out="good")]
    jobs += [PITCH_JOB.format(model=ws / how, pitches="[60]", out=how) for how in BUNDLES]
    path, outdir = manifest(tmp_path / "m.toml", *jobs), tmp_path / "out"
    result = run_cli("render", path, "-o", outdir, "--workers", "2", timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    problems = [line for line in result.stderr.splitlines() if "key 'model'" in line]
    assert len(problems) == len(BUNDLES) and all(w in "".join(problems) for w in BUNDLES.values()), problems
    from specsynth.render import load_index

    status = {k: e["status"] for k, e in load_index(outdir).items()}
    assert status == {"good/note_060.wav": "done", "good/note_062.wav": "done",
                      **{f"{how}/note_060.wav": "failed" for how in BUNDLES}}
    assert sorted(p.name for p in outdir.rglob("*.wav")) == ["note_060.wav", "note_062.wav"]


def test_leftover_part_beside_a_finished_output_is_removed(ws, tmp_path):
    outdir = tmp_path / "out"
    assert run_cli("render", ws / "good.toml", "-o", outdir).returncode == 0
    (outdir / "p" / ".note_060.wav.k3j2.part").write_bytes(b"half")
    result = run_cli("render", ws / "good.toml", "-o", outdir)
    assert result.returncode == 0 and "skipped 2 (already done)" in result.stdout
    assert not list(outdir.rglob("*.part"))


# -- a short upload in the app --------------------------------------------------------------------

SLOTS = ("interp_a", "interp_b", "xy_c0", "xy_c1", "xy_c2", "xy_c3", "loop_seed_sound")


@pytest.mark.parametrize("slot", SLOTS)
def test_short_upload_in_every_slot(tiny_bundle, monkeypatch, slot):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from specsynth import ui
    from specsynth.model._keras import keras
    from test_app import APP, TIMEOUT, wav

    monkeypatch.setenv("SPECSYNTH_MODEL", str(tiny_bundle))
    monkeypatch.setattr(keras.backend, "clear_session", keras.backend.clear_session)
    short = wav(harmonic_tone(440.0, seconds=600 / SR))  # 600 samples: under one analysis window
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.file_uploader(key="uploads").set_value([("blip.wav", short, "audio/wav")]).run()
    assert not at.exception, [e.message for e in at.exception]
    at.selectbox(key=slot).set_value(ui.upload_id(short)).run()
    assert not at.exception, [e.message for e in at.exception]
    assert [t.label for t in at.tabs] == ["↔ Interpolate", "✥ XY pad", "∞ Loops"]
    assert all("\n" not in e.value and "Traceback" not in e.value for e in at.error)
