"""`specsynth render --executor ray`: the same files as the process pool, resume after a kill,
Ctrl-C, and the one-line message when Ray is not installed.

One local Ray session (2 CPUs) serves the module; the CLI runs in subprocesses join it with
``--ray-address``. Tests that need Ray are skipped when it is not installed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from specsynth import render
from test_render import (EVERY_KIND, KILL_JOBS, REPO, files, jobs, kill_once_an_item_is_done, read_index, tone,
                         wait_for_done, write_manifest)
from tiny_model import tiny_bundle_fixture

tiny_bundle = tiny_bundle_fixture()


@pytest.fixture(scope="module")
def ray_address():
    try:
        import ray
    except ImportError:  # not installed (any ImportError: a broken install cannot run these either)
        pytest.skip("ray is not installed (pip install 'specsynth[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def contents(outdir):
    return {name: (outdir / name).read_bytes() for name in files(outdir) if name != "index.json"}


def test_ray_makes_the_same_files_as_the_pool(tiny_bundle, tmp_path, ray_address, capsys):
    tone(tmp_path / "sounds" / "tone_55.wav")
    (tmp_path / "broken_60.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    broken = 'kind = "pitch"\nsound = "broken_60.wav"\npitches = [48, 60]\nout = "bad"\n'
    manifest = write_manifest(tmp_path, EVERY_KIND + "\n[[job]]\n" + broken, model=tiny_bundle)
    assert render.run_manifest(manifest, outdir=tmp_path / "pool", workers=2) == 1
    assert render.run_manifest(manifest, outdir=tmp_path / "ray", executor="ray") == 1
    pool, ray = contents(tmp_path / "pool"), contents(tmp_path / "ray")
    assert len(pool) == 17 and pool.keys() == ray.keys()
    # the same code on the same CPU in a fresh process each: bit for bit
    assert [name for name in pool if pool[name] != ray[name]] == []
    one, two = read_index(tmp_path / "pool"), read_index(tmp_path / "ray")
    assert {k: (e["fingerprint"], e["status"]) for k, e in one.items()} == {
        k: (e["fingerprint"], e["status"]) for k, e in two.items()}
    # an input's failure is a failed item, reported with its reason, not retried away
    assert two["bad/note_048.wav"]["status"] == "failed" and "broken_60.wav" in two["bad/note_048.wav"]["error"]
    out = capsys.readouterr().out
    assert out.count("rendered 17, skipped 0 (already done), failed 2") == 2


def test_killed_ray_run_resumes_without_redoing_finished_items(tiny_bundle, tmp_path, ray_address):
    manifest = write_manifest(tmp_path, KILL_JOBS, model=tiny_bundle)
    manifest.write_text(manifest.read_text().replace("[defaults]\n", '[defaults]\nexecutor = "ray"\n', 1))
    outdir = tmp_path / "out"
    cmd = [sys.executable, "-m", "specsynth.cli", "render", str(manifest), "-o", str(outdir),
           "--ray-address", ray_address]
    done = kill_once_an_item_is_done(cmd, outdir, timeout=120)
    assert done, "the run finished no item in time"
    index = read_index(outdir)
    finished = {k: (e["finished"], (outdir / k).stat().st_mtime_ns) for k, e in index.items() if e["status"] == "done"}
    assert 1 <= len(finished) < 30, "the kill came after the run had finished: make the manifest longer"
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    index = read_index(outdir)
    assert len(index) == 30 and all(e["status"] == "done" for e in index.values())
    assert f"skipped {len(finished)} (already done)" in result.stdout
    for name, (when, mtime) in finished.items():
        assert (index[name]["finished"], (outdir / name).stat().st_mtime_ns) == (when, mtime), f"{name} redone"
    assert not [p for p in outdir.rglob(".*.part")], "temporary files left after the resumed run"


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "ray.py").write_text('raise ImportError("No module named \'ray\'")\n')
    manifest = write_manifest(tmp_path, jobs('kind = "resynthesize"\nsound = "gm:0:60:1"\nout = "r.wav"\n'),
                              model=None)
    env = {**os.environ, "PYTHONPATH": f"{shim}:{REPO}"}
    result = subprocess.run([sys.executable, "-m", "specsynth.cli", "render", str(manifest), "--executor", "ray"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ['specsynth: --executor ray needs Ray, which is not installed: '
                                          'pip install "specsynth[ray]"']
    assert not (tmp_path / "out").exists()


def test_executor_is_a_run_setting_of_the_defaults_only(tiny_bundle, tmp_path, capsys):
    body = jobs('kind = "resynthesize"\nsound = "gm:0:60:1"\nout = "r.wav"\nexecutor = "ray"\n')
    manifest = write_manifest(tmp_path, body, model=tiny_bundle)
    manifest.write_text(manifest.read_text().replace("[defaults]\n", '[defaults]\nexecutor = "dask"\n', 1))
    assert render.run_manifest(manifest) == 2
    err = capsys.readouterr().err.splitlines()
    assert any("defaults: key 'executor' must be one of 'process', 'ray', got 'dask'" in line for line in err), err
    assert any("job 1 (resynthesize): unknown key 'executor'" in line for line in err), err
    assert render.run_manifest(manifest, executor="pool") == 2
    assert "--executor must be one of process, ray" in capsys.readouterr().err


def test_ctrl_c_cancels_outstanding_tasks_and_records_what_finished(tiny_bundle, tmp_path, ray_address):
    manifest = write_manifest(tmp_path, KILL_JOBS, model=tiny_bundle)
    outdir = tmp_path / "out"
    cmd = [sys.executable, "-m", "specsynth.cli", "render", str(manifest), "-o", str(outdir), "--executor", "ray",
           "--ray-address", ray_address]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_done(outdir, proc, timeout=120), "the run finished no item in time"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "specsynth: interrupted" in err and "rendered" not in out
    index = read_index(outdir)
    done = [k for k, e in index.items() if e["status"] == "done"]
    assert 1 <= len(done) < 30 and {e["status"] for e in index.values()} <= {"done", "pending"}
    assert all((outdir / k).is_file() for k in done)
    assert not [p for p in outdir.rglob(".*.part")], "temporary files left after Ctrl-C"
