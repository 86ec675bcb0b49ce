"""The model commands of the CLI: `train` (killed and resumed, mirrored over two logical CPUs,
clear errors), `encode` and `decode` (outputs and bad inputs).

Runs that must behave like the real command (a kill, a fresh process with two logical CPUs, the
exact stderr of a user error, with and without TensorFlow loaded) are subprocesses; the cases that
need the model loaded call ``cli.main`` in this process, where it already is, to keep the suite quick.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import specsynth
from conftest import REPO, assert_user_error, folder_snapshot, harmonic_tone, run_cli, write_wav
from specsynth import audio, spectral
from specsynth.pitch import midi_to_hz
from tiny_model import tiny_bundle_fixture

tiny_bundle = tiny_bundle_fixture()


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return specsynth.load(tiny_bundle)


def run_main(capfd, *args):
    """``specsynth ARGS`` in this process (the model stays loaded); same fields as run_cli's result."""
    from specsynth import cli

    capfd.readouterr()
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capfd.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def tone_dataset(path, midis=(48, 60), seconds=1.0):
    """A dataset folder of harmonic tones, one per MIDI note."""
    from specsynth.data import write_dataset

    config = specsynth.SpectralConfig()
    items = [(f"tone_{m}.wav", m, harmonic_tone(float(midi_to_hz(m)), seconds)) for m in midis]
    return write_dataset(path, items, config, {"files": len(items), "skipped": 0})


# ---------------------------------------------------------------------------------------------
# train: kill and resume


TRAIN_ARGS = ("--epochs", "3", "--prior-epochs", "2", "--z", "4", "--width", "16", "--prior-units", "16",
              "--prior-sampled-inputs", "0.5", "--batch-size", "8", "--seed", "5")


@pytest.fixture(scope="module")
def note_dataset(tmp_path_factory):
    """Four soundfont notes (piano and flute, MIDI 48 and 60), one second each: too few to hold
    any out, which keeps the runs short."""
    from specsynth.data import items_from_soundfont, write_dataset

    config = specsynth.SpectralConfig()
    items, summary = items_from_soundfont(config, programs=[0, 73], pitches=[48, 60], seconds=1.0)
    return write_dataset(tmp_path_factory.mktemp("notes") / "data", items, config, summary)


def _cli_env(**extra):
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env.update(extra)
    return env


def test_train_killed_then_resumed(note_dataset, tmp_path):
    from specsynth.model._keras import keras
    from specsynth.model.vae import VAE

    out, work = tmp_path / "bundle", tmp_path / "bundle.partial"
    args = ["train", note_dataset, "--out", out, *TRAIN_ARGS]
    log = tmp_path / "first.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "specsynth.cli", *map(str, args)], cwd=REPO, env=_cli_env(),
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, f"training ended before it could be killed:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no epoch finished in time"
            try:
                if json.loads((work / "state.json").read_text())["vae_epochs_done"] >= 1:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run (exit {proc.returncode}):\n{log.read_text()[-3000:]}"

    # killed: no bundle (not even a half-written one), and a checkpoint that loads
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")) == []
    state = json.loads((work / "state.json").read_text())
    n_vae, n_prior = state["vae_epochs_done"], state["prior_epochs_done"]
    assert 1 <= n_vae <= 3
    assert len(state["history"]["vae"]) == n_vae
    checkpoint = keras.saving.load_model(work / "vae.keras", safe_mode=True)
    assert isinstance(checkpoint, VAE) and checkpoint.z_dim == 4 and checkpoint.width == 16
    if n_prior:
        assert keras.saving.load_model(work / "prior.keras", safe_mode=True).z_dim == 4

    resumed = run_cli(*args, "--resume", timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert f"resuming: VAE epoch {n_vae}/3, prior epoch {n_prior}/2" in resumed.stdout
    # it went on from the checkpoint: only the epochs that were left ran
    vae_part, _, prior_part = resumed.stdout.partition("prior:")
    assert [int(e) for e in re.findall(r"epoch (\d+)/3 done", vae_part)] == list(range(n_vae + 1, 4))
    assert [int(e) for e in re.findall(r"epoch (\d+)/2 done", prior_part)] == list(range(n_prior + 1, 3))

    model = specsynth.load(out)
    assert not work.exists()
    history = model.meta["training"]["history"]
    assert len(history["vae"]) == 3 and len(history["prior"]) == 2
    assert history["vae"][:n_vae] == state["history"]["vae"]  # the killed run's epochs, kept as they were
    assert model.meta["training"]["seed"] == 5 and model.z_dim == 4
    assert model.meta["model"]["prior_sampled_inputs"] == 0.5 and model.prior.sampled_inputs == 0.5
    x = harmonic_tone(261.6, 0.5)
    assert model.encode(x, pitch=60).shape == (spectral.n_frames(len(x), model.config), 4 + 2)


def test_resume_with_nothing_to_resume(tmp_path):
    data = tone_dataset(tmp_path / "data")
    before = folder_snapshot(tmp_path)
    result = run_cli("train", data, "--out", tmp_path / "bundle", "--resume")
    assert_user_error(result, ["nothing to resume", "bundle.partial"], tmp_path, before)


def test_train_refuses_an_existing_output(tmp_path):
    data = tone_dataset(tmp_path / "data")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "keep.txt").write_text("mine")
    before = folder_snapshot(tmp_path)
    result = run_cli("train", data, "--out", tmp_path / "bundle", "--epochs", "1")
    assert_user_error(result, [tmp_path / "bundle", "already exists"], tmp_path, before)


