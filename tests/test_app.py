"""The Streamlit app, driven in-process with Streamlit's AppTest against the tiny model.

AppTest runs apps/specsynth_app.py like a browser session would (widgets set, script rerun) and
exposes what the page shows. Players and pictures are media URLs named by a hash of their bytes,
so "the audio changed" is "the URL changed". The pure helpers behind the page (the upload
handler, pictures, the pad's clicks) are tested on their own in tests/test_ui.py.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, SR, harmonic_tone
from specsynth import phase, pictures
from specsynth import ui
from test_ui import wav
from tiny_model import tiny_bundle_fixture

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(REPO / "apps" / "specsynth_app.py")
TIMEOUT = 180  # the first run loads TensorFlow and compiles the phase kernels; reruns take well under 1 s

tiny_bundle = tiny_bundle_fixture()


def audio_urls(at):
    return [a.proto.url for a in at.get("audio")]


def image_urls(at):
    return [url for img in at.image for url in img.value]


def metric(at, label):
    return [m.value for m in at.metric if m.label == label]


def pad_picture(at):
    """The pad component's picture (a data URL of the PNG it shows)."""
    import json

    [pad] = [e for e in at.get("component_instance") if e.proto.id.endswith("-xy_pad")]
    return json.loads(pad.proto.json_args)["src"]


def assert_clean(at):
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture
def model_env(tiny_bundle, monkeypatch):
    # AppTest runs the script in this process: the app reads the variable on every run
    monkeypatch.setenv("SPECSYNTH_MODEL", str(tiny_bundle))
    return tiny_bundle


@pytest.fixture
def app(model_env, monkeypatch):
    from specsynth.model._keras import keras

    # the app makes keras.backend.clear_session a no-op in its process (see keep_compiled_kernels);
    # AppTest shares this process with the other tests, so put the real one back afterwards
    monkeypatch.setattr(keras.backend, "clear_session", keras.backend.clear_session)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert_clean(at)
    return at


def test_every_section_renders(app):
    assert [t.label for t in app.tabs] == ["↔ Interpolate", "✥ XY pad", "∞ Loops"]
    # A, B and the mix; the XY pad; the loop: every player is a WAV file
    urls = audio_urls(app)
    assert len(urls) == 5 and all(u.endswith(".wav") for u in urls)
    # spectrograms of A, mix, B, the interpolation strip, the XY mix and the loop
    assert len(image_urls(app)) == 6
    assert pad_picture(app).startswith("data:image/png;base64,")  # the pad: a clickable picture
    assert {b.key for b in app.download_button} == {"dl_interp", "dl_xy", "dl_loop"}
    assert {b.key for b in app.button} >= {"export_interp_go", "export_grid_go", "export_loop_go"}
    assert len(metric(app, "Render")) == 3
    assert metric(app, "To A") and metric(app, "To B")
    sidebar = app.sidebar
    assert sidebar.selectbox(key="phase_method").value == phase.DEFAULT_METHOD
    assert sidebar.slider(key=f"phase_iters_{phase.DEFAULT_METHOD}").value == phase.DEFAULT_ITERS[phase.DEFAULT_METHOD]
    assert sidebar.file_uploader(key="uploads") is not None


def test_interpolate_slider_renders_a_new_mix(app, model_env):
    before_audio, before_images = audio_urls(app), image_urls(app)
    before_distances = metric(app, "To A") + metric(app, "To B")
    app.slider(key="interp_mix").set_value(0.9).run()
    assert_clean(app)
    after_audio, after_images = audio_urls(app), image_urls(app)
    # A and B stay as they were, the mix (player and spectrogram) is new
    assert after_audio[0] == before_audio[0] and after_audio[2] == before_audio[2]
    assert after_audio[1] != before_audio[1]
    assert after_images[1] != before_images[1]
    assert any("10% A + 90% B" in m.value for m in app.markdown)
    # the distances shown are those of the new mix (a tiny model may barely move them)
    assert metric(app, "To A") + metric(app, "To B") == expected_distances(model_env, 0.9)
    assert len(before_distances) == 2
    # a different pair of sounds
    app.selectbox(key="interp_b").set_value(ui.library_id(40, 48)).run()
    assert_clean(app)
    assert audio_urls(app)[2] != after_audio[2] and audio_urls(app)[1] != after_audio[1]


