"""Training data: `specsynth dataset` from a folder of audio or from soundfont notes, the dataset
folder format (frames on disk, pitch contours), the tf.data pipelines, and the pitch helpers that
label and condition the model."""
from __future__ import annotations

import json

import numpy as np
import pytest

import specsynth
from conftest import SR, assert_user_error, folder_snapshot, harmonic_tone, noise_burst, run_cli, write_wav
from specsynth import ConfigError, data, spectral
from specsynth.model import dataset as model_dataset
from specsynth.pitch import (UNPITCHED, Contour, check_pitch, label_of, midi_to_hz,
                             pitch_from_name)

CONFIG = spectral.MODEL_CONFIG  # what `specsynth dataset` makes
SMALL = specsynth.SpectralConfig()  # 16 kHz: library tests at the test audio's rate


def tone(midi, seconds=1.0, sr=SR):
    return harmonic_tone(float(midi_to_hz(midi)), seconds, sr)


def read_dataset(path):
    """dataset.json and frames.bin read directly, as the format says (float16 little-endian)."""
    meta = json.loads((path / "dataset.json").read_text())
    frames = np.fromfile(path / "frames.bin", dtype="<f2").reshape(meta["frames"]["shape"])
    return meta, frames


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
    assert offset == len(frames) == meta["frames"]["shape"][0]
    contour = np.load(out / "contour.npy")
    assert contour.dtype == np.float32 and contour.shape == (len(frames), 2)  # row for row with the frames
    counts = {item["name"]: item["frames"] for item in meta["items"]}
    one_second = spectral.n_frames(CONFIG.sample_rate, CONFIG)  # resampled to the config's rate
    # silence trimmed: the cello is its 1 s tone (give or take a trimming frame), not 2 s
    assert abs(counts["strings/cello_60.wav"] - one_second) <= 5
    assert counts["deep/er/long.flac#0"] == counts["deep/er/long.flac#1"] == one_second
    assert counts["deep/er/long.flac#2"] < one_second  # the last half second
    assert frames.min() >= CONFIG.db_floor and frames.max() <= 6.0


def test_dataset_folder_loads_and_matches_the_audio(folder_dataset, audio_folder):
    out, _ = folder_dataset
    ds = data.Dataset(out)
    assert ds.config == CONFIG and len(ds.items) == 5
    cello = next(item for item in ds.items if item["name"] == "strings/cello_60.wav")
    frames = ds.item_frames(cello)
    assert frames.dtype == np.float32 and frames.shape == (cello["frames"], CONFIG.n_features)
    # the stored frames are the analysis of the tone (level aside: files are peak-normalised)
    expected = spectral.analyze(tone(60, sr=CONFIG.sample_rate), CONFIG).mean(axis=0)
    got = frames.mean(axis=0)
    assert np.argmax(got) == np.argmax(expected)
    assert np.corrcoef(got, expected)[0, 1] > 0.98
    # its contour: middle C, voiced through the steady part; the noise is unvoiced
    contour = ds.item_contour(cello)
    assert contour.shape == (cello["frames"], 2)
    steady = contour[10:-10]
    assert np.all(steady[:, 1] >= 0.5) and np.all(np.abs(steady[:, 0] - 60) < 0.2)
    noise = next(item for item in ds.items if item["name"] == "noise.ogg")
    assert np.mean(ds.item_contour(noise)[:, 1] >= 0.5) < 0.1


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
    four_seconds = spectral.n_frames(4 * CONFIG.sample_rate, CONFIG)
    assert [item["frames"] for item in meta["items"]] == [four_seconds] * 6
    assert len(frames) == 6 * four_seconds
    # each note is loud somewhere near its fundamental (261.6 Hz is bin ~12.1)
    ds = data.Dataset(out)
    for item in ds.items:
        f0_bin = midi_to_hz(item["pitch"]) * CONFIG.n_fft / CONFIG.sample_rate
        spectrum = ds.item_frames(item)[:60].mean(axis=0)
        assert spectrum[int(f0_bin) - 1 : int(f0_bin) + 3].max() > np.median(spectrum) + 20
        voiced = ds.item_contour(item)[:, 1] >= 0.5  # and its contour sits on the note while it sounds
        assert voiced.mean() > 0.25
        assert abs(np.median(ds.item_contour(item)[voiced, 0]) - item["pitch"]) < 0.5


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
    out = data.write_dataset(tmp_path / "ds", items, SMALL, {"files": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert sorted(p.name for p in out.iterdir()) == ["contour.npy", "dataset.json", "frames.bin"]
    ds = data.Dataset(out)
    memory = data.Dataset.from_items(items, SMALL)
    assert ds.items == memory.items and ds.n_frames == memory.n_frames == sum(i["frames"] for i in ds.items)
    np.testing.assert_allclose(ds.read_rows(0, ds.n_frames), memory.read_rows(0, memory.n_frames),
                               atol=0.05)  # stored as float16 dB
    np.testing.assert_array_equal(ds.contour, memory.contour)
    np.testing.assert_array_equal(ds.read_rows(5, 3), ds.item_frames(ds.items[0])[5:8])
    with pytest.raises(IndexError):
        ds.read_rows(ds.n_frames - 1, 2)
    with pytest.raises(specsynth.OutputError, match="already exists"):
        data.write_dataset(out, items[:1], SMALL, {})
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


def test_format_1_folder_is_refused_in_one_line(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"format_version": 1, "config": SMALL.to_dict(), "items": []}))
    np.save(tmp_path / "frames.npy", np.zeros((2, 3), np.float16))
    with pytest.raises(ConfigError, match="remake it with `specsynth dataset`") as info:
        data.Dataset(tmp_path)
    assert "\n" not in str(info.value) and "format 1" in str(info.value)