def test_train_with_a_sampled_input_share_outside_0_to_1(tmp_path):
    data = tone_dataset(tmp_path / "data")
    before = folder_snapshot(tmp_path)
    result = run_cli("train", data, "--out", tmp_path / "bundle", "--prior-sampled-inputs", "1.5")
    assert_user_error(result, ["prior_sampled_inputs", "[0, 1]", "1.5"], tmp_path, before)


def test_train_whose_loss_keeps_going_non_finite(tmp_path):
    data = tone_dataset(tmp_path / "data")
    before = folder_snapshot(tmp_path)
    result = run_cli("train", data, "--out", tmp_path / "bundle", "--epochs", "1", "--prior-epochs", "1", "--z", "4",
                     "--width", "8", "--prior-units", "8", "--batch-size", "1", "--learning-rate", "1e30")
    assert_user_error(result, [tmp_path / "bundle", "loss went non-finite 3 times in epoch 1", "--learning-rate"],
                      tmp_path, before)


def test_train_from_something_that_is_not_a_dataset(tmp_path):
    folder = tmp_path / "wavs"
    write_wav(folder / "a.wav", harmonic_tone(220.0, 0.5))
    before = folder_snapshot(tmp_path)
    result = run_cli("train", folder, "--out", tmp_path / "bundle")
    assert_user_error(result, [folder, "specsynth dataset"], tmp_path, before)


# ---------------------------------------------------------------------------------------------
# train --strategy mirrored on two logical CPUs

MIRRORED_SCRIPT = """
import sys
import specsynth.model._keras  # splits the CPU into SPECSYNTH_CPU_DEVICES logical devices first
import tensorflow as tf
from specsynth import cli

print("logical CPUs", len(tf.config.list_logical_devices("CPU")))
sys.exit(cli.main(sys.argv[1:]))
"""


