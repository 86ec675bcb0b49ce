"""specsynth in the browser: interpolate two sounds, play an NSynth-Super-style XY pad, grow loops.

Start it with ``specsynth app [--model DIR]`` (or ``make app``). The model picker offers the
pretrained bundle and the bundle (or every bundle inside the folder) that ``--model`` names, which
reaches the app as the environment variable ``SPECSYNTH_MODEL``.

The app is a thin layer over :mod:`specsynth.ops`. It stays quick to play because every costly
step is cached by what it depends on: a sound is rendered (library notes) and encoded once per
model; a rendered result is kept per (sounds, position, settings), so moving one control only
re-mixes and decodes that section while the others come straight from the cache (apps/app_cache.py
holds those cached steps; Streamlit puts this folder on the import path).
"""
from __future__ import annotations

import os
import re

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from app_cache import (PAD, corner_thumb, encode, interpolation_strip, keep_compiled_kernels, library_note,
                       load_model, model_identity, read_upload, render_interpolation, render_loop, render_xy,
                       sound_view)
from specsynth import ops, phase, pictures, ui
from specsynth.errors import SpecsynthError
from specsynth.render.job import job_zip
from specsynth.soundfont import GM_PROGRAMS

MODEL_ENV = "SPECSYNTH_MODEL"
PITCH_RANGE = range(24, 97)  # MIDI notes offered for re-pitching (C1..C7)
NO_SOUND = "none (start from silence)"

st.set_page_config(page_title="specsynth", page_icon="🎛️", layout="wide")
# Metric values a size smaller than Streamlit's (2.25rem), so "2036 ms" or "13.2 dB" fits a third of
# the mix column at 1280 px (tests/test_app_browser.py checks nothing is cut short).
st.html("<style>[data-testid='stMetricValue'], [data-testid='stMetricValue'] * {font-size: 1.5rem !important}</style>")


# -- small page pieces ------------------------------------------------------------------------
def slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower()[:40] or "sound"


def export(label, kind, values, key):
    """Render the section's job as `specsynth render` would (same files, same names) on request, and
    offer the zip; it is kept in session state until the job changes."""
    job = (kind, repr(sorted(values.items())), MODEL_KEY, method, n_iter)
    if st.button(f"Render {label}", key=f"{key}_go"):
        try:
            with st.spinner("Rendering…"):
                data = job_zip(kind, values, model, source=source_of, method=method, iters=n_iter)
        except SpecsynthError as exc:
            st.error(str(exc))
            return
        st.session_state[key] = {"job": job, "zip": data}
    done = st.session_state.get(key)
    if done and done["job"] == job:
        st.download_button(f"⬇ Download {values['out']}.zip ({len(done['zip']) / 2**20:.1f} MB)", done["zip"],
                           file_name=f"specsynth-{values['out']}.zip", mime="application/zip", key=f"{key}_dl",
                           on_click="ignore")


def player(view, *, caption=None, loop=False):
    """Audio player (WAV bytes, so the level is the library's, not rescaled) and spectrogram."""
    st.audio(view["wav"], format="audio/wav", loop=loop)
    st.image(view["png"], caption=caption, width="stretch", output_format="PNG")


def download(view, file_name, key):
    st.download_button("⬇ Download WAV", view["wav"], file_name=file_name, mime="audio/wav", key=key,
                       on_click="ignore")


def render_ms(view):
    return f"{view['metrics']['render_ms']:.0f} ms"


# -- the page ---------------------------------------------------------------------------------
st.title("specsynth")

# The model picker: the pretrained bundle, and the bundle (or every bundle in the folder) named by
# SPECSYNTH_MODEL, which `specsynth app --model DIR` sets; that one is picked first.
MODELS = ui.bundle_choices(os.environ.get(MODEL_ENV))
model_name = st.sidebar.selectbox("Model", list(MODELS), index=len(MODELS) - 1 if len(MODELS) == 2 else 0,
                                  key="model", help="The pretrained bundle, or your own: start the app with "
                                                    "`specsynth app --model DIR` (a bundle or a folder of bundles).")
try:
    model = load_model(MODELS[model_name])
except SpecsynthError as exc:
    st.error(f"Cannot load the model: {exc}")
    st.caption("Pick another model, or start the app with `specsynth app --model DIR` "
               "(a bundle folder, or a folder of bundles).")
    st.stop()

keep_compiled_kernels()
MODEL_KEY = model_identity(model)
SR = model.sample_rate
st.caption(f"Model `{model.path.name}` · {SR} Hz · {model.z_dim}-dimensional latents at "
           f"{model.frame_rate:g} frames/s · {model.config.representation} frames")

