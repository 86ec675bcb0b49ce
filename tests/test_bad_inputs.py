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
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SR, folder_snapshot, harmonic_tone, run_cli, write_wav
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


def manifest(path, *jobs, head=f'[defaults]\nmethod = "griffinlim"\niters = 2\n\n'):
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
    np.save(ws / "z.npy", np.zeros((20, 4), np.float32))
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