def test_train_mirrored_over_two_logical_cpus(tmp_path):
    data = tone_dataset(tmp_path / "data")
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    out = tmp_path / "bundle"
    cmd = [sys.executable, str(script), "train", str(data), "--out", str(out), "--epochs", "1", "--prior-epochs", "0",
           "--z", "4", "--width", "8", "--prior-units", "8", "--batch-size", "4", "--strategy", "mirrored"]
    result = subprocess.run(cmd, cwd=REPO, env=_cli_env(SPECSYNTH_CPU_DEVICES="2"), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "logical CPUs 2" in result.stdout
    assert "strategy mirrored: 2 replicas" in result.stdout  # the strategy training ran under had both
    model = specsynth.load(out)
    assert model.meta["model"]["width"] == 8 and len(model.meta["training"]["history"]["vae"]) == 1
    x = harmonic_tone(261.6, 0.5)
    assert np.all(np.isfinite(model.resynthesize(x, pitch=60, method="fgla", n_iter=2)))


# ---------------------------------------------------------------------------------------------
# encode / decode


@pytest.fixture
def wav(tmp_path):
    return write_wav(tmp_path / "in" / "tone.wav", harmonic_tone(261.6, 1.0))


def test_encode_writes_latents(model, tiny_bundle, wav, tmp_path):
    out = tmp_path / "z.npy"
    result = run_cli("encode", wav, "-o", out, "--model", tiny_bundle, "--pitch", "60")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # TensorFlow's start-up chatter included: errors must have stderr to themselves
    z = np.load(out)
    samples, _ = audio.load(wav, sample_rate=model.sample_rate)
    assert z.dtype == np.float32 and z.shape == (spectral.n_frames(len(samples), model.config), model.latent_width)
    np.testing.assert_allclose(z, model.encode(samples, pitch=60), atol=1e-5)
    assert f"{len(z)} frames x {model.z_dim} latents + f0 and voicing" in result.stdout and "pitch 60" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "z.npy"]  # no temporary files left


def test_decode_writes_a_wav_at_the_models_rate(model, tiny_bundle, tmp_path, capfd):
    z = model.encode(harmonic_tone(261.6, 1.0), pitch=60)
    src = tmp_path / "z.npy"
    np.save(src, z)
    out = tmp_path / "out.wav"
    result = run_main(capfd, "decode", src, "-o", out, "--model", tiny_bundle, "--pitch", "60")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    info = sf.info(str(out))
    assert info.samplerate == model.sample_rate and info.channels == 1
    hop, q = model.config.hop, model.config.n_fft // model.config.hop
    assert info.frames == (len(z) - q + 1) * hop
    y, _ = sf.read(str(out), dtype="float32")
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0.1  # normalised, not silence
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav", "z.npy"]


def test_encode_to_a_txt_name(tiny_bundle, wav, tmp_path):
    out = tmp_path / "out" / "z.txt"
    out.parent.mkdir()
    assert_user_error(run_cli("encode", wav, "-o", out, "--model", tiny_bundle, "--pitch", "60"),
                      [out, ".npy"], out.parent)


def test_decode_of_a_missing_file(tiny_bundle, tmp_path):
    out = tmp_path / "out" / "y.wav"
    out.parent.mkdir()
    missing = tmp_path / "missing.npy"
    assert_user_error(run_cli("decode", missing, "-o", out, "--model", tiny_bundle, "--pitch", "60"),
                      [missing, "no such file"], out.parent)


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_bad_model_path(command, wav, tmp_path):
    src = wav
    if command == "decode":
        src = tmp_path / "z.npy"
        np.save(src, np.zeros((20, 4), np.float32))
    out = tmp_path / "out" / ("z.npy" if command == "encode" else "y.wav")
    out.parent.mkdir()
    bad = tmp_path / "no_such_model"
    result = run_cli(command, src, "-o", out, "--model", bad, "--pitch", "60")
    assert_user_error(result, [bad, "no such model bundle"], out.parent)


def test_decode_of_the_wrong_shape(model, tiny_bundle, tmp_path, capfd):
    src = tmp_path / "z.npy"
    np.save(src, np.zeros((20, model.latent_width + 1), np.float32))
    out = tmp_path / "out" / "y.wav"
    out.parent.mkdir()
    result = run_main(capfd, "decode", src, "-o", out, "--model", tiny_bundle, "--pitch", "60")
    assert_user_error(result, [src, f"[time, {model.latent_width}]", f"(20, {model.latent_width + 1})"], out.parent)


BAD_LATENTS = {  # kind -> (what is wrong, the message's words)
    "nan": (lambda z: np.where(np.arange(z.size).reshape(z.shape) == 7, np.nan, z), "not finite"),
    "inf": (lambda z: np.where(np.arange(z.size).reshape(z.shape) == 3, np.inf, z), "not finite"),
    "one_dim": (lambda z: z[:, 0], "expected a [time, z] array"),
    "three_dims": (lambda z: z[None], "expected a [time, z] array"),
    "no_frames": (lambda z: z[:0], "expected a [time, z] array"),
    "other_z": (lambda z: z[:, :-1], "for this model"),
}