# Sidebar: how sound is made from the decoder's spectrogram, and the user's own sounds.
with st.sidebar:
    st.header("Synthesis")
    method = st.selectbox("Phase reconstruction", phase.METHODS, index=phase.METHODS.index(phase.DEFAULT_METHOD),
                          key="phase_method",
                          help="How phase is rebuilt from the decoded magnitudes: Griffin-Lim, fast Griffin-Lim, "
                               "LWS, or LWS refined by fast Griffin-Lim (the default: best quality per ms).")
    n_iter = st.slider("Iterations", 0, 200, phase.DEFAULT_ITERS[method], key=f"phase_iters_{method}",
                       help="Projection iterations (for lws: its batch iterations). More is cleaner and slower.")
    mode = st.radio("Mix path", ops.MIX_MODES, index=0, key="mix_mode", horizontal=True,
                    help="linear: weighted sum of latents; slerp: along great circles (keeps the latent norm).")
    st.header("Your sounds")
    uploaded = st.file_uploader(f"Add sounds (up to {ui.MAX_UPLOAD_MB} MB, {ui.MAX_UPLOAD_SECONDS:g} s)",
                                type=list(ui.UPLOAD_TYPES), accept_multiple_files=True, key="uploads",
                                max_upload_size=ui.MAX_UPLOAD_MB)

    st.header("Soundfont notes")
    with st.form("gm_note", border=False):
        gm_program = st.selectbox("Instrument", range(128), index=73, key="gm_program",
                                  format_func=lambda p: f"{p:03d} {GM_PROGRAMS[p]}")
        gm_pitch = st.number_input("MIDI note", 0, 127, 60, key="gm_pitch", help="60 is middle C (C4)")
        gm_seconds = st.slider("Length (s)", 0.5, 8.0, 4.0, 0.5, key="gm_seconds")
        add_note = st.form_submit_button("Add note")

SOUNDS = ui.library()  # sound id -> label; added notes and uploads are added below
if add_note:
    spec = ui.library_id(gm_program, gm_pitch, gm_seconds)
    try:
        library_note(spec, SR)
        st.session_state.setdefault("gm_notes", [])
        if spec not in st.session_state["gm_notes"]:
            st.session_state["gm_notes"].append(spec)
    except SpecsynthError as exc:
        st.sidebar.error(str(exc))
for spec in st.session_state.get("gm_notes", []):
    SOUNDS[spec] = "♪ " + ui.note_label(ui.parse_library_id(spec))
UPLOADS = {}  # sound id -> samples
for f in uploaded or []:
    sid, result = read_upload(f.file_id, f.name, SR, f.getvalue())
    if result.ok:
        UPLOADS[sid] = result.samples
        SOUNDS[sid] = f"⬆ {result.name}"
    else:
        st.sidebar.error(result.error)
if UPLOADS:
    st.sidebar.caption(f"{len(UPLOADS)} sound(s) added to every sound list (marked ⬆).")
SOUND_IDS = list(SOUNDS)
UPLOAD_IDS = list(UPLOADS)


def samples_of(sound_id):
    if sound_id in UPLOADS:
        return UPLOADS[sound_id]
    if ui.parse_library_id(sound_id) is None:
        raise SpecsynthError(f"{SOUNDS.get(sound_id, sound_id)} is no longer available; pick another sound")
    return library_note(sound_id, SR)


def source_of(sound_id):
    note = ui.parse_library_id(sound_id)
    pitch = note.pitch if note else "auto"  # a soundfont note's contour is centred on its note; uploads' as tracked
    return encode(model, MODEL_KEY, sound_id, samples_of(sound_id), pitch)


def pick_sound(label, key, default, *, container=st, options=None):
    """A sound chooser over the library and the uploads; new uploads come first so they are easy to find."""
    options = options or (UPLOAD_IDS + [s for s in SOUND_IDS if s not in UPLOADS])
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]  # its upload was removed: back to the default, not a stale choice
    index = options.index(default) if default in options else 0
    return container.selectbox(label, options, index=index, format_func=lambda s: SOUNDS.get(s, NO_SOUND),
                               key=key)


def show_input(sound_id, caption):
    player(sound_view(model, MODEL_KEY, sound_id, samples_of(sound_id)), caption=caption)


# Each section is a fragment: moving one of its controls reruns only that section (the sidebar and
# uploads rerun everything, since every section depends on them).


