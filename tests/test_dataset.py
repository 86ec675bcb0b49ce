"""Training data: `specsynth dataset` from a folder of audio or from soundfont notes, the dataset
folder format, the tf.data pipeline, and the pitch helpers that label and condition the model."""
from __future__ import annotations

import json

import numpy as np
import pytest

import specsynth
from conftest import SR, assert_user_error, folder_snapshot, harmonic_tone, noise_burst, run_cli, write_wav
from specsynth import ConfigError, data, spectral
from specsynth.model import dataset as model_dataset
from specsynth.pitch import PITCH_FEATURES, UNPITCHED, check_pitch, midi_to_hz, pitch_features, pitch_from_name

CONFIG = specsynth.SpectralConfig()


def tone(midi, seconds=1.0):
    return harmonic_tone(float(midi_to_hz(midi)), seconds)


def read_dataset(path):
    meta = json.loads((path / "dataset.json").read_text())
    return meta, np.load(path / "frames.npy")


# ---------------------------------------------------------------------------------------------
# From a folder


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    """Sounds in nested folders, in three formats, plus files that must be skipped."""
    root = tmp_path_factory.mktemp("sounds") / "in"
    silence = np.zeros(SR // 2, np.float32)
    # 0.5 s of silence, 1 s of tone, 0.5 s of silence: trimmed to the tone
    write_wav(root / "strings" / "cello_60.wav", np.concatenate([silence, tone(60), silence]))
    write_wav(root / "deep" / "er" / "long.flac", tone(67, 2.5))           # 2.5 s: three 1 s chunks
    write_wav(root / "noise.ogg", noise_burst(1.0, burst=(0.0, 1.0), amplitude=0.5))
    write_wav(root / "short.wav", tone(60, 200 / SR))                       # 200 samples: under one frame
    (root / "notes.wav").write_text("a shopping list, not audio\n")          # text named .wav
    write_wav(root / "broken.wav", tone(60, 0.5))
    (root / "broken.wav").write_bytes((root / "broken.wav").read_bytes()[:30])  # a truncated header
    (root / "readme.txt").write_text("not an audio extension: not even looked at\n")
    return root


@pytest.fixture(scope="module")
def folder_dataset(audio_folder):
    out = audio_folder.parent / "data"
    result = run_cli("dataset", audio_folder, "-o", out, "--chunk-seconds", "1")
    assert result.returncode == 0, result.stderr
    return out, result


def test_folder_dataset_items(folder_dataset):
    out, result = folder_dataset
    meta, _ = read_dataset(out)
    items = {item["name"]: item["pitch"] for item in meta["items"]}
    assert items == {
        "strings/cello_60.wav": 60,  # the pitch comes from the name
        "deep/er/long.flac#0": 67, "deep/er/long.flac#1": 67, "deep/er/long.flac#2": 67,  # estimated
        "noise.ogg": UNPITCHED,
    }
    assert meta["config"] == CONFIG.to_dict()
    assert meta["summary"]["files"] == 6 and meta["summary"]["skipped"] == 3
    assert result.stdout.splitlines()[0] == f"wrote {out}: 5 sounds, 3 skipped"
    for name in ("short.wav", "notes.wav", "broken.wav"):
        assert sum(name in line for line in result.stdout.splitlines()) == 1, result.stdout
        assert sum(name in reason for reason in meta["summary"]["skipped_reasons"]) == 1
    assert "readme.txt" not in result.stdout
    assert "shorter than one frame" in result.stdout
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["data", "in"]  # no temporary folder left


def test_folder_dataset_frames(folder_dataset):
    out, _ = folder_dataset
    meta, frames = read_dataset(out)
    assert frames.dtype == np.float16 and frames.shape[1] == CONFIG.n_features
    offset = 0
    for item in meta["items"]:  # items are stored back to back
        assert item["offset"] == offset
        offset += item["frames"]
    assert offset == len(frames)
    counts = {item["name"]: item["frames"] for item in meta["items"]}
    one_second = spectral.n_frames(SR, CONFIG)
    # silence trimmed: the cello is its 1 s tone (give or take a trimming frame), not 2 s
    assert abs(counts["strings/cello_60.wav"] - one_second) <= 5
    assert counts["deep/er/long.flac#0"] == counts["deep/er/long.flac#1"] == one_second
    assert counts["deep/er/long.flac#2"] < one_second  # the last half second
    assert frames.min() >= CONFIG.db_floor and frames.max() <= 6.0


def test_dataset_folder_loads_and_matches_the_audio(folder_dataset, audio_folder):
    out, _ = folder_dataset
    ds = data.Dataset(out)
    assert ds.config == CONFIG and len(ds.items) == 5 and ds.frames.dtype == np.float32
    cello = next(item for item in ds.items if item["name"] == "strings/cello_60.wav")
    frames = ds.item_frames(cello)
    # the stored frames are the analysis of the tone (level aside: files are peak-normalised)
    expected = spectral.analyze(tone(60), CONFIG).mean(axis=0)
    got = frames.mean(axis=0)
    assert np.argmax(got) == np.argmax(expected)
    assert np.corrcoef(got, expected)[0, 1] > 0.98


@pytest.mark.parametrize("mode", [None, "auto", "name"])
def test_pitch_modes_names_first(tmp_path, mode):
    src = tmp_path / "in"
    write_wav(src / "a.wav", harmonic_tone(220.0, 0.6))
    write_wav(src / "hiss.wav", noise_burst(0.6, burst=(0.0, 0.6)))
    write_wav(src / "cello_60.wav", harmonic_tone(220.0, 0.6))  # the name's note wins over the estimate (57)
    out = tmp_path / "data"
    result = run_cli("dataset", src, "-o", out, *(("--pitch", mode) if mode else ()))
    assert result.returncode == 0, result.stderr
    meta, _ = read_dataset(out)
    estimated = UNPITCHED if mode == "name" else 57  # the default estimates what names do not say
    assert {item["name"]: item["pitch"] for item in meta["items"]} == {
        "a.wav": estimated, "hiss.wav": UNPITCHED, "cello_60.wav": 60}


def test_pitch_none_and_bad_pitch_modes(tmp_path):
    write_wav(tmp_path / "in" / "cello_60.wav", tone(60, 0.5))
    items, summary = data.items_from_folder(tmp_path / "in", CONFIG, pitch="none")
    assert [(name, pitch) for name, pitch, _ in items] == [("cello_60.wav", UNPITCHED)]
    assert summary == {"files": 1, "skipped": 0, "skipped_reasons": []}
    with pytest.raises(ConfigError, match="name, auto or none"):
        data.items_from_folder(tmp_path / "in", CONFIG, pitch="guess")


@pytest.mark.parametrize("contents", ["nothing", "only_bad_files", "only_short_sounds"])
def test_folder_with_no_usable_audio(tmp_path, contents):
    src = tmp_path / "in"
    src.mkdir()
    words = ["no usable audio"]
    if contents == "only_bad_files":
        (src / "notes.wav").write_text("not audio\n")
        (src / "readme.txt").write_text("not audio either\n")
    elif contents == "only_short_sounds":
        write_wav(src / "click.wav", tone(60, 200 / SR))
        write_wav(src / "sub" / "blip.flac", tone(72, 500 / SR))
        words.append("shorter than one frame")
    before = folder_snapshot(tmp_path)
    result = run_cli("dataset", src, "-o", tmp_path / "data")
    assert_user_error(result, [src, *words], tmp_path, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no output folder, no temporary folder


def test_folder_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere"
    assert_user_error(run_cli("dataset", missing, "-o", tmp_path / "data"), [missing, "not a folder"], tmp_path)


# ---------------------------------------------------------------------------------------------
# From the soundfont


@pytest.fixture(scope="module")
def soundfont_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sf") / "data"
    result = run_cli("dataset", "--soundfont", "--programs", "0,73", "--pitches", "60-62", "-o", out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_soundfont_dataset(soundfont_dataset):
    out, result = soundfont_dataset
    meta, frames = read_dataset(out)
    assert [(item["name"], item["pitch"]) for item in meta["items"]] == [
        (f"gm{program:03d}_{pitch:03d}_100", pitch) for program in (0, 73) for pitch in (60, 61, 62)]
    assert result.stdout.splitlines()[0] == f"wrote {out}: 6 sounds, 0 skipped"
    assert meta["summary"]["notes"] == 6
    four_seconds = spectral.n_frames(4 * SR, CONFIG)
    assert [item["frames"] for item in meta["items"]] == [four_seconds] * 6
    assert len(frames) == 6 * four_seconds
    # each note is loud somewhere near its fundamental (261.6 Hz is bin ~16.7)
    ds = data.Dataset(out)
    for item in ds.items:
        f0_bin = midi_to_hz(item["pitch"]) * CONFIG.n_fft / SR
        spectrum = ds.item_frames(item)[:60].mean(axis=0)
        assert spectrum[int(f0_bin) - 1 : int(f0_bin) + 3].max() > np.median(spectrum) + 20


def test_existing_output_is_refused_then_overwritten(soundfont_dataset, tmp_path):
    out, _ = soundfont_dataset
    before = folder_snapshot(out.parent)
    result = run_cli("dataset", "--soundfont", "--programs", "0", "--pitches", "60", "-o", out)
    assert_user_error(result, [out, "already exists"], out.parent, before)
    result = run_cli("dataset", "--soundfont", "--programs", "0", "--pitches", "64", "-o", out, "--overwrite")
    assert result.returncode == 0, result.stderr
    meta, _ = read_dataset(out)
    assert [item["pitch"] for item in meta["items"]] == [64]
    assert sorted(p.name for p in out.parent.iterdir()) == ["data"]  # no temporary folders left


@pytest.mark.parametrize("args, words", [
    (["--soundfont", "--programs", "0-200"], ["--programs", "0..127"]),
    (["--soundfont", "--pitches", "sixty"], ["--pitches"]),
    (["--soundfont", "--velocities", "0"], ["--velocities", "1..127"]),
    (["--soundfont", "/no/such/font.sf2"], ["/no/such/font.sf2", "no such soundfont"]),
    (["FOLDER", "--soundfont"], ["either a folder or --soundfont"]),
    ([], ["give a folder"]),
])
def test_bad_dataset_arguments(tmp_path, args, words):
    (tmp_path / "in").mkdir()
    before = folder_snapshot(tmp_path)
    args = [str(tmp_path / "in") if a == "FOLDER" else a for a in args]
    result = run_cli("dataset", *args, "-o", tmp_path / "data")
    assert_user_error(result, words, tmp_path, before)
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------------------------------------
# The library side: write/read, segments, tf.data


def test_write_dataset_is_atomic_and_round_trips(tmp_path):
    items = [("a", 60, tone(60, 0.5)), ("b", UNPITCHED, noise_burst(0.3, burst=(0.0, 0.3)))]
    out = data.write_dataset(tmp_path / "ds", items, CONFIG, {"files": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    ds = data.Dataset(out)
    memory = data.Dataset.from_items(items, CONFIG)
    assert ds.items == memory.items
    np.testing.assert_allclose(ds.frames, memory.frames, atol=0.05)  # stored as float16 dB
    with pytest.raises(specsynth.OutputError, match="already exists"):
        data.write_dataset(out, items[:1], CONFIG, {})
    assert len(data.Dataset(out).items) == 2


def test_a_folder_that_is_not_a_dataset(tmp_path):
    with pytest.raises(ConfigError, match="specsynth dataset"):
        data.Dataset(tmp_path)
    (tmp_path / "dataset.json").write_text("{oops")
    np.save(tmp_path / "frames.npy", np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="not valid JSON"):
        data.Dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format_version": 9}))
    with pytest.raises(ConfigError, match="unsupported dataset format"):
        data.Dataset(tmp_path)


def test_segment_rows():
    long = np.arange(100 * 3, dtype=np.float32).reshape(100, 3)
    short = np.full((10, 3), 7.0, np.float32)
    short[-1] = 9.0
    rows, owner = model_dataset.segment_rows([len(long), len(short)], 32)
    segs, labels = np.concatenate([long, short])[rows], np.asarray([60, 128])[owner]
    assert segs.shape[1:] == (32, 3) and rows.dtype == np.int32
    n_long = len([s for s in range(0, 100 - 32 + 1, 16)]) + 1  # hop 16, plus one ending at the end
    assert len(segs) == n_long + 1
    assert labels.tolist() == [60] * n_long + [128]
    np.testing.assert_array_equal(segs[0], long[:32])
    np.testing.assert_array_equal(segs[n_long - 1], long[-32:])  # the end is covered
    np.testing.assert_array_equal(segs[-1][:10], short)           # a short item is padded
    assert np.all(segs[-1][10:] == 9.0)                           # by repeating its last frame


def test_tf_dataset_batches():
    n, t, f = 7, 16, CONFIG.n_features
    frames = np.random.default_rng(0).standard_normal((n, t, f)).astype(np.float32)
    pitch = pitch_features(np.arange(60, 60 + n))
    ds = model_dataset.tf_dataset({"frames": frames, "pitch": pitch}, batch_size=3, shuffle=False)
    batches = list(ds.as_numpy_iterator())
    assert [b["frames"].shape for b in batches] == [(3, t, f), (3, t, f), (1, t, f)]
    p = PITCH_FEATURES
    assert [b["pitch"].shape for b in batches] == [(3, p), (3, p), (1, p)]
    np.testing.assert_array_equal(np.concatenate([b["frames"] for b in batches]), frames)
    ds = model_dataset.tf_dataset({"frames": frames, "pitch": pitch}, batch_size=3, seed=1)
    shuffled = list(ds.as_numpy_iterator())
    got = np.concatenate([b["frames"] for b in shuffled])
    assert not np.array_equal(got, frames)  # shuffled ...
    order = [int(np.argmin(np.abs(frames - row).sum(axis=(1, 2)))) for row in got]
    assert sorted(order) == list(range(n))  # ... but every item exactly once
    got_pitch = np.concatenate([b["pitch"] for b in shuffled])
    np.testing.assert_array_equal(got_pitch, pitch[order])  # and pairs kept together


def test_tf_dataset_reads_segments_by_row_from_one_table():
    rng = np.random.default_rng(0)
    items = [rng.standard_normal((n, 5)).astype(np.float32) for n in (40, 7, 23)]
    rows, owner = model_dataset.segment_rows([len(f) for f in items], 16)
    assert rows.dtype == np.int32 and owner.tolist() == [0, 0, 0, 0, 1, 2, 2]  # starts 0, 8, 16, 24 | 0 | 0, 7
    table = np.concatenate(items)
    segs, labels = table[rows], np.asarray([60, 61, 62])[owner]
    ds = model_dataset.tf_dataset({"frames": rows, "pitch": labels}, batch_size=3, shuffle=False,
                                  rows=(table, 1.0, 0.5))
    batches = list(ds.as_numpy_iterator())
    assert [b["frames"].shape for b in batches] == [(3, 16, 5), (3, 16, 5), (1, 16, 5)]
    np.testing.assert_allclose(np.concatenate([b["frames"] for b in batches]), 2 * (segs - 1), rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b["pitch"] for b in batches]), labels)
    shuffled = np.concatenate([b["frames"] for b in model_dataset.tf_dataset(
        {"frames": rows, "pitch": labels}, batch_size=3, seed=1, rows=(table, 0.0, 1.0)).as_numpy_iterator()])
    assert sorted(map(bytes, shuffled)) == sorted(map(bytes, segs))  # every segment once, rows kept together


def test_tf_dataset_interleaves_parts_of_different_lengths():
    rng = np.random.default_rng(0)
    long = {"z": rng.standard_normal((10, 9, 2)).astype(np.float32), "id": np.arange(10)}
    short = {"z": rng.standard_normal((7, 5, 2)).astype(np.float32), "id": np.arange(10, 17)}
    ordered = list(model_dataset.tf_dataset([long, short], batch_size=4, shuffle=False).as_numpy_iterator())
    assert [b["z"].shape for b in ordered] == [(4, 9, 2), (4, 9, 2), (2, 9, 2), (4, 5, 2), (3, 5, 2)]
    ds = model_dataset.tf_dataset([long, short], batch_size=4, seed=3)
    epochs = [list(ds.as_numpy_iterator()) for _ in range(4)]
    for batches in epochs:
        ids = np.concatenate([b["id"] for b in batches])
        assert sorted(ids) == list(range(17))  # every window once per epoch, each batch one length
        assert all(np.all((b["id"] < 10) == (b["z"].shape[1] == 9)) for b in batches)
        for b in batches:  # rows kept with their ids
            np.testing.assert_array_equal(b["z"], [long["z"][i] if i < 10 else short["z"][i - 10] for i in b["id"]])
    # the two kinds are mixed through each epoch, not one after the other, and differ between epochs
    kinds = [tuple(b["z"].shape[1] for b in batches) for batches in epochs]
    assert len(set(kinds)) > 1 and any(k != tuple(sorted(k, reverse=True)) for k in kinds)


# ---------------------------------------------------------------------------------------------
# Pitch helpers


@pytest.mark.parametrize("name, pitch", [
    ("cello_60.wav", 60), ("guitar-062-100.wav", 62), ("sub/dir/flute_72.flac", 72),
    ("bass_synthetic_033-022-050.wav", 22),  # NSynth: instrument 033, pitch 022, velocity 050
    ("kick.wav", None), ("take2.wav", None), ("pad_200.wav", None), ("noise_.wav", None), ("60.wav", None),
])
def test_pitch_from_name(name, pitch):
    assert pitch_from_name(name) == pitch


@pytest.mark.parametrize("good, value", [(60, 60), (0, 0), (127, 127), (128, 128), (60.0, 60), ("60", 60),
                                         (np.int64(61), 61)])
def test_check_pitch_accepts(good, value):
    assert check_pitch(good) == value and isinstance(check_pitch(good), int)


@pytest.mark.parametrize("bad", [129, -1, 60.5, "x", None, True, "60.5"])
def test_check_pitch_rejects(bad):
    with pytest.raises(ConfigError, match="0..127"):
        check_pitch(bad)


def test_pitch_features_differ_across_pitches():
    table = pitch_features(np.arange(129))
    # layout: unpitched flag, midi / 127, two periodic features
    assert table.shape == (129, PITCH_FEATURES) and table.dtype == np.float32
    assert len({row.tobytes() for row in table}) == 129  # every label has its own row
    assert np.all(table[:128, 0] == 0) and table[UNPITCHED, 0] == 1
    np.testing.assert_allclose(table[:128, 1] * 127, np.arange(128), atol=1e-4)  # the decoder reads f0 here
    assert np.all(table[UNPITCHED, 1:] == 0)
    # the smooth features move steadily with pitch (neighbours closer than an octave apart)
    smooth = table[:128, 1:]
    assert np.all(np.linalg.norm(np.diff(smooth, axis=0), axis=1) < np.linalg.norm(smooth[60] - smooth[72]))
    np.testing.assert_array_equal(pitch_features(60), table[60])
    assert pitch_features(np.array([[48, 60], [72, 128]])).shape == (2, 2, PITCH_FEATURES)
