"""SFZ export: key ranges that tile the keyboard, the file format, and instruments from `specsynth render`."""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from specsynth import render
from specsynth.errors import ConfigError, OutputError
from specsynth.export import key_ranges, sfz_text, write_sfz
from tiny_model import tiny_bundle_fixture

tiny_bundle = tiny_bundle_fixture()


def parse_sfz(text):
    """Regions of an SFZ file as dicts of opcodes (header lines; `//` comments skipped)."""
    regions, headers = [], []
    for line in text.splitlines():
        line = line.split("//")[0].strip()
        if not line:
            continue
        if line.startswith("<region>"):
            regions.append(dict(tok.split("=", 1) for tok in line[len("<region>"):].split()))
        else:
            headers.append(line)
    assert all(h in ("<group>", "<control>", "<global>") for h in headers), headers
    return regions


def assert_tiles_keyboard(regions):
    """Key ranges cover 0..127 once each, and each holds its own keycenter."""
    covered = []
    for r in regions:
        lo, hi, center = int(r["lokey"]), int(r["hikey"]), int(r["pitch_keycenter"])
        assert lo <= center <= hi, r
        covered.extend(range(lo, hi + 1))
    assert sorted(covered) == list(range(128))


@pytest.mark.parametrize("pitches", [[60], [0, 127], [60, 61], [36, 43, 48, 55, 60, 67], list(range(0, 128, 12))])
def test_key_ranges_tile_the_keyboard_and_split_halfway(pitches):
    ranges = key_ranges(pitches)
    assert ranges[0][0] == 0 and ranges[-1][1] == 127
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:]))
    assert all(lo <= p <= hi for p, (lo, hi) in zip(pitches, ranges))
    for (p, q), (_, hi) in zip(zip(pitches, pitches[1:]), ranges):
        assert hi == (p + q) // 2


@pytest.mark.parametrize("pitches", [[], [60, 60], [61, 60], [-1], [128]])
def test_key_ranges_reject_bad_pitches(pitches):
    with pytest.raises(ConfigError):
        key_ranges(pitches)


def test_write_sfz_is_atomic_sorted_and_uses_forward_slashes(tmp_path):
    path = tmp_path / "inst" / "x.sfz"
    regions = [{"sample": "p072\\a b.wav", "pitch": 72}, {"sample": "p048/a.wav", "pitch": 48}]
    write_sfz(path, regions, comment="two\nlines")
    text = path.read_text()
    assert text.startswith("// two\n// lines\n<group>\n")
    parsed = parse_sfz(text.replace("a b.wav", "a_b.wav"))
    assert [r["sample"] for r in parsed] == ["p048/a.wav", "p072/a_b.wav"]
    assert [r["pitch_keycenter"] for r in parsed] == ["48", "72"]
    assert_tiles_keyboard(parsed)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.sfz"]  # no temporary file left
    with pytest.raises(OutputError):
        write_sfz(path, regions, overwrite=False)
    with pytest.raises(ConfigError):
        sfz_text([{"sample": "../outside.wav", "pitch": 60}])


@pytest.fixture(scope="module")
def instruments(tiny_bundle, tmp_path_factory):
    """A pitch job and a 2x2 grid at two pitches, both exported as SFZ; returns OUTDIR."""
    tmp_path = tmp_path_factory.mktemp("instruments")
    manifest = tmp_path / "m.toml"
    manifest.write_text(f"""
[defaults]
model = "{tiny_bundle}"
method = "griffinlim"
iters = 2

[[job]]
kind = "pitch"
sound = "gm:73:72:1"
pitches = [72, 40, 55, 84]
export = "sfz"
out = "instruments/flute"

[[job]]
kind = "grid"
corners = ["gm:42:48:1", "gm:73:72:1", "gm:0:60:1", "gm:56:60:1"]
resolution = 2
pitches = [50, 62]
export = "sfz"
format = "flac"
out = "pad"
""")
    assert render.run_manifest(manifest) == 0
    return tmp_path / "out"


def test_rendered_instruments_load_their_samples(instruments):
    out = instruments
    sfz = out / "instruments" / "flute" / "flute.sfz"
    regions = parse_sfz(sfz.read_text())
    assert [int(r["pitch_keycenter"]) for r in regions] == [40, 55, 72, 84]
    assert_tiles_keyboard(regions)
    for r in regions:
        sample = sfz.parent / r["sample"]
        assert sample.is_file() and sf.info(str(sample)).frames > 0
        assert r["sample"] == f"note_{int(r['pitch_keycenter']):03d}.wav"
    grid_sfz = sorted((out / "pad").glob("*.sfz"))
    assert [p.name for p in grid_sfz] == ["x0_y0.sfz", "x0_y1.sfz", "x1_y0.sfz", "x1_y1.sfz"]
    for path in grid_sfz:
        regions = parse_sfz(path.read_text())
        assert [int(r["pitch_keycenter"]) for r in regions] == [50, 62]
        assert [r["sample"] for r in regions] == [f"p050/{path.stem}.flac", f"p062/{path.stem}.flac"]
        assert all((path.parent / r["sample"]).is_file() for r in regions)
        assert_tiles_keyboard(regions)
        assert f"x={path.stem[1]} y={path.stem[-1]}" in path.read_text().splitlines()[0]
    assert not list(Path(out).rglob(".*.part"))


def test_sfizz_plays_every_key_with_one_region(instruments):
    pysfizz = pytest.importorskip("pysfizz")  # sfizz's Python bindings, when installed
    for path in [instruments / "instruments" / "flute" / "flute.sfz", *sorted((instruments / "pad").glob("*.sfz"))]:
        synth = pysfizz.Synth(sample_rate=16000)
        assert synth.load_sfz_file(path)
        assert synth.playable_keys == list(range(128))
        assert all(len(synth._synth.get_regions_for_note(k)) == 1 for k in range(128))