def test_truncated_frames_file_is_refused(tmp_path):
    out = data.write_dataset(tmp_path / "ds", [("a", 60, tone(60, 0.3))], SMALL, {})
    (out / "frames.bin").write_bytes((out / "frames.bin").read_bytes()[:-10])
    with pytest.raises(ConfigError, match="does not match"):
        data.Dataset(out)


def _sine(freq, seconds, sr, amplitude=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_contours_are_stored_row_for_row_with_the_frames(tmp_path):
    sr = CONFIG.sample_rate
    gap = np.zeros(int(0.3 * sr), np.float32)
    t = np.arange(sr) / sr
    glide_hz = 220.0 * 2.0 ** (2 * t)  # A3 up two octaves in a second
    items = [
        ("a440", 69, np.concatenate([gap, _sine(440.0, 0.6, sr), gap])),
        ("noise", None, (0.3 * np.random.default_rng(0).standard_normal(sr)).astype(np.float32)),
        ("glide", None, (0.5 * np.sin(2 * np.pi * np.cumsum(glide_hz) / sr)).astype(np.float32)),
        ("click", None, np.ones(100, np.float32)),     # too short for the tracker: unvoiced, no crash
        ("quiet", None, _sine(440.0, 0.5, sr, 1e-6)),  # too quiet: unvoiced
    ]
    ds = data.Dataset(data.write_dataset(tmp_path / "ds", items, CONFIG, {}))
    assert ds.contour.shape == (ds.n_frames, 2) and ds.contour.dtype == np.float32
    by_name = {item["name"]: item for item in ds.items}
    for item, (_, _, x) in zip(ds.items, items):
        assert item["frames"] == spectral.n_frames(len(x), CONFIG) == len(ds.item_contour(item))
    # the sine: f0 ~69 where voiced, voiced only where the frames hold the tone
    a = ds.item_contour(by_name["a440"])
    voiced = a[:, 1] >= 0.5
    loud = ds.item_frames(by_name["a440"]).max(axis=1) > -30
    assert np.all(np.abs(a[voiced, 0] - 69) < 0.1)
    assert np.all(loud[voiced]) and voiced.sum() >= 0.8 * loud.sum()
    assert np.all(a[:5, 1] < 0.5) and np.all(a[-5:, 1] < 0.5)  # the silences either side
    # noise, a click and a whisper are unvoiced and unpitched
    assert np.mean(ds.item_contour(by_name["noise"])[:, 1] >= 0.5) < 0.1
    for name in ("noise", "click", "quiet"):
        assert by_name[name]["pitch"] == UNPITCHED
    assert np.all(ds.item_contour(by_name["click"])[:, 1] == 0) and np.all(ds.item_contour(by_name["quiet"])[:, 1] == 0)
    # the glide rises from about 57 to 81, steadily; its label is its median
    g = ds.item_contour(by_name["glide"])
    gv = g[g[:, 1] >= 0.5, 0]
    assert len(gv) > 0.8 * len(g) and np.all(np.diff(gv) > -0.3)
    assert gv[0] < 59 and gv[-1] > 79
    assert by_name["glide"]["pitch"] == int(np.round(np.median(gv)))
    assert by_name["a440"]["pitch"] == 69  # a given label is kept


def test_label_of_rule():
    n = 100
    voicing = np.zeros(n, np.float32)
    f0 = np.full(n, 50.0, np.float32)
    voicing[:20], f0[:20] = 1.0, np.linspace(60.0, 62.6, 20)  # 20% voiced: pitched, median 61.3
    assert label_of(Contour(f0=f0.copy(), voicing=voicing.copy())) == 61
    voicing[19] = 0.49  # just under 20% voiced (0.5 is the voiced mark)
    assert label_of(Contour(f0=f0, voicing=voicing)) == UNPITCHED
    assert label_of(Contour(f0=np.zeros(0), voicing=np.zeros(0))) == UNPITCHED
    assert label_of(Contour(f0=np.full(10, 130.0), voicing=np.ones(10))) == 127  # clipped to MIDI
    assert label_of(Contour(f0=np.full(10, 68.5), voicing=np.ones(10))) == 68  # rounded (half to even)


def test_items_are_consumed_once_one_at_a_time(tmp_path):
    """write_dataset takes a generator and writes each item before asking for the next."""
    frames_file = None
    seen = []

    def items():
        for i, midi in enumerate((48, 60, 72)):
            if i:  # the item before this one is on disk already
                assert frames_file.stat().st_size == sum(seen) * SMALL.n_features * 2
            x = tone(midi, 0.4)
            seen.append(spectral.n_frames(len(x), SMALL))
            yield f"t{midi}", None, x

    out = tmp_path / "ds"
    gen = items()
    real_folder = data.atomic_folder

    class spy(real_folder):
        def __enter__(self):
            nonlocal frames_file
            tmp = super().__enter__()
            frames_file = tmp / "frames.bin"
            return tmp

    data.atomic_folder = spy
    try:
        data.write_dataset(out, gen, SMALL, {"files": 3})
    finally:
        data.atomic_folder = real_folder
    assert next(gen, None) is None  # consumed
    ds = data.Dataset(out)
    assert [(i["name"], i["pitch"]) for i in ds.items] == [("t48", 48), ("t60", 60), ("t72", 72)]


def test_sources_are_lazy_and_fill_their_summary(tmp_path):
    src = tmp_path / "in"
    write_wav(src / "a.wav", tone(60, 0.5))
    (src / "b.wav").write_text("not audio\n")
    items, summary = data.items_from_folder(src, SMALL)
    assert summary == {"files": 2, "skipped": 0, "skipped_reasons": []}  # nothing read yet
    assert [(name, label) for name, label, _ in items] == [("a.wav", None)]  # auto: from the contour later
    assert summary["skipped"] == 1 and "b.wav" in summary["skipped_reasons"][0]
    empty = tmp_path / "empty"
    empty.mkdir()
    items, _ = data.items_from_folder(empty, SMALL)
    with pytest.raises(specsynth.AudioError, match="no usable audio found"):
        list(items)


def test_frame_stats_equal_numpy(tmp_path, monkeypatch):
    items = [("a", 60, tone(60, 0.7)), ("b", None, noise_burst(0.5, burst=(0.1, 0.4))), ("c", 72, tone(72, 0.3))]
    ds = data.Dataset(data.write_dataset(tmp_path / "ds", items, SMALL, {}))
    monkeypatch.setattr(data, "STATS_ROWS", 7)  # many chunks, some within an item
    for indices in ([0, 1, 2], [2, 0]):
        every = np.concatenate([ds.item_frames(ds.items[i]) for i in indices]).astype(np.float64)
        mean, std = ds.frame_stats(indices)
        assert mean == pytest.approx(every.mean(), abs=1e-9) and std == pytest.approx(every.std(), abs=1e-9)
    memory = data.Dataset.from_items(items, SMALL)
    every = np.concatenate([memory.item_frames(item) for item in memory.items]).astype(np.float64)
    assert memory.frame_stats([0, 1, 2]) == pytest.approx((every.mean(), every.std()))


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory):
    items = [("long", 60, tone(60, 1.2)), ("short", None, tone(67, 0.1)), ("mid", None, noise_burst(0.6))]
    return data.Dataset(data.write_dataset(tmp_path_factory.mktemp("seg") / "ds", items, SMALL, {}))


