"""`specsynth render`: manifest validation, planning, rendering, the resumable index, workers, kills.

Rendering uses a tiny real model (tests/tiny_model.py), short soundfont notes ("gm:P:K:1") and
Griffin-Lim with few iterations, so the whole module runs in well under a minute.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specsynth import render
from tiny_model import tiny_bundle_fixture

REPO = Path(__file__).resolve().parents[1]
SR = 16000
tiny_bundle = tiny_bundle_fixture()


def write_manifest(folder, body, *, model):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "m.toml"
    head = f'[defaults]\nmodel = "{model}"\nmethod = "griffinlim"\niters = 4\n\n' if model else ""
    path.write_text(head + body)
    return path


def tone(path, f0=196.0, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.4 * x / np.max(np.abs(x))).astype(np.float32), SR)
    return path


def read_index(outdir):
    """index.json plus the journal of items finished since it was written (as a rerun reads it)."""
    from specsynth.render import load_index

    return load_index(outdir)


def mtimes(outdir):
    return {str(p.relative_to(outdir)): p.stat().st_mtime_ns for p in Path(outdir).rglob("*")
            if p.is_file() and p.name not in ("index.json", ".index.journal")}


def files(outdir):
    return sorted(str(p.relative_to(outdir)) for p in Path(outdir).rglob("*") if p.is_file())


EVERY_KIND = """
[[job]]
kind = "interpolate"
a = "gm:42:48:1"
b = "gm:73:72:1"
steps = 3
mode = "slerp"
out = "interp"

[[job]]
kind = "grid"
corners = ["gm:42:48:1", "gm:73:72:1", "gm:0:60:1", "sounds/tone_55.wav"]
resolution = 2
pitches = [55, 60]
out = "grid"

[[job]]
kind = "loop"
seed_sound = "gm:89:48:1"
seconds = 1.5
out = "loops/seeded.flac"

[[job]]
kind = "loop"
seconds = 1
seed = 3
out = "loops/free"
sample_rate = 22050

[[job]]
kind = "pitch"
sound = "gm:42:48:1"
pitches = [48, 60]
export = "sfz"
out = "cello"