def expected_distances(bundle, alpha):
    """What the Interpolate tab should show at ``alpha`` for its default pair, computed with the library."""
    import specsynth
    from specsynth import metrics, ops
    from specsynth.limits import GMNote
    from specsynth.soundfont import render_gm

    model = specsynth.load(bundle)
    a, b = (render_gm(GMNote(p, 60), SR) for p in (73, 0))
    mix = ops.interpolate(model, ops.encode_sound(model, a, pitch=60), ops.encode_sound(model, b, pitch=60), alpha)
    return [f"{metrics.log_mel_distance(x, mix.samples, SR):.1f} dB" for x in (a, b)]


def test_session_state_drives_the_app(app):
    before = audio_urls(app)[1]
    app.session_state["interp_mix"] = 0.2
    app.run()
    assert_clean(app)
    assert app.slider(key="interp_mix").value == 0.2
    assert audio_urls(app)[1] != before


def test_xy_pad_position_and_pitch(app):
    xy_before = audio_urls(app)[3]
    app.slider(key="xy_x").set_value(1.0)
    app.slider(key="xy_y").set_value(0.0).run()
    assert_clean(app)
    xy_moved = audio_urls(app)[3]
    assert xy_moved != xy_before
    # at (1, 0) the bottom-right corner has all the weight
    assert any("↘ 100%" in c.value for c in app.caption)
    app.select_slider(key="xy_pitch").set_value(72).run()
    assert_clean(app)
    assert metric(app, "Pitch") == ["C5 (72)"]
    assert audio_urls(app)[3] != xy_moved
    # a corner swapped for another sound
    app.selectbox(key="xy_c1").set_value(ui.library_id(33, 48)).run()
    assert_clean(app)


def click(at, x, y, *, scale=1.25, drag_from=None):
    """The pad component's value for a click at the pad's (x, y), the picture shown ``scale`` times
    its size (as the browser sends it: pixels of the shown picture), or a drag released there."""
    layout = pictures.PadLayout()
    w, h = layout.size
    px, py = (layout.side + x * (layout.pad - 1)) * scale, (1 - y) * (layout.pad - 1) * scale
    value = {"x": px, "y": py}
    if drag_from:
        value = {"x1": drag_from[0], "y1": drag_from[1], "x2": px, "y2": py}
    at.session_state["xy_pad"] = {**value, "width": w * scale, "height": h * scale,
                                  "unix_time": at.session_state["xy_pad_seen"] + 1
                                  if "xy_pad_seen" in at.session_state else 1}
    return at.run()


def test_a_pad_click_moves_the_point_and_plays_it(app):
    mix, audio, picture = audio_urls(app)[1], audio_urls(app)[3], pad_picture(app)
    click(app, 0.25, 0.75)
    assert_clean(app)
    # the click set the sliders (one source of truth), the point was drawn there, new audio came
    assert (app.slider(key="xy_x").value, app.slider(key="xy_y").value) == (0.25, 0.75)
    assert any(m.value == "**Pad** at x=0.25, y=0.75" for m in app.markdown)
    assert pad_picture(app) != picture and audio_urls(app)[3] != audio
    # ↖ is (0, 1): y grows upwards
    assert any("↖ 56%" in c.value for c in app.caption), [c.value for c in app.caption]
    # the other sections were not rendered again
    assert audio_urls(app)[1] == mix
    # a slider moves the point; the old click is not applied again
    clicked = pad_picture(app)
    app.slider(key="xy_x").set_value(0.9).run()
    assert_clean(app)
    assert app.slider(key="xy_x").value == 0.9 and app.slider(key="xy_y").value == 0.75
    assert pad_picture(app) != clicked
    # a drag puts the point where the mouse was released; outside the pad it stops at the edge
    click(app, 1.4, 0.1, drag_from=(10, 10))
    assert_clean(app)
    assert (app.slider(key="xy_x").value, app.slider(key="xy_y").value) == (1.0, 0.1)


