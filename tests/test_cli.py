"""The `specsynth` command, run as a real subprocess (`python -m specsynth.cli ...`).

Every user error: exit code 2, exactly one line on stderr naming the file, no traceback, and no
new file in the output folder.
"""
from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import specsynth
from conftest import SR, folder_snapshot, harmonic_tone, run_cli, sweep, write_wav
from specsynth import audio, metrics, spectral
from specsynth.soundfont import render_note

SC_LINE = re.compile(r"^(?P<path>.+)\tspectral convergence (?P<db>-?\d+(\.\d+)?) dB$")


@pytest.fixture
def outdir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def assert_user_error(result, name, folder, before=None):
    """Exit 2, one stderr line that names ``name``, no traceback, and ``folder`` unchanged."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith("\n"), result.stderr
    assert str(name) in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert folder_snapshot(folder) == (before or {}), "the failed run left files behind"


# ---------------------------------------------------------------------------------------------
# Help, version, import weight


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"specsynth {specsynth.__version__}"


def test_console_script():
    script = Path(sys.executable).parent / "specsynth"
    if not script.exists():
        pytest.skip("the specsynth console script is not installed in this environment")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"specsynth {specsynth.__version__}"


def test_help():
    result = run_cli("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert "reconstruct" in result.stdout and "info" in result.stdout
    sub = run_cli("reconstruct", "--help")
    assert sub.returncode == 0
    for option in ("--outdir", "--method", "--iters", "--overwrite", "--max-seconds", "lws+fgla"):
        assert option in sub.stdout


def test_no_command_shows_usage_and_fails():
    result = run_cli()
    assert result.returncode == 2
    assert "usage" in result.stdout.lower() + result.stderr.lower()


@pytest.mark.parametrize("args", [("--help",), ("reconstruct", "--help")])
def test_help_does_not_import_tensorflow(args):
    result = run_cli(*args, python_flags=("-X", "importtime"))
    assert result.returncode == 0
    assert "specsynth.spectral" in result.stderr  # the import log really is there
    assert "tensorflow" not in result.stderr.lower() and "keras" not in result.stderr.lower()


def test_reconstruct_does_not_import_tensorflow(tmp_path, outdir):
    src = write_wav(tmp_path / "tone.wav", harmonic_tone(220.0, 0.5))
    result = run_cli("reconstruct", src, "-o", outdir, python_flags=("-X", "importtime"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "specsynth.phase" in result.stderr  # the import log covers the reconstruction
    assert "tensorflow" not in result.stderr.lower() and "keras" not in result.stderr.lower()
    assert (outdir / "tone.wav").exists()


# ---------------------------------------------------------------------------------------------
# Success


def test_reconstruct_two_files(tmp_path, outdir):
    tone = harmonic_tone(220.0, 1.0)
    note = render_note(73, 72, seconds=1.0, hold=0.7, sample_rate=44100)  # flute C5, at 44.1 kHz
    inputs = [write_wav(tmp_path / "tone.wav", tone), write_wav(tmp_path / "flute.wav", note, 44100)]
    result = run_cli("reconstruct", *inputs, "-o", outdir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    lines = result.stdout.splitlines()
    assert len(lines) == 2
    reported = {}
    for line in lines:
        m = SC_LINE.match(line)
        assert m, line
        reported[m["path"]] = float(m["db"])
    assert set(reported) == {str(outdir / "tone.wav"), str(outdir / "flute.wav")}
    assert sorted(folder_snapshot(outdir)) == ["flute.wav", "tone.wav"]

    config = spectral.SpectralConfig()
    for src, expected_len in ((inputs[0], len(tone)), (inputs[1], round(len(note) * SR / 44100))):
        out = outdir / src.name
        info = sf.info(str(out))
        assert info.samplerate == SR and info.channels == 1
        assert info.frames == expected_len  # the same duration as the input
        y, _ = sf.read(str(out), dtype="float32")
        x, _ = audio.load(src, sample_rate=SR, normalize=None)
        # the file holds a good reconstruction, close to what was reported (16-bit rounding aside)
        sc = metrics.spectral_convergence(spectral.magnitude(x, config), y, config)
        assert sc < -30.0, (src.name, sc)  # measured: tone -50.7, flute -46.2 dB
        assert abs(sc - reported[str(out)]) < 3.0
        assert np.max(np.abs(y)) <= 1.0


@pytest.mark.parametrize("method", ["griffinlim", "lws"])
def test_reconstruct_with_other_methods(tmp_path, outdir, method):
    src = write_wav(tmp_path / "sweep.wav", sweep(300.0, 1200.0, 0.5))
    result = run_cli("reconstruct", src, "-o", outdir, "--method", method, "--iters", "8")
    assert result.returncode == 0, result.stderr
    assert SC_LINE.match(result.stdout.strip())
    assert sf.info(str(outdir / "sweep.wav")).frames == int(0.5 * SR)


def test_silence_in_silence_out(tmp_path, outdir):
    src = write_wav(tmp_path / "silence.wav", np.zeros(SR, np.float32))
    result = run_cli("reconstruct", src, "-o", outdir)
    assert result.returncode == 0, result.stderr
    assert SC_LINE.match(result.stdout.strip())
    assert "nan" not in result.stdout.lower()
    y, rate = sf.read(str(outdir / "silence.wav"), dtype="float32")
    assert rate == SR and len(y) == SR
    assert np.all(np.isfinite(y)) and np.all(y == 0)


def test_info(tmp_path):
    src = write_wav(tmp_path / "stereo.wav", np.zeros((22050, 2), np.float32), 44100)
    result = run_cli("info", src)
    assert result.returncode == 0 and result.stderr == ""
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert fields["sample_rate"] == "44100"
    assert fields["channels"] == "2"
    assert fields["frames"] == "22050"
    assert fields["seconds"] == "0.500"
    assert fields["format"] == "WAV"
    assert fields["peak_dbfs"] == "-inf" and fields["pitch"] == "unpitched" and fields["loudness_lufs"] == "-"


def test_info_measures_level_pitch_and_bandwidth(tmp_path):
    x = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(2 * SR) / SR)
    src = write_wav(tmp_path / "a440.wav", x.astype(np.float32), subtype="FLOAT")
    result = run_cli("info", src)
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert float(fields["peak_dbfs"]) == pytest.approx(20 * np.log10(0.5), abs=0.01)
    assert float(fields["rms_dbfs"]) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)
    assert -12.0 < float(fields["loudness_lufs"]) < -6.0
    assert fields["pitch"].startswith("69 ")
    assert 430 < float(fields["bandwidth_hz"]) < 460


def test_info_on_a_missing_file(tmp_path):
    missing = tmp_path / "nothing.wav"
    assert_user_error(run_cli("info", missing), missing, tmp_path)


# ---------------------------------------------------------------------------------------------
# Bad input: one test each


def _wav_with_rate(path, rate):
    """A small valid WAV claiming ``rate`` Hz; the header is patched if soundfile will not write it."""
    x = np.full(1000, 0.1, np.float32)
    try:
        sf.write(str(path), x, rate, subtype="PCM_16")
    except Exception:
        sf.write(str(path), x, 16000, subtype="PCM_16")
        data = bytearray(path.read_bytes())
        assert data[:4] == b"RIFF" and data[12:16] == b"fmt "
        block_align = struct.unpack_from("<H", data, 32)[0]
        struct.pack_into("<II", data, 24, rate, rate * block_align)  # sample rate, byte rate
        path.write_bytes(bytes(data))
    assert sf.info(str(path)).samplerate == rate
    return path


def _truncated_wav(path):
    write_wav(path, harmonic_tone(220.0, 0.5))
    path.write_bytes(path.read_bytes()[:30])
    return path


def _text_file(path):
    path.write_text("this is a shopping list, not audio\n")
    return path


def _directory(path):
    path.mkdir()
    return path


BAD_INPUTS = {
    "missing": lambda d: d / "missing.wav",
    "directory": lambda d: _directory(d / "folder.wav"),
    "text": lambda d: _text_file(d / "notes.wav"),
    "truncated_header": lambda d: _truncated_wav(d / "truncated.wav"),
    "zero_samples": lambda d: write_wav(d / "empty.wav", np.zeros(0, np.float32)),
    "nan_samples": lambda d: write_wav(d / "nan.wav", np.array([0.1, np.nan, -0.1] * 500, np.float32), subtype="FLOAT"),
    "inf_samples": lambda d: write_wav(d / "inf.wav", np.array([0.1, np.inf, -0.1] * 500, np.float32), subtype="FLOAT"),
    "nine_channels": lambda d: write_wav(d / "nine.wav", np.full((1000, 9), 0.1, np.float32)),
    "rate_2000": lambda d: _wav_with_rate(d / "slow.wav", 2000),
    "rate_400000": lambda d: _wav_with_rate(d / "fast.wav", 400000),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input(tmp_path, outdir, kind):
    src = BAD_INPUTS[kind](_directory(tmp_path / "in"))
    assert_user_error(run_cli("reconstruct", src, "-o", outdir), src, outdir)


def test_too_long(tmp_path, outdir):
    src = write_wav(tmp_path / "long.wav", harmonic_tone(220.0, 2.0))
    result = run_cli("reconstruct", src, "-o", outdir, "--max-seconds", "1")
    assert_user_error(result, src, outdir)
    assert "limit" in result.stderr
    # and the same file is fine under the default limit
    assert run_cli("reconstruct", src, "-o", outdir).returncode == 0


def test_output_folder_not_writable(tmp_path):
    src = write_wav(tmp_path / "tone.wav", harmonic_tone(220.0, 0.5))
    (tmp_path / "afile").write_text("a regular file where a folder should be")
    before = folder_snapshot(tmp_path)
    bad_out = tmp_path / "afile" / "sub"
    result = run_cli("reconstruct", src, "-o", bad_out)
    assert_user_error(result, bad_out, tmp_path, before)


def test_existing_output_without_overwrite(tmp_path, outdir):
    src = write_wav(tmp_path / "tone.wav", harmonic_tone(220.0, 0.5))
    existing = outdir / "tone.wav"
    existing.write_bytes(b"precious bytes that are not even audio")
    before = folder_snapshot(outdir)
    result = run_cli("reconstruct", src, "-o", outdir)
    assert_user_error(result, existing, outdir, before)
    assert "--overwrite" in result.stderr


def test_existing_output_with_overwrite(tmp_path, outdir):
    src = write_wav(tmp_path / "tone.wav", harmonic_tone(220.0, 0.5))
    existing = outdir / "tone.wav"
    existing.write_bytes(b"old bytes")
    result = run_cli("reconstruct", src, "-o", outdir, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert existing.read_bytes() != b"old bytes"
    info = sf.info(str(existing))
    assert info.samplerate == SR and info.frames == int(0.5 * SR)
    assert sorted(folder_snapshot(outdir)) == ["tone.wav"]


@pytest.mark.parametrize("order", ["good_first", "bad_first"])
def test_one_bad_file_means_no_output_at_all(tmp_path, outdir, order):
    good = write_wav(tmp_path / "good.wav", harmonic_tone(220.0, 0.5))
    bad = write_wav(tmp_path / "bad.wav", np.array([0.1, np.nan] * 500, np.float32), subtype="FLOAT")
    inputs = [good, bad] if order == "good_first" else [bad, good]
    result = run_cli("reconstruct", *inputs, "-o", outdir)
    assert_user_error(result, bad, outdir)
    assert str(good) not in result.stderr


def test_two_inputs_with_the_same_name(tmp_path, outdir):
    a = write_wav(tmp_path / "a" / "tone.wav", harmonic_tone(220.0, 0.3))
    b = write_wav(tmp_path / "b" / "tone.wav", harmonic_tone(330.0, 0.3))
    result = run_cli("reconstruct", a, b, "-o", outdir)
    assert_user_error(result, outdir / "tone.wav", outdir)


@pytest.mark.parametrize("args, word", [(("--iters", "-1"), "--iters"), (("--method", "vocoder"), "--method")])
def test_bad_options(tmp_path, outdir, args, word):
    src = write_wav(tmp_path / "tone.wav", harmonic_tone(220.0, 0.3))
    result = run_cli("reconstruct", src, "-o", outdir, *args)
    assert_user_error(result, word, outdir)


# ---------------------------------------------------------------------------------------------
# Levels, and errors the operating system reports


@pytest.mark.parametrize("level", [0.05, 0.5])
def test_reconstruct_keeps_the_input_level(tmp_path, outdir, level):
    x = level * harmonic_tone(220.0, 1.0) / np.max(np.abs(harmonic_tone(220.0, 1.0)))
    src = write_wav(tmp_path / "tone.wav", x, subtype="FLOAT")
    assert run_cli("reconstruct", src, "-o", outdir).returncode == 0
    y, _ = sf.read(str(outdir / "tone.wav"), dtype="float32")
    rms_db = lambda v: 20 * np.log10(np.sqrt(np.mean(np.square(v))))  # noqa: E731
    assert abs(rms_db(y) - rms_db(x)) <= 0.5
    # normalizing is asked for, not done by default
    assert run_cli("reconstruct", src, "-o", outdir, "--overwrite", "--normalize", "peak").returncode == 0
    y, _ = sf.read(str(outdir / "tone.wav"), dtype="float32")
    assert np.max(np.abs(y)) == pytest.approx(10 ** (-1 / 20), abs=2e-3)


def test_a_name_too_long_is_one_line(tmp_path, outdir):
    src = write_wav(tmp_path / "tone.wav", harmonic_tone(220.0, 0.3))
    result = run_cli("encode", src, "-o", outdir / ("z" * 300 + ".npy"))
    assert_user_error(result, "z" * 300, outdir)
    assert "too long" in result.stderr


def test_a_newline_in_a_name_keeps_the_error_on_one_line(tmp_path, outdir):
    src = tmp_path / "two\nlines.wav"
    result = run_cli("reconstruct", src, "-o", outdir)
    assert_user_error(result, "two\\nlines.wav", outdir)


def test_no_command_says_so_on_stderr():
    result = run_cli()
    assert result.returncode == 2 and result.stdout == ""
    assert "give a command" in result.stderr and "Traceback" not in result.stderr


ODD_LATENTS = {
    "empty file": lambda p: p.write_bytes(b""),
    "npz archive": lambda p: np.savez(p.with_suffix(".npz"), z=np.zeros((4, 4))) or p.with_suffix(".npz").rename(p),
    "strings": lambda p: np.save(p, np.array([["a", "b"]])),
    "records": lambda p: np.save(p, np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])),
    "complex": lambda p: np.save(p, np.zeros((4, 4), np.complex64)),
    "dates": lambda p: np.save(p, np.zeros((4, 4), "datetime64[s]")),
    "1-D": lambda p: np.save(p, np.zeros(16, np.float32)),
    "too large for float32": lambda p: np.save(p, np.full((4, 4), 3e39)),
    "an hour long": lambda p: np.save(p, np.zeros((225_000, 4), np.float32)),
}


@pytest.mark.parametrize("kind", list(ODD_LATENTS))
def test_odd_latent_files(tmp_path, outdir, kind):
    from specsynth.ops import read_latents

    path = tmp_path / "z.npy"
    ODD_LATENTS[kind](path)
    with pytest.raises(specsynth.AudioError, match="z.npy") as excinfo:
        read_latents(path, frame_rate=62.5)
    assert "\n" not in str(excinfo.value)


def test_latent_files_that_decode(tmp_path):
    from specsynth.ops import read_latents

    for dtype, frames in ((np.float64, 22_500), (np.int16, 3), (np.float32, 37_500)):  # 37,500: 600 s
        np.save(tmp_path / "z.npy", np.ones((frames, 4), dtype))
        z = read_latents(tmp_path / "z.npy", frame_rate=62.5)
        assert z.dtype == np.float32 and z.shape == (frames, 4) and np.all(z == 1)


# ---------------------------------------------------------------------------------------------
# Argument and file checks run before any model loads: with a bundle that does not exist, the
# error is still about the argument


FAIL_FAST = {
    "missing input": (["encode", "{tmp}/missing.wav", "-o", "{tmp}/z.npy"], "missing.wav"),
    "mp3 output": (["loop", "--seconds", "1", "-o", "{tmp}/loop.mp3"], "loop.mp3"),
    "zero seconds": (["loop", "--seconds", "0", "-o", "{tmp}/loop.wav"], "--seconds"),
    "pitch 200": (["mix", "{wav}", "{wav}", "{wav}", "{wav}", "--xy", "0.5,0.5", "--pitch", "200",
                   "-o", "{tmp}/m.wav"], "200"),
    "three corners": (["mix", "{wav}", "{wav}", "{wav}", "--xy", "0.5,0.5", "-o", "{tmp}/m.wav"], "4 corner"),
    "negative xy": (["mix", "{wav}", "{wav}", "{wav}", "{wav}", "--xy", "-0.1,0.5", "-o", "{tmp}/m.wav"], "0..1"),
    "missing corner": (["mix", "{wav}", "{wav}", "{wav}", "{tmp}/gone.wav", "--xy", "0.5,0.5",
                        "-o", "{tmp}/m.wav"], "gone.wav"),
    "decode mp3": (["decode", "{tmp}/z.npy", "--pitch", "60", "-o", "{tmp}/x.mp3"], "x.mp3"),
    "steps 1": (["interpolate", "{wav}", "{wav}", "--steps", "1", "-o", "{tmp}/i"], "--steps"),
    "loop seed -1": (["loop", "--seed", "-1", "-o", "{tmp}/loop.wav"], "--seed"),
}


@pytest.mark.parametrize("case", list(FAIL_FAST))
def test_argument_checks_come_before_the_model(tmp_path, case):
    args, fragment = FAIL_FAST[case]
    wav = write_wav(tmp_path / "in" / "tone.wav", harmonic_tone(220.0, 0.3))
    args = [a.format(tmp=tmp_path, wav=wav) for a in args] + ["--model", str(tmp_path / "no_such_bundle")]
    result = run_cli(*args)
    assert_user_error(result, fragment, tmp_path / "out")
    assert "no_such_bundle" not in result.stderr


def test_app_command_stops_its_server_on_sigterm(tmp_path):
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "app.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "specsynth.cli", "app", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):  # the server answers its health check once it is up
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("the app's server did not start")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        with pytest.raises(OSError):  # nothing serves the port any more
            for _ in range(40):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                time.sleep(0.25)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