[[job]]
kind = "resynthesize"
sound = "sounds/tone_55.wav"
out = "rec.wav"
normalize = "loudness"
"""
EXPECTED = sorted([
    "interp/step_00.wav", "interp/step_01.wav", "interp/step_02.wav",
    *[f"grid/p0{p}/x{i}_y{j}.wav" for p in (55, 60) for i in (0, 1) for j in (0, 1)],
    "loops/seeded.flac", "loops/free.wav", "cello/note_048.wav", "cello/note_060.wav", "cello/cello.sfz",
    "rec.wav", "index.json",
])


@pytest.fixture(scope="module")
def rendered(tiny_bundle, tmp_path_factory):
    """EVERY_KIND rendered once in-process: (manifest, outdir, exit code, captured stdout)."""
    folder = tmp_path_factory.mktemp("every_kind")
    tone(folder / "sounds" / "tone_55.wav")
    manifest = write_manifest(folder, EVERY_KIND, model=tiny_bundle)
    code = render.run_manifest(manifest)
    return manifest, folder / "out", code


def test_every_kind_renders_its_files(rendered):
    manifest, outdir, code = rendered
    assert code == 0
    assert files(outdir) == EXPECTED
    for name in EXPECTED:
        if name.endswith((".wav", ".flac")):
            x, rate = sf.read(str(outdir / name), dtype="float32")
            assert x.ndim == 1 and np.all(np.isfinite(x)) and np.max(np.abs(x)) > 0.05, name
            assert rate == (22050 if name == "loops/free.wav" else SR), name
    assert sf.info(str(outdir / "loops/seeded.flac")).format == "FLAC"
    assert len(sf.read(str(outdir / "loops/seeded.flac"))[0]) == int(1.5 * SR)  # loops are exact
    assert len(sf.read(str(outdir / "loops/free.wav"))[0]) == 22050
    assert len(sf.read(str(outdir / "rec.wav"))[0]) == SR  # resynthesize keeps the input's length
    for name in ("interp/step_00.wav", "grid/p055/x1_y1.wav", "cello/note_060.wav"):
        assert abs(len(sf.read(str(outdir / name))[0]) - SR) <= 256  # 1 s notes, to a frame


def test_index_lists_every_output_with_metrics(rendered):
    manifest, outdir, _ = rendered
    index = read_index(outdir)
    assert sorted(index) == [n for n in EXPECTED if n != "index.json"]
    assert all(e["status"] == "done" for e in index.values())
    assert index["interp/step_01.wav"]["job"] == 1 and index["interp/step_01.wav"]["params"]["alpha"] == 0.5
    assert index["grid/p060/x1_y0.wav"]["params"]["x"] == 1.0 and index["grid/p060/x1_y0.wav"]["metrics"]["pitch"] == 60
    assert index["cello/cello.sfz"]["kind"] == "sfz" and index["cello/cello.sfz"]["job"] == 5
    for name in ("loops/seeded.flac", "loops/free.wav"):
        m = index[name]["metrics"]
        assert m["render_ms"] > 0 and np.isfinite(m["seam_flux"]) and np.isfinite(m["median_flux"])
    assert index["rec.wav"]["metrics"]["pitch"] == 55  # from the NSynth-style name tone_55.wav


def test_rerun_skips_finished_items_and_keeps_other_files(rendered, capsys):
    manifest, outdir, _ = rendered
    (outdir / "mine.txt").write_text("not from this manifest")
    before = mtimes(outdir)
    capsys.readouterr()
    assert render.run_manifest(manifest) == 0
    assert "rendered 0, skipped 17" in capsys.readouterr().out
    assert mtimes(outdir) == before
    assert render.run_manifest(manifest, dry_run=True) == 0
    plan_lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("skip") for line in plan_lines) == 17


def test_workers_2_make_the_same_files(tiny_bundle, tmp_path):
    tone(tmp_path / "sounds" / "tone_55.wav")
    body = EVERY_KIND.split("[[job]]")
    manifest = write_manifest(tmp_path, "[[job]]".join([body[0], body[1], body[4], body[6]]), model=tiny_bundle)
    assert render.run_manifest(manifest, outdir=tmp_path / "one") == 0
    assert render.run_manifest(manifest, outdir=tmp_path / "two", workers=2) == 0
    assert files(tmp_path / "one") == files(tmp_path / "two") == sorted(
        ["index.json", "interp/step_00.wav", "interp/step_01.wav", "interp/step_02.wav", "loops/free.wav", "rec.wav"])
    one, two = read_index(tmp_path / "one"), read_index(tmp_path / "two")
    assert {k: e["fingerprint"] for k, e in one.items()} == {k: e["fingerprint"] for k, e in two.items()}
    assert all(e["status"] == "done" for e in two.values())


def test_dry_run_writes_nothing(tiny_bundle, tmp_path, capsys):
    tone(tmp_path / "sounds" / "tone_55.wav")
    manifest = write_manifest(tmp_path, EVERY_KIND, model=tiny_bundle)
    before = files(tmp_path)
    assert render.run_manifest(manifest, dry_run=True) == 0
    out = capsys.readouterr().out
    assert files(tmp_path) == before and not (tmp_path / "out").exists()
    for name in EXPECTED:
        if name != "index.json":
            assert f"render  {name}  job " in out
    assert "grid/p055/x1_y0.wav  job 2 grid  x=1 y=0 pitch=55" in out


def test_changed_job_rerenders_only_what_changed_and_overwrite_renders_all(tiny_bundle, tmp_path, capsys):
    body = '[[job]]\nkind = "pitch"\nsound = "gm:42:48:1"\npitches = [48, {}]\nout = "keys"\n'
    manifest = write_manifest(tmp_path, body.format(60), model=tiny_bundle)
    outdir = tmp_path / "out"
    assert render.run_manifest(manifest) == 0
    first = mtimes(outdir)
    manifest.write_text(manifest.read_text().replace("[48, 60]", "[48, 62]"))
    assert render.run_manifest(manifest) == 0
    second = mtimes(outdir)
    assert second["keys/note_048.wav"] == first["keys/note_048.wav"]
    assert second["keys/note_060.wav"] == first["keys/note_060.wav"]  # not in the plan: kept
    assert "keys/note_062.wav" in second and "keys/note_060.wav" in read_index(outdir)
    # a job whose parameters changed is stale and renders again (here: a different model setting)
    manifest.write_text(manifest.read_text().replace("iters = 4", "iters = 5"))
    capsys.readouterr()
    assert render.run_manifest(manifest, dry_run=True) == 0
    assert "stale   keys/note_048.wav" in capsys.readouterr().out
    time.sleep(0.01)
    assert render.run_manifest(manifest, overwrite=True) == 0
    third = mtimes(outdir)
    assert third["keys/note_048.wav"] != second["keys/note_048.wav"]
    assert third["keys/note_060.wav"] == first["keys/note_060.wav"]


# ---------------------------------------------------------------------------------------------
# Validation: exit 2, one line per problem naming the job and key, nothing written

GOOD = {
    "interpolate": 'kind = "interpolate"\na = "gm:42:48:1"\nb = "gm:73:72:1"\nsteps = 3\nout = "i"\n',
    "grid": 'kind = "grid"\ncorners = ["gm:1:60", "gm:2:60", "gm:3:60", "gm:4:60"]\nresolution = 2\nout = "g"\n',
    "loop": 'kind = "loop"\nseconds = 1\nout = "l.wav"\n',
    "pitch": 'kind = "pitch"\nsound = "gm:42:48:1"\npitches = [48]\nout = "p"\n',
    "resynthesize": 'kind = "resynthesize"\nsound = "gm:0:60:1"\nout = "r.wav"\n',
}


def jobs(*bodies):
    return "".join(f"\n[[job]]\n{b}" for b in bodies)


CASES = [  # (manifest jobs, [expected substrings, one list per stderr line])
    (jobs(GOOD["loop"] + "colour = 1\n"), [["job 1 (loop)", "unknown key 'colour'"]]),
    (jobs(GOOD["resynthesize"], 'kind = "morph"\nout = "x"\n'), [["job 2:", "key 'kind'", "'morph'"]]),
    (jobs('out = "x"\n'), [["job 1:", "key 'kind' is missing"]]),
    (jobs(GOOD["interpolate"].replace("steps = 3", 'steps = "3"')), [["job 1 (interpolate)", "key 'steps'", "int"]]),
    (jobs(GOOD["interpolate"].replace("steps = 3", "steps = 1")), [["job 1 (interpolate)", "key 'steps'", "2..1000"]]),
    (jobs(GOOD["grid"].replace("resolution = 2", "resolution = 1")), [["job 1 (grid)", "key 'resolution'"]]),
    (jobs(GOOD["grid"].replace('"gm:4:60"]', ']')), [["job 1 (grid)", "key 'corners' must be a list of 4 sounds"]]),
    (jobs(GOOD["loop"].replace("seconds = 1", "seconds = 0.01")), [["job 1 (loop)", "key 'seconds'"]]),
    (jobs(GOOD["loop"] + "temperature = -1\n"), [["job 1 (loop)", "key 'temperature'"]]),
    (jobs(GOOD["pitch"].replace("[48]", "[48, 200]")), [["job 1 (pitch)", "key 'pitches'", "200"]]),
    (jobs(GOOD["pitch"] + 'export = "exs"\n'), [["job 1 (pitch)", "key 'export'"]]),
    (jobs(GOOD["grid"] + 'export = "sfz"\n'), [["job 1 (grid)", "key 'export' needs 'pitches'"]]),
    (jobs(GOOD["loop"], GOOD["resynthesize"] + 'method = "magic"\n'), [["job 2 (resynthesize)", "key 'method'"]]),
    (jobs(GOOD["loop"] + "sample_rate = 100\n"), [["job 1 (loop)", "key 'sample_rate'"]]),
    (jobs(GOOD["resynthesize"].replace("gm:0:60:1", "missing.wav")), [["job 1 (resynthesize)", "key 'sound'", "missing.wav"]]),
    (jobs(GOOD["grid"].replace("gm:3:60", "nope.wav")), [["job 1 (grid)", "key 'corners'", "sound 3", "nope.wav"]]),
    (jobs(GOOD["resynthesize"].replace("gm:0:60:1", "gm:0:999")), [["job 1 (resynthesize)", "key 'sound'", "gm:0:999"]]),
    (jobs(GOOD["loop"].replace("l.wav", "../l.wav")), [["job 1 (loop)", "key 'out'", "../l.wav"]]),
    (jobs(GOOD["pitch"].replace('"p"', '"/tmp/p"')), [["job 1 (pitch)", "key 'out'", "/tmp/p"]]),
    (jobs(GOOD["loop"].replace("l.wav", "l.mp3")), [["job 1 (loop)", "key 'out'", ".wav or .flac"]]),
    (jobs(GOOD["loop"].replace("l.wav", "link/l.wav")), [["job 1 (loop)", "key 'out'", "symlink"]]),
    (jobs(GOOD["pitch"].replace('"p"', '"index.json"')), [["job 1 (pitch)", "key 'out'", "index"]]),
    (jobs(GOOD["resynthesize"], GOOD["loop"].replace("l.wav", "r.wav")), [["job 2 (loop)", "key 'out'", "job 1"]]),
    (jobs(GOOD["pitch"], GOOD["grid"].replace('"g"', '"p/note_048.wav"')), [["job 2 (grid)", "key 'out'", "job 1"]]),
    (jobs(GOOD["loop"] + 'model = "no_such_bundle"\n'), [["job 1 (loop)", "key 'model'", "no_such_bundle"]]),
    ("[defaults]\nspeed = 2\n" + jobs(GOOD["loop"]), [["defaults", "unknown key 'speed'"]]),
    ("[[job]]\nkind = \n", [["not valid TOML"]]),
    ("", [["no [[job]] entries"]]),
    (jobs(GOOD["loop"] + "colour = 1\n", GOOD["grid"].replace("resolution = 2", "resolution = 0"),  # all at once
          GOOD["resynthesize"].replace("gm:0:60:1", "gone.wav")),
     [["job 1 (loop)", "'colour'"], ["job 2 (grid)", "'resolution'"], ["job 3 (resynthesize)", "'sound'"]]),
]


@pytest.mark.parametrize("body, expected", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_invalid_manifest_exits_2_with_one_line_per_problem(tiny_bundle, tmp_path, capsys, body, expected):
    outdir = tmp_path / "out"
    outdir.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (outdir / "link").symlink_to(tmp_path / "elsewhere")
    path = tmp_path / "m.toml"
    model_line = f'[defaults]\nmodel = "{tiny_bundle}"\n'
    path.write_text(body.replace("[defaults]\n", model_line) if "[defaults]" in body else model_line + body)
    before = files(tmp_path)
    assert render.run_manifest(path, outdir=outdir) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(expected), lines
    for line, parts in zip(lines, expected):
        assert line.startswith(f"specsynth: {path}: "), line
        for part in parts:
            assert part in line, (part, line)
    assert files(tmp_path) == before


def test_old_kind_name_reconstruct_plans_as_resynthesize(tiny_bundle, tmp_path):
    old = GOOD["resynthesize"].replace('"resynthesize"', '"reconstruct"')
    manifest = write_manifest(tmp_path, jobs(old), model=tiny_bundle)
    plan = render.plan_manifest(manifest)
    assert [(i.kind, i.out) for i in plan.items] == [("resynthesize", "r.wav")]
    new = write_manifest(tmp_path / "new", jobs(GOOD["resynthesize"]), model=tiny_bundle)
    assert render.plan_manifest(new).items[0].fingerprint == plan.items[0].fingerprint


def test_missing_manifest_and_bad_workers(tmp_path, capsys):
    assert render.run_manifest(tmp_path / "none.toml") == 2
    assert "none.toml: no such manifest file" in capsys.readouterr().err
    assert render.run_manifest(tmp_path / "none.toml", workers=0) == 2
    assert "--workers" in capsys.readouterr().err


def test_existing_file_not_in_index_is_refused_without_overwrite(tiny_bundle, tmp_path, capsys):
    manifest = write_manifest(tmp_path, jobs(GOOD["resynthesize"], GOOD["loop"]), model=tiny_bundle)
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "r.wav").write_bytes(b"the user's own file")
    assert render.run_manifest(manifest) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "job 1 (resynthesize): key 'out'" in err[0] and "--overwrite" in err[0]
    assert files(outdir) == ["r.wav"] and (outdir / "r.wav").read_bytes() == b"the user's own file"
    assert render.run_manifest(manifest, overwrite=True) == 0
    assert sf.info(str(outdir / "r.wav")).samplerate == SR


def test_cli_reports_problems_without_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(jobs(GOOD["loop"] + "colour = 1\n", 'kind = "grid"\nout = "g"\n'))
    result = subprocess.run([sys.executable, "-m", "specsynth.cli", "render", str(path), "--dry-run"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert all(line.startswith(f"specsynth: {path}: ") for line in lines) and len(lines) >= 3, lines
    assert any("job 2 (grid): key 'corners' is missing" in line for line in lines)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# Failures at render time, and kills


def test_failed_item_is_reported_and_the_rest_render(tiny_bundle, tmp_path, capsys):
    (tmp_path / "broken_60.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    body = jobs('kind = "pitch"\nsound = "broken_60.wav"\npitches = [48, 60]\nexport = "sfz"\nout = "bad"\n',
                GOOD["resynthesize"])
    manifest = write_manifest(tmp_path, body, model=tiny_bundle)
    capsys.readouterr()
    assert render.run_manifest(manifest) == 1
    captured = capsys.readouterr()
    failures = [line for line in captured.err.splitlines() if "specsynth: failed:" in line]
    assert len(failures) == 3, failures  # two notes, and the instrument that needs them
    assert any("bad/note_048.wav" in line and "broken_60.wav" in line for line in failures)
    assert any("bad/bad.sfz" in line and "not written" in line for line in failures)
    assert "rendered 1, skipped 0 (already done), failed 3" in captured.out
    outdir = tmp_path / "out"
    assert files(outdir) == ["index.json", "r.wav"]
    index = read_index(outdir)
    assert index["r.wav"]["status"] == "done" and index["bad/note_060.wav"]["status"] == "failed"
    assert "broken_60.wav" in index["bad/note_060.wav"]["error"]


KILL_JOBS = jobs('kind = "pitch"\nsound = "gm:42:48:3"\npitches = [{}]\nout = "keys"\nmethod = "lws+fgla"\n'
                 'iters = 16\n'.format(", ".join(str(p) for p in range(40, 70))))


def wait_for_done(outdir, proc, timeout=60):
    """The outputs the index lists as done, as soon as there are some (or [] after ``timeout``
    seconds, or once ``proc`` has ended)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            done = [k for k, e in read_index(outdir).items() if e["status"] == "done"]
        except (OSError, ValueError):
            done = []  # no index yet (an atomic replace never shows a partial one)
        if done:
            return done
        time.sleep(0.02)
    return []


