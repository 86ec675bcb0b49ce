"""The sample packs' split and listing, on made-up paths and tiny WAVs: no Debian package needed."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specsynth.errors import ConfigError
from specsynth.model import packs


def fake_files():
    """About 600 entries under the packs' usual roots (no file exists); every held-out category is there,
    and so is sonic-pi's loop_tabla."""
    files = []
    root = {pack: info["roots"][0] for pack, info in packs.PACKS.items()}
    for pack, cats in (("sonic-pi-samples", ("ambi", "bass", "loop", "tabla")),
                       ("lmms-common", ("drums", "effects", "instruments")),
                       ("hydrogen-drumkits", ("circAfrique v4", "Audiophob"))):
        for cat in cats:
            for k in range(600 // 9):
                rel = f"{cat}_{k:03d}.flac" if pack == "sonic-pi-samples" else f"{cat}/hit{k:03d}.ogg"
                files.append({"path": root[pack] / rel, "pack": pack, "category": cat})
    files.append({"path": root["sonic-pi-samples"] / "loop_tabla.flac",
                  "pack": "sonic-pi-samples", "category": "loop"})
    return files


def keys(entries):
    return [(e["pack"], str(e["path"])) for e in entries]


def test_heldout_categories_never_train():
    train, heldout_files, heldout_cats = packs.split(fake_files())
    held = set(packs.HELDOUT_CATEGORIES)
    assert not any((e["pack"], e["category"]) in held for e in train + heldout_files)
    assert {(e["pack"], e["category"]) for e in heldout_cats} == held | {("sonic-pi-samples", "loop")}
    assert all("tabla" not in e["path"].name for e in train + heldout_files)


def test_split_is_stable_under_reordering_and_covers_every_file():
    files = fake_files()
    first = packs.split(files)
    shuffled = files[:]
    random.Random(0).shuffle(shuffled)
    assert [keys(part) for part in packs.split(shuffled)] == [keys(part) for part in first]
    assert sorted(k for part in first for k in keys(part)) == sorted(keys(files))


def test_about_a_tenth_of_the_other_files_are_held_out():
    train, heldout_files, _ = packs.split(fake_files())
    share = len(heldout_files) / (len(train) + len(heldout_files))
    assert 0.06 < share < 0.14
    train0, heldout0, _ = packs.split(fake_files(), heldout_fraction=0.0)
    assert heldout0 == [] and len(train0) == len(train) + len(heldout_files)
    with pytest.raises(ConfigError):
        packs.split(fake_files(), heldout_fraction=1.5)


def test_hash_uses_the_path_relative_to_its_pack_root(monkeypatch):
    # The same files installed under another root are held out alike (and Python's hash() would not be).
    def split_under(root):
        monkeypatch.setattr(packs, "PACKS", {"lmms-common": {"roots": (Path(root),), "licence": ""}})
        entries = [{"path": Path(root) / "drums" / f"{k}.ogg", "pack": "lmms-common", "category": "drums"}
                   for k in range(200)]
        return [[e["path"].relative_to(root).as_posix() for e in part] for part in packs.split(entries)]

    usual = split_under("/usr/share/lmms/samples")
    assert usual == split_under("/opt/lmms/samples")
    assert 10 <= len(usual[1]) <= 30


def write_wav(path, seconds=0.05, sr=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sr), np.float32), sr)


def test_pack_files_and_missing_packs(monkeypatch, tmp_path):
    sonic, lmms, hydrogen = tmp_path / "sonic", tmp_path / "lmms", tmp_path / "hydrogen"
    monkeypatch.setattr(packs, "PACKS", {
        "sonic-pi-samples": {"roots": (sonic,), "licence": "CC0"},
        "lmms-common": {"roots": (lmms,), "licence": "GPL-2+"},
        "hydrogen-drumkits": {"roots": (hydrogen,), "licence": "per kit"}})
    assert packs.pack_files() == []
    assert packs.missing_packs() == ["sonic-pi-samples", "lmms-common", "hydrogen-drumkits"]

    write_wav(sonic / "bd_boom.wav")
    write_wav(sonic / "tabla_na.wav", seconds=0.1)
    (sonic / "README.md").write_text("not audio")
    (sonic / "broken_file.wav").write_bytes(b"RIFF0000WAVEjunk")
    write_wav(lmms / "drums" / "kick01.wav")
    write_wav(lmms / "waveforms" / "saw.wav")  # single-cycle tables are skipped
    assert packs.missing_packs() == ["hydrogen-drumkits"]
    files = packs.pack_files()
    assert [(f["pack"], f["category"], f["rel"]) for f in files] == [
        ("lmms-common", "drums", "drums/kick01.wav"),
        ("sonic-pi-samples", "bd", "bd_boom.wav"),
        ("sonic-pi-samples", "tabla", "tabla_na.wav")]
    assert files == packs.pack_files()

    write_wav(hydrogen / packs.HYDROGEN_KITS[0] / "kick.wav")
    write_wav(hydrogen / "SomeOtherKit" / "kick.wav")  # not in the chosen subset
    assert packs.missing_packs() == []
    totals = packs.summary(packs.pack_files())
    assert totals["hydrogen-drumkits"]["files"] == 1
    assert totals["sonic-pi-samples"]["categories"]["tabla"] == {"files": 1, "seconds": pytest.approx(0.1)}
    no_seconds = [{k: v for k, v in f.items() if k != "seconds"} for f in packs.pack_files()]
    assert packs.summary(no_seconds) == totals