@st.fragment
def interpolate_section():
    c1, c2 = st.columns(2)
    a_id = pick_sound("Sound A", "interp_a", ui.library_id(73, 60), container=c1)
    b_id = pick_sound("Sound B", "interp_b", ui.library_id(0, 60), container=c2)
    try:
        src_a, src_b = source_of(a_id), source_of(b_id)
    except SpecsynthError as exc:
        st.error(str(exc))
        return
    col_a, col_mix, col_b = st.columns([1, 1.5, 1])  # room for the mix's three metrics
    with col_a:
        st.markdown(f"**A** · {SOUNDS[a_id]}")
        show_input(a_id, "A (input)")
    with col_b:
        st.markdown(f"**B** · {SOUNDS[b_id]}")
        show_input(b_id, "B (input)")
    with col_mix:
        mix_player(src_a, src_b, a_id, b_id)
    st.image(interpolation_strip(model, MODEL_KEY, src_a, src_b, a_id, b_id, mode), width="stretch",
             caption="A → B: the mix at α 0, 0.25, 0.5, 0.75 and 1", output_format="PNG")
    with st.expander("Export the series (a zip, as `specsynth render` makes it)"):
        steps = st.number_input("Steps", 2, 33, 5, key="export_steps", help="evenly spaced, A and B included")
        export("the series", "interpolate", {"a": a_id, "b": b_id, "steps": int(steps), "mode": mode,
                                             "out": "interpolation"}, "export_interp")


@st.fragment
def mix_player(src_a, src_b, a_id, b_id):
    """The mix slider and what it makes: its own fragment, so a slider step re-renders only the mix
    (A and B, their players and pictures, stay as they are on the page)."""
    alpha = st.slider("A ⟷ B", 0.0, 1.0, 0.5, 0.01, key="interp_mix",
                      help="0 is all A, 1 is all B; in between, a blend of their latent sequences.")
    try:
        view = render_interpolation(model, MODEL_KEY, src_a, src_b, a_id, b_id, float(alpha), mode, method, n_iter)
    except SpecsynthError as exc:
        st.error(str(exc))
        return
    st.markdown(f"**Mix** · {1 - alpha:.0%} A + {alpha:.0%} B")
    player(view, caption=f"mix at {alpha:.2f} (decoded, MIDI {view['pitch']})")
    m1, m2, m3 = st.columns(3)
    m1.metric("Render", render_ms(view), help="mix + decode + phase reconstruction (encodings are cached)")
    m2.metric("To A", f"{view['distances']['to A']:.1f} dB", help="log-mel distance to A; lower is closer")
    m3.metric("To B", f"{view['distances']['to B']:.1f} dB", help="log-mel distance to B; lower is closer")
    download(view, f"specsynth-mix-{slug(SOUNDS[a_id])}-{slug(SOUNDS[b_id])}-{alpha:.2f}.wav", "dl_interp")


def pitch_label(p):
    return "mix (corners' contours blended)" if p == "mix" else f"{ui.midi_name(p)} ({p})"


def take_pad_click():
    """Apply the pad's newest click (or drag's release) to the sliders' values, once: the sliders'
    session state is the one source of truth for the point; the pad only sets it."""
    value = st.session_state.get("xy_pad")
    if isinstance(value, dict) and value.get("unix_time") != st.session_state.get("xy_pad_seen"):
        st.session_state["xy_pad_seen"] = value.get("unix_time")
        point = ui.pad_click(value, PAD)
        if point:
            st.session_state["xy_x"], st.session_state["xy_y"] = point


