"""The README's examples run: every `specsynth` command line and every Python snippet in it, on
files this test makes, in a folder of its own.

Two substitutions keep the suite's time down, and are the only ones: `train` runs one short
epoch of a small model, and the soundfont dataset renders 2 programs at 2 pitches instead of 64
at 49. `specsynth app` (a server that runs until stopped) is run by tests/test_cli.py.
"""
from __future__ import annotations

import re
import shlex

import numpy as np
import pytest

from conftest import REPO, SR, harmonic_tone, run_cli, write_wav
from specsynth.limits import GMNote
from specsynth.soundfont import render_gm

README = (REPO / "README.md").read_text()
SUBSTITUTIONS = {
    "train": ["--epochs", "1", "--prior-epochs", "1", "--width", "16", "--prior-units", "16", "--z", "4"],
}
CHEAPER = {"--programs 0-63 --pitches 36-84": "--programs 0,73 --pitches 48,60"}


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def command_lines():
    lines = []
    for block in blocks("sh"):
        for line in block.splitlines():
            line = shlex.join(shlex.split(line, comments=True))
            if line.startswith("specsynth ") and not line.startswith("specsynth app"):
                lines.append(line)
    return lines


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The files the examples name: notes as WAVs, a folder of sounds, latents, a small dataset."""
    root = tmp_path_factory.mktemp("readme")
    notes = {"cello": (42, 48), "flute": (73, 72), "organ": (19, 60), "bass": (33, 40), "note": (73, 60),
             "seed": (89, 48), "c1": (42, 48), "c2": (73, 72), "c3": (0, 60), "c4": (56, 60)}
    for name, (program, pitch) in notes.items():
        write_wav(root / f"{name}.wav", render_gm(GMNote(program, pitch, 2.0), SR))
    write_wav(root / "my_sounds" / "hum_57.wav", harmonic_tone(220.0, 1.0))
    write_wav(root / "my_sounds" / "whistle.wav", harmonic_tone(880.0, 1.0))
    np.save(root / "z.npy", np.concatenate([np.zeros((60, 16)), np.tile([60.0, 1.0], (60, 1))], 1).astype(np.float32))
    (root / "demo").mkdir()
    (root / "demo" / "demo.toml").write_text((REPO / "demo" / "demo.toml").read_text())
    result = run_cli("dataset", "--soundfont", "--programs", "0,73", "--pitches", "48,60", "-o", root / "data",
                     "--chunk-seconds", "1")
    assert result.returncode == 0, result.stderr
    return root


def test_the_readme_has_examples():
    assert len(command_lines()) >= 10 and blocks("python")


@pytest.mark.parametrize("line", command_lines())
def test_command_line_example(workdir, tmp_path, line):
    import shutil

    for cheap_from, cheap_to in CHEAPER.items():
        line = line.replace(cheap_from, cheap_to)
    args = shlex.split(line)[1:]
    args += SUBSTITUTIONS.get(args[0], [])
    folder = tmp_path / "work"
    shutil.copytree(workdir, folder)
    out = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-o", "--out", "--outdir")), None)
    if out and (folder / out).is_dir():  # an example's output that another example reads
        shutil.rmtree(folder / out)
    elif out and (folder / out).exists():
        (folder / out).unlink()
    result = run_cli(*args, cwd=folder, timeout=600)
    assert result.returncode == 0, (line, result.stderr[-2000:])
    assert "Traceback" not in result.stderr


def test_python_snippets(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    for snippet in blocks("python"):
        exec(compile(snippet, "README.md", "exec"), {})