def kill_once_an_item_is_done(cmd, outdir, timeout=60):
    """Run ``cmd`` and SIGKILL it as soon as the index lists an item as done; returns those items."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done = wait_for_done(outdir, proc, timeout)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return done


def test_killed_run_leaves_complete_files_and_resumes(tiny_bundle, tmp_path):
    manifest = write_manifest(tmp_path, KILL_JOBS, model=tiny_bundle)
    outdir = tmp_path / "out"
    cmd = [sys.executable, "-m", "specsynth.cli", "render", str(manifest)]
    done = kill_once_an_item_is_done(cmd, outdir)
    assert done, "the run finished no item in time"
    index = read_index(outdir)
    finished = {k: (outdir / k).stat().st_mtime_ns for k, e in index.items() if e["status"] == "done"}
    assert 1 <= len(finished) < 30, "the kill came after the run had finished: make the manifest longer"
    for path in outdir.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            assert path.suffix in (".wav", ".json"), path  # no visible temporary files
            if path.suffix == ".wav":
                assert len(sf.read(str(path))[0]) > 0
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    index = read_index(outdir)
    assert len(index) == 30 and all(e["status"] == "done" for e in index.values())
    assert f"skipped {len(finished)} (already done)" in result.stdout
    for name, mtime in finished.items():
        assert (outdir / name).stat().st_mtime_ns == mtime, f"{name} was rendered again"
    assert not [p for p in outdir.rglob(".*.part")], "temporary files left after the resumed run"


def test_demo_manifest_validates_with_the_tiny_model(tiny_bundle, tmp_path, capsys):
    demo = REPO / "demo" / "demo.toml"
    assert render.run_manifest(demo, outdir=tmp_path / "out", dry_run=True, model_override=tiny_bundle) == 0
    lines = capsys.readouterr().out.splitlines()
    kinds = [re.search(r"  job \d+ (\w+)", line).group(1) for line in lines[:-1]]
    assert kinds.count("interpolate") == 5 and kinds.count("grid") == 9 and kinds.count("loop") == 2
    assert kinds.count("pitch") >= 6 and kinds.count("sfz") == 1
    assert not (tmp_path / "out").exists()
    plan = render.plan_manifest(demo, outdir=tmp_path / "out", model_override=tiny_bundle)
    assert any(i.kind == "loop" and i.params["seed_sound"] for i in plan.items)
    assert any(i.kind == "loop" and not i.params["seed_sound"] for i in plan.items)


def test_soundfont_notes_render_normalized_and_silent_ones_are_errors(tiny_bundle, tmp_path, capsys):
    from specsynth.errors import AudioError
    from specsynth.limits import parse_gm
    from specsynth.soundfont import render_gm

    x = render_gm(parse_gm("gm:42:48:1"), SR)
    assert x.dtype == np.float32 and len(x) == SR and 0.5 < np.max(np.abs(x)) <= 1.0
    with pytest.raises(AudioError, match="gm:0:127:1 is silent"):
        render_gm(parse_gm("gm:0:127:1"), SR)
    manifest = write_manifest(tmp_path, jobs(GOOD["resynthesize"].replace("gm:0:60:1", "gm:0:127:1")), model=tiny_bundle)
    capsys.readouterr()
    assert render.run_manifest(manifest) == 1
    assert "r.wav: soundfont note gm:0:127:1 is silent" in capsys.readouterr().err