@pytest.mark.parametrize("kind", list(BAD_LATENTS))
def test_decode_of_bad_latents(model, tiny_bundle, tmp_path, capfd, kind):
    src = tmp_path / "z.npy"
    make, words = BAD_LATENTS[kind]
    np.save(src, make(np.zeros((20, model.latent_width), np.float32)))
    out = tmp_path / "out" / "y.wav"
    out.parent.mkdir()
    result = run_main(capfd, "decode", src, "-o", out, "--model", tiny_bundle, "--pitch", "60")
    assert_user_error(result, [src, words], out.parent)


@pytest.mark.parametrize("content", [b"not numpy at all", b"\x93NUMPY\x01\x00garbage"])
def test_decode_of_a_file_that_is_not_npy(tiny_bundle, tmp_path, capfd, content):
    src = tmp_path / "z.npy"
    src.write_bytes(content)
    out = tmp_path / "out" / "y.wav"
    out.parent.mkdir()
    result = run_main(capfd, "decode", src, "-o", out, "--model", tiny_bundle, "--pitch", "60")
    assert_user_error(result, [src, "not a .npy array"], out.parent)


def test_decode_needs_no_pitch_a_latent_file_carries_its_contour(model, tiny_bundle, tmp_path, capfd):
    z = model.encode(harmonic_tone(261.6, 1.0))
    src = tmp_path / "z.npy"
    np.save(src, z)
    for extra in ([], ["--pitch", "auto"], ["--pitch", "67"]):
        out = tmp_path / "out" / f"y{len(extra)}{extra[-1] if extra else ''}.wav"
        out.parent.mkdir(exist_ok=True)
        result = run_main(capfd, "decode", src, "-o", out, "--model", tiny_bundle, *extra)
        assert result.returncode == 0, result.stderr
        y, _ = sf.read(str(out), dtype="float32")
        expected = audio.normalize_audio(model.synthesize(z, pitch=67 if "67" in extra else None))
        np.testing.assert_allclose(y, expected, atol=2e-3)  # what the library makes of the file, as written


@pytest.mark.parametrize("pitch, words", [("x", ["--pitch", "'x'"]), ("200", ["pitch", "200"]), ("60.5", ["--pitch"])])
def test_encode_with_a_bad_pitch(tiny_bundle, wav, tmp_path, capfd, pitch, words):
    out = tmp_path / "out" / "z.npy"
    out.parent.mkdir()
    result = run_main(capfd, "encode", wav, "-o", out, "--model", tiny_bundle, "--pitch", pitch)
    assert_user_error(result, words, out.parent)


def test_encode_of_a_file_that_is_not_audio(tiny_bundle, tmp_path, capfd):
    src = tmp_path / "notes.wav"
    src.write_text("a shopping list\n")
    out = tmp_path / "out" / "z.npy"
    out.parent.mkdir()
    result = run_main(capfd, "encode", src, "-o", out, "--model", tiny_bundle, "--pitch", "60")
    assert_user_error(result, [src, "not a readable audio file"], out.parent)


def test_encode_and_decode_refuse_to_overwrite(model, tiny_bundle, wav, tmp_path, capfd):
    z_out, y_out = tmp_path / "out" / "z.npy", tmp_path / "out" / "y.wav"
    z_out.parent.mkdir()
    z_out.write_bytes(b"mine")
    y_out.write_bytes(b"mine too")
    before = folder_snapshot(z_out.parent)
    result = run_main(capfd, "encode", wav, "-o", z_out, "--model", tiny_bundle, "--pitch", "60")
    assert_user_error(result, [z_out, "already exists"], z_out.parent, before)
    src = tmp_path / "z.npy"
    np.save(src, np.zeros((20, model.latent_width), np.float32))
    result = run_main(capfd, "decode", src, "-o", y_out, "--model", tiny_bundle, "--pitch", "60")
    assert_user_error(result, [y_out, "already exists"], z_out.parent, before)
    # and --overwrite replaces them
    assert run_main(capfd, "encode", wav, "-o", z_out, "--model", tiny_bundle, "--pitch", "60", "--overwrite").returncode == 0
    assert np.load(z_out).shape[1] == model.latent_width