def _expected_segments(ds, indices, seg_len):
    lengths = [ds.items[i]["frames"] for i in indices]
    owner, start, valid = model_dataset.segment_starts(lengths, seg_len)
    offsets = np.concatenate([[0], np.cumsum(lengths)])[owner] + start
    rows = offsets[:, None] + np.minimum(np.arange(seg_len)[None], valid[:, None] - 1)
    table = np.concatenate([ds.item_frames(ds.items[i]) for i in indices])
    contour = np.concatenate([ds.item_contour(ds.items[i]) for i in indices])
    return table[rows], contour[rows]


def test_segment_dataset_shapes_and_normalisation(seg_data):
    ds, seg_len = seg_data, 16
    frames, contour = _expected_segments(ds, [0, 1, 2], seg_len)
    pipe = model_dataset.segment_dataset(ds, [0, 1, 2], seg_len=seg_len, batch_size=4, offset=-40.0, scale=20.0,
                                         shuffle=False)
    batches = list(pipe.as_numpy_iterator())
    assert len(batches) == pipe.cardinality().numpy() == -(-len(frames) // 4)
    assert all(set(b) == {"frames", "contour"} for b in batches)
    assert [b["frames"].shape for b in batches[:-1]] == [(4, seg_len, SMALL.n_features)] * (len(batches) - 1)
    assert batches[-1]["contour"].shape[1:] == (seg_len, 2) and batches[0]["frames"].dtype == np.float32
    np.testing.assert_allclose(np.concatenate([b["frames"] for b in batches]), (frames + 40.0) / 20.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b["contour"] for b in batches]), contour)
    # shuffled: every segment once, frames kept with their contours, the same order for one seed
    def run(seed):
        got = list(model_dataset.segment_dataset(ds, [0, 1, 2], seg_len=seg_len, batch_size=4, offset=-40.0,
                                                 scale=20.0, seed=seed).as_numpy_iterator())
        return np.concatenate([b["frames"] for b in got]), np.concatenate([b["contour"] for b in got])
    f1, c1 = run(3)
    f2, _ = run(3)
    np.testing.assert_array_equal(f1, f2)
    assert not np.array_equal(f1, (frames + 40.0) / 20.0)
    order = [int(np.argmin(np.abs((frames + 40.0) / 20.0 - row).sum(axis=(1, 2)))) for row in f1]
    assert sorted(order) == list(range(len(frames)))
    np.testing.assert_array_equal(c1, contour[order])
    # a subset of items: only their segments
    sub = list(model_dataset.segment_dataset(ds, [1], seg_len=seg_len, batch_size=4, offset=0.0, scale=1.0,
                                             shuffle=False).as_numpy_iterator())
    np.testing.assert_allclose(sub[0]["frames"], _expected_segments(ds, [1], seg_len)[0], rtol=1e-6)