def test_export_zip_matches_specsynth_render(app, model_env, tmp_path):
    """The XY tab's export: the files `specsynth render` makes for the same grid job."""
    import zipfile

    from specsynth.render import run_manifest

    app.number_input(key="export_resolution").set_value(2)
    app.multiselect(key="export_pitches").set_value([60, 72])
    app.button(key="export_grid_go").click().run()
    assert_clean(app)
    assert [b.label for b in app.download_button if b.key == "export_grid_dl"][0].startswith("⬇ Download pad.zip")
    got = zipfile.ZipFile(io.BytesIO(app.session_state["export_grid"]["zip"]))
    corners = [app.selectbox(key=f"xy_c{k}").value for k in range(4)]
    method = phase.DEFAULT_METHOD
    manifest = tmp_path / "pad.toml"
    manifest.write_text(f'''[defaults]
model = "{model_env}"
method = "{method}"
iters = {phase.DEFAULT_ITERS[method]}

[[job]]
kind = "grid"
corners = {corners!r}
resolution = 2
pitches = [60, 72]
export = "sfz"
out = "pad"
'''.replace("'", '"'))
    assert run_manifest(manifest, outdir=tmp_path / "out") == 0
    made = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
                  if p.is_file() and p.parent != tmp_path / "out")
    assert sorted(got.namelist()) == made and len(made) == 2 * 4 + 4  # 8 samples, 4 instruments
    for name in made:
        if name.endswith(".sfz"):
            assert got.read(name) == (tmp_path / "out" / name).read_bytes()
        else:
            ours, sr = sf.read(io.BytesIO(got.read(name)), dtype="float32")
            theirs, sr2 = sf.read(tmp_path / "out" / name, dtype="float32")
            assert sr == sr2 and ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, atol=1.5 / 32768)


def test_series_and_loop_exports_are_named_as_render_names_them(app):
    import zipfile

    app.number_input(key="export_steps").set_value(3)
    app.button(key="export_interp_go").click().run()
    app.button(key="export_loop_go").click().run()
    assert_clean(app)
    names = {key: zipfile.ZipFile(io.BytesIO(app.session_state[key]["zip"])).namelist()
             for key in ("export_interp", "export_loop")}
    assert names == {"export_interp": [f"interpolation/step_0{i}.wav" for i in range(3)],
                     "export_loop": ["loop.wav"]}
    # a changed job hides the old zip until it is rendered again
    assert "export_loop_dl" in {b.key for b in app.download_button}
    app.slider(key="loop_seconds").set_value(2.0).run()
    assert "export_loop_dl" not in {b.key for b in app.download_button}


def test_loop_controls(app):
    loop_before = audio_urls(app)[4]
    loop_player = app.get("audio")[4].proto
    assert loop_player.loop  # plays on repeat
    app.selectbox(key="loop_seed_sound").set_value(ui.library_id(73, 60))
    app.slider(key="loop_seconds").set_value(2.0)
    app.slider(key="loop_temperature").set_value(1.2)
    app.number_input(key="loop_seed").set_value(3).run()
    assert_clean(app)
    assert audio_urls(app)[4] != loop_before
    assert any(m.value.startswith("**Loop** · 2.0 s grown from Flute") for m in app.markdown)
    assert metric(app, "Seam flux") and metric(app, "Typical flux")


def test_phase_method_in_sidebar(app):
    before = audio_urls(app)
    app.sidebar.selectbox(key="phase_method").set_value("griffinlim").run()
    assert_clean(app)
    assert app.sidebar.slider(key="phase_iters_griffinlim").value == phase.DEFAULT_ITERS["griffinlim"]
    app.sidebar.slider(key="phase_iters_griffinlim").set_value(4).run()
    assert_clean(app)
    after = audio_urls(app)
    # inputs are untouched; every rendered sound is rebuilt with the new phase settings
    assert after[0] == before[0] and after[2] == before[2]
    assert all(after[i] != before[i] for i in (1, 3, 4))