@st.fragment
def xy_section():
    st.caption("Four corner sounds, like NSynth Super: every point of the pad is a bilinear blend of their "
               "latents, rendered live. Click or drag on the pad (or use the sliders).")
    for key in ("xy_x", "xy_y"):
        st.session_state.setdefault(key, 0.5)
    take_pad_click()
    pad_col, out_col = st.columns([3, 2])
    # ops.xy_weights order: (0,0) bottom-left, (1,0) bottom-right, (0,1) top-left, (1,1) top-right
    names = ("↙ bottom-left", "↘ bottom-right", "↖ top-left", "↗ top-right")
    defaults = [ui.library_id(p, 60) for p in (0, 73, 40, 89)]
    with pad_col:
        top, pad_slot, bottom, sliders = st.columns(2), st.container(), st.columns(2), st.columns(2)
        ids = {k: pick_sound(names[k], f"xy_c{k}", defaults[k], container=(top + bottom)[(k + 2) % 4])
               for k in (2, 3, 0, 1)}
        corner_ids = tuple(ids[k] for k in range(4))
        x = sliders[0].slider("x", 0.0, 1.0, step=0.01, key="xy_x", help="0 is the left edge, 1 the right")
        y = sliders[1].slider("y", 0.0, 1.0, step=0.01, key="xy_y", help="0 is the bottom edge, 1 the top")
        try:
            thumbs = [corner_thumb(model, MODEL_KEY, c, samples_of(c)) for c in corner_ids]
        except SpecsynthError as exc:
            st.error(str(exc))
            return
        with pad_slot:
            streamlit_image_coordinates(pictures.xy_pad_image(x, y, thumbs, [SOUNDS.get(c, c) for c in corner_ids], PAD),
                                        key="xy_pad", width="stretch", click_and_drag=True, cursor="crosshair",
                                        png_compression_level=1)
            st.caption(" · ".join(f"{n.split()[0]} {w:.0%}" for n, w in zip(names, ops.xy_weights(x, y))))
        pitch_choice = st.select_slider("Pitch", options=["mix"] + list(PITCH_RANGE), value="mix", key="xy_pitch",
                                        format_func=pitch_label, help="Play the mixed timbre at another MIDI note.")
    with out_col:
        try:
            corners = [source_of(c) for c in corner_ids]
            pitch = None if pitch_choice == "mix" else int(pitch_choice)
            view = render_xy(model, MODEL_KEY, corners, corner_ids, float(x), float(y), pitch, mode, method, n_iter)
        except SpecsynthError as exc:
            st.error(str(exc))
            return
        st.markdown(f"**Pad** at x={x:.2f}, y={y:.2f}")
        player(view, caption=f"XY mix at ({x:.2f}, {y:.2f})")
        m1, m2 = st.columns(2)
        m1.metric("Render", render_ms(view))
        m2.metric("Pitch", pitch_label(view["pitch"]) if view["pitch"] < 128 else "unpitched",
                  help="the label of the corners' blended contours" if pitch is None else "the pitch picked below the pad")
        download(view, f"specsynth-xy-{x:.2f}-{y:.2f}-{view['pitch']}.wav", "dl_xy")
        with st.expander("Export a grid (a zip with SFZ instruments, as `specsynth render` makes it)"):
            res = st.number_input("Resolution", 2, 9, 3, key="export_resolution", help="points per side")
            notes = st.multiselect("Pitches", list(PITCH_RANGE), [48, 60, 72], key="export_pitches",
                                   format_func=pitch_label, help="one SFZ instrument per point spans these notes")
            export("the grid", "grid", {"corners": list(corner_ids), "resolution": int(res), "mode": mode,
                                        "pitches": sorted(notes) or None, "export": "sfz" if notes else None,
                                        "out": "pad"}, "export_grid")


@st.fragment
def loop_section():
    st.caption("The LSTM prior grows a texture from a seed sound (or from nothing); its end flows back into "
               "its start, so it loops without a click.")
    ctrl, out = st.columns([1, 2])
    with ctrl:
        seed_id = pick_sound("Seed sound", "loop_seed_sound", "none",
                             options=["none"] + UPLOAD_IDS + [s for s in SOUND_IDS if s not in UPLOADS])
        seconds = st.slider("Length (s)", 1.0, 16.0, 4.0, 0.5, key="loop_seconds")
        temperature = st.slider("Temperature", 0.0, 2.0, 0.8, 0.05, key="loop_temperature",
                                help="0 follows the prior's most likely path; higher is wilder.")
        seed = st.number_input("Random seed", 0, 2**31 - 1, 0, 1, key="loop_seed")
    with out:
        try:
            seed_sound = None if seed_id == "none" else source_of(seed_id)
            view = render_loop(model, MODEL_KEY, seed_sound, seed_id, float(seconds), float(temperature), int(seed),
                               method, n_iter)
        except SpecsynthError as exc:
            st.error(str(exc))
            return
        st.markdown(f"**Loop** · {view['seconds']:.1f} s grown from "
                    f"{'silence' if seed_id == 'none' else SOUNDS.get(seed_id, seed_id)}")
        player(view, caption="loop (plays on repeat)", loop=True)
        m1, m2, m3 = st.columns(3)
        m1.metric("Render", render_ms(view))
        m2.metric("Seam flux", f"{view['metrics']['seam_flux']:.2f}",
                  help="spectral change across the wrap point; about the typical change inside means no click")
        m3.metric("Typical flux", f"{view['metrics']['median_flux']:.2f}", help="median spectral change inside")
        download(view, f"specsynth-loop-{slug(SOUNDS.get(seed_id, seed_id))}-{seconds:g}s-t{temperature:.2f}-s{seed}.wav",
                 "dl_loop")
        with st.expander("Export the loop (a zip, as `specsynth render` makes it)"):
            export("the loop", "loop", {"seconds": float(seconds), "temperature": float(temperature), "seed": int(seed),
                                        "seed_sound": None if seed_id == "none" else seed_id, "out": "loop"},
                   "export_loop")


tab_interp, tab_xy, tab_loop = st.tabs(["↔ Interpolate", "✥ XY pad", "∞ Loops"])
with tab_interp:
    interpolate_section()
with tab_xy:
    xy_section()
with tab_loop:
    loop_section()