def test_segment_dataset_gain_augmentation(seg_data):
    ds, seg_len, lo, hi = seg_data, 16, -12.0, 6.0
    frames, _ = _expected_segments(ds, [0, 1, 2], seg_len)
    floor = SMALL.db_floor

    def run(seed):
        pipe = model_dataset.segment_dataset(ds, [0, 1, 2], seg_len=seg_len, batch_size=4, offset=floor, scale=1.0,
                                             shuffle=False, seed=seed, gain_db=(lo, hi))
        return [np.concatenate([b["frames"] for b in pipe.as_numpy_iterator()]) + floor for _ in range(2)]

    epoch1, epoch2 = run(0)
    assert epoch1.min() >= floor - 1e-4  # floored
    gains = []
    for got, want in zip(epoch1, frames):
        above = (want > floor + 20) & (got > floor + 1e-3)  # well above the floor: shifted, not clipped
        if not above.any():  # a silent segment (the noise item's gaps) shows no gain
            continue
        shift = got[above] - want[above]
        assert np.ptp(shift) < 1e-3  # one gain for the whole segment
        gains.append(float(np.median(shift)))
        np.testing.assert_allclose(got, np.maximum(want + gains[-1], floor), atol=1e-3)
    assert lo <= min(gains) and max(gains) <= hi and np.ptp(gains) > 3  # within the range, and varied
    assert not np.array_equal(epoch1, epoch2)  # fresh gains every epoch
    again1, again2 = run(0)
    np.testing.assert_array_equal(epoch1, again1)  # deterministic for a seed
    np.testing.assert_array_equal(epoch2, again2)
    assert not np.array_equal(run(1)[0], epoch1)


def test_segment_starts():
    owner, start, valid = model_dataset.segment_starts([100, 10], 32)
    n_long = len(range(0, 100 - 32 + 1, 16)) + 1  # hop 16, plus one ending at the end
    assert owner.tolist() == [0] * n_long + [1]
    assert start.tolist() == list(range(0, 100 - 32 + 1, 16)) + [100 - 32, 0]  # the end is covered
    assert valid.tolist() == [32] * n_long + [10]  # a short item: its 10 frames, then padding


def test_tf_dataset_batches():
    n, t, f = 7, 16, CONFIG.n_features
    frames = np.random.default_rng(0).standard_normal((n, t, f)).astype(np.float32)
    pitch = np.stack([np.arange(60, 60 + n), np.zeros(n)], axis=1).astype(np.float32)
    ds = model_dataset.tf_dataset({"frames": frames, "pitch": pitch}, batch_size=3, shuffle=False)
    batches = list(ds.as_numpy_iterator())
    assert [b["frames"].shape for b in batches] == [(3, t, f), (3, t, f), (1, t, f)]
    p = 2
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