def test_upload_joins_every_sound_list_and_bad_upload_shows_an_error(app):
    tone = wav(harmonic_tone(330.0, seconds=1.0, sr=22050), sr=22050)
    app.file_uploader(key="uploads").set_value([("my tone.wav", tone, "audio/wav"),
                                                ("notes.txt.wav", b"these are not samples", "audio/wav")]).run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and errors[0].startswith("notes.txt.wav: not a readable audio file")
    assert "\n" not in errors[0] and "specsynth-upload-" not in errors[0]
    for key in ("interp_a", "interp_b", "xy_c0", "xy_c3", "loop_seed_sound"):
        assert "⬆ my tone.wav" in app.selectbox(key=key).options
    uploaded = ui.upload_id(tone)
    before = audio_urls(app)
    app.selectbox(key="interp_a").set_value(uploaded).run()
    assert [e.value for e in app.error] == errors and not app.exception
    assert audio_urls(app)[0] != before[0] and audio_urls(app)[1] != before[1]
    # the rest of the app keeps working with the bad file still in the uploader
    app.selectbox(key="loop_seed_sound").set_value(uploaded)
    app.slider(key="xy_x").set_value(0.1).run()
    assert not app.exception and len(audio_urls(app)) == 5
    assert "my tone.wav" in " ".join(m.value for m in app.markdown)
    # removing the uploads puts the widgets that held one back to their defaults
    app.file_uploader(key="uploads").clear().run()
    assert_clean(app)
    assert app.selectbox(key="interp_a").value == ui.library_id(73, 60)
    assert app.selectbox(key="loop_seed_sound").value == "none"
    assert len(audio_urls(app)) == 5


def test_model_picker_offers_pretrained_and_every_bundle_in_the_folder(tiny_bundle, tmp_path, monkeypatch):
    import shutil

    for name in ("alpha", "beta"):
        shutil.copytree(tiny_bundle, tmp_path / "models" / name)
    monkeypatch.setenv("SPECSYNTH_MODEL", str(tmp_path / "models"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    picker = at.sidebar.selectbox(key="model")
    assert picker.options == ["pretrained", "alpha", "beta"]
    picker.set_value("beta").run()
    assert_clean(at)
    assert any("Model `beta`" in c.value for c in at.caption)
    assert audio_urls(at)


def test_soundfont_picker_adds_any_note_to_every_sound_list(app):
    app.sidebar.selectbox(key="gm_program").set_value(40)
    app.sidebar.number_input(key="gm_pitch").set_value(55)
    app.sidebar.slider(key="gm_seconds").set_value(2.0)
    app.sidebar.button[0].click().run()  # the form's "Add note"
    assert_clean(app)
    spec = ui.library_id(40, 55, 2.0)
    for key in ("interp_a", "xy_c1", "loop_seed_sound"):  # AppTest lists the options' labels
        assert "♪ Violin · G3 · 2 s" in app.selectbox(key=key).options
    before = audio_urls(app)
    app.selectbox(key="interp_a").set_value(spec).run()
    assert_clean(app)
    assert audio_urls(app)[0] != before[0]
    assert app.selectbox(key="interp_a").value == spec


def test_an_oga_upload_is_accepted(app):
    buf = io.BytesIO()
    sf.write(buf, harmonic_tone(220.0, 0.5), SR, format="OGG", subtype="VORBIS")
    app.file_uploader(key="uploads").set_value([("tone.oga", buf.getvalue(), "audio/ogg")]).run()
    assert_clean(app)
    assert "⬆ tone.oga" in app.selectbox(key="interp_a").options


def test_bad_model_shows_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSYNTH_MODEL", str(tmp_path / "no-such-bundle"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "no such model bundle" in message and "\n" not in message
    assert not at.get("audio") and not at.slider
    # an incomplete bundle is refused the same way
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    monkeypatch.setenv("SPECSYNTH_MODEL", str(tmp_path / "half"))
    at.run()
    assert not at.exception and len(at.error) == 1 and "incomplete bundle" in at.error[0].value
