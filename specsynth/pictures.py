"""Pictures for user interfaces: spectrograms (with time and frequency axes) and the XY pad.

Drawn with numpy and Pillow only (tick labels in ImageDraw's default font), so the app makes them
on every slider step without a plotting library, and the notebook shows the same pictures.
:mod:`specsynth.ui` re-exports what the app uses.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

# A perceptually ordered dark-to-light map (anchors of matplotlib's "magma"), kept here so the app
# needs no plotting library.
_MAGMA = np.array([[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122],
                   [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191]], np.float32)
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_MAGMA)), _MAGMA[:, c])
                 for c in range(3)], axis=1).astype(np.uint8)

FMIN = 40.0  # lowest frequency shown on the log axis of STFT frames (Hz)
# Margins (pixels) around a spectrogram drawn with axes: frequency labels left, time labels below.
LEFT, BOTTOM, TOP, RIGHT = 34, 14, 5, 10
BACKGROUND, INK = (255, 255, 255), (70, 70, 70)
_FREQ_TICKS = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
_TIME_STEPS = (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _row_positions(config, height, n_bins, fmin=FMIN):
    """The frame row shown at each picture row, and that row's frequency (Hz), both from the bottom
    up: a log axis for STFT frames, the mel bands as they are."""
    if config.representation == "stft":
        nyquist = config.sample_rate / 2
        freqs = np.geomspace(fmin, nyquist, height)
        return freqs / nyquist * (n_bins - 1), freqs
    import librosa

    centres = librosa.mel_frequencies(n_bins + 2, fmin=config.fmin, fmax=config.fmax or config.sample_rate / 2)[1:-1]
    rows = np.linspace(0, n_bins - 1, height)
    return rows, np.interp(rows, np.arange(len(centres)), centres)


def spectrogram_rgb(frames, config, *, height=160, fmin=FMIN, top_db=80.0):
    """dB frames ``[time, F]`` -> an RGB uint8 image ``[height, time, 3]``, low frequencies at the bottom.

    STFT frames are shown on a log-frequency axis (``fmin`` .. Nyquist), which is how pitch and
    timbre read; mel frames are already perceptually spaced and are shown as they are.
    """
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 2 or frames.shape[0] == 0:
        frames = np.full((1, max(1, frames.shape[-1] if frames.ndim else 1)), config.db_floor, np.float32)
    n_bins = frames.shape[1]
    rows = np.round(_row_positions(config, height, n_bins, fmin)[0]).astype(int)
    img = frames[:, np.clip(rows, 0, n_bins - 1)[::-1]].T  # [height, time], highest frequency first
    peak = float(img.max())
    lo = max(peak - top_db, float(config.db_floor))
    scaled = np.clip((img - lo) / max(peak - lo, 1e-6), 0.0, 1.0)
    return _LUT[(scaled * 255).astype(np.uint8)]


def _image(rgb, width=None):
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if width and img.width != width:
        img = img.resize((int(width), img.height), Image.BILINEAR)
    return img


def _png(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # speed over size: these are made while playing
    return buf.getvalue()


def hz_label(f):
    return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"


def _time_step(seconds, width):
    fits = max(1, width // 48)  # a label every 48 px at most
    return next((s for s in _TIME_STEPS if seconds / s <= fits), _TIME_STEPS[-1])


def spectrogram_image(frames, config, *, width=480, height=160, axes=True):
    """A PIL image of :func:`spectrogram_rgb` stretched to ``width`` x ``height``; with ``axes``,
    framed by a frequency axis (Hz, left) and a time axis (s, below), which add margins."""
    from PIL import Image, ImageDraw

    frames = np.asarray(frames, np.float32)
    plot = _image(spectrogram_rgb(frames, config, height=height), width)
    if not axes:
        return plot
    img = Image.new("RGB", (plot.width + LEFT + RIGHT, height + TOP + BOTTOM), BACKGROUND)
    img.paste(plot, (LEFT, TOP))
    draw, font = ImageDraw.Draw(img), _font()
    _, freqs = _row_positions(config, height, frames.shape[-1] if frames.ndim == 2 else config.n_features)
    last = None
    for f in _FREQ_TICKS:
        y = TOP + height - 1 - float(np.interp(f, freqs, np.arange(height)))
        if freqs[0] <= f <= freqs[-1] and (last is None or last - y >= 11):  # labels 11 px apart at least
            draw.line([(LEFT - 3, y), (LEFT - 1, y)], fill=INK)
            label = hz_label(f)
            draw.text((LEFT - 5 - draw.textlength(label, font=font), y - 6), label, fill=INK, font=font)
            last = y
    draw.text((2, TOP + height + 2), "Hz", fill=INK, font=font)  # below the axis, left of "0 s"
    seconds = len(frames) / config.frame_rate if frames.ndim == 2 else 0.0
    if seconds > 0:
        step = _time_step(seconds, plot.width)
        for k in range(int(seconds / step + 1e-9) + 1):
            t = k * step
            x = LEFT + t / seconds * (plot.width - 1)
            draw.line([(x, TOP + height), (x, TOP + height + 2)], fill=INK)
            label = f"{t:g}" + (" s" if k == 0 else "")
            w = draw.textlength(label, font=font)
            draw.text((min(max(x - w / 2, LEFT), img.width - w - 1), TOP + height + 2), label, fill=INK, font=font)
    return img


def spectrogram_png(frames, config, *, width=480, height=160, axes=True):
    """dB frames ``[time, F]`` -> PNG bytes of :func:`spectrogram_image`: a ``width`` x ``height``
    picture, plus the axes' margins when ``axes``."""
    return _png(spectrogram_image(frames, config, width=width, height=height, axes=axes))


def strip_png(frames_list, config, labels, *, width=180, height=90):
    """Several spectrograms side by side, each titled by its label (an interpolation's steps);
    the first carries the axes."""
    from PIL import Image, ImageDraw

    pictures = [spectrogram_image(f, config, width=width, height=height, axes=True) for f in frames_list]
    pictures = [pictures[0]] + [p.crop((LEFT - 4, 0, p.width, p.height)) for p in pictures[1:]]
    img = Image.new("RGB", (sum(p.width for p in pictures), pictures[0].height + 14), BACKGROUND)
    draw, font, x = ImageDraw.Draw(img), _font(), 0
    for picture, label in zip(pictures, labels):
        img.paste(picture, (x, 14))
        left = x + (LEFT if x == 0 else 4)
        draw.text((left + (width - draw.textlength(label, font=font)) / 2, 1), label, fill=INK, font=font)
        x += picture.width
    return _png(img)


# -- the XY pad -------------------------------------------------------------------------------
# Corner colours of the XY pad, in ops.xy_weights order: (0,0), (1,0), (0,1), (1,1).
PAD_COLOURS = np.array([[66, 133, 244], [52, 168, 83], [251, 188, 5], [234, 67, 53]], np.float32)


def xy_pad_rgb(x, y, *, size=180):
    """A picture of the XY pad: corner colours blended bilinearly, a cross-hair at (x, y).

    y grows upwards, as in :func:`specsynth.ops.xy_weights` (corner (0, 1) is top-left).
    """
    u = np.linspace(0.0, 1.0, size)[None, :, None]  # x, left to right
    v = np.linspace(1.0, 0.0, size)[:, None, None]  # y, top to bottom
    c = PAD_COLOURS
    img = ((1 - u) * (1 - v) * c[0] + u * (1 - v) * c[1] + (1 - u) * v * c[2] + u * v * c[3])
    img = 0.55 * img + 0.45 * 255  # pastel, so the cross-hair stands out
    col = int(round(float(x) * (size - 1)))
    row = int(round((1.0 - float(y)) * (size - 1)))
    img[row, :, :] = 90
    img[:, col, :] = 90
    r = max(3, size // 30)
    yy, xx = np.ogrid[:size, :size]
    img[(yy - row) ** 2 + (xx - col) ** 2 <= r * r] = (20, 20, 20)
    return img.astype(np.uint8)


@dataclass(frozen=True)
class PadLayout:
    """Where things are in the pad picture: a column of two corner thumbnails on each side of a
    square pad (``side`` wide), each thumbnail ``thumb`` high with its name above or below."""

    pad: int = 240
    side: int = 120
    thumb: int = 60

    @property
    def size(self):
        return self.side * 2 + self.pad, self.pad

    def point(self, px, py):
        """Pixel (px, py) of the picture -> the pad's (x, y), clamped to [0, 1] (a click on a corner's
        thumbnail goes to that corner) and rounded to the sliders' 0.01 steps. y grows upwards."""
        x = (float(px) - self.side) / (self.pad - 1)
        y = 1.0 - float(py) / (self.pad - 1)
        return tuple(round(min(1.0, max(0.0, v)), 2) for v in (x, y))


def fit_text(text, width, draw, font):
    """``text`` shortened with "…" to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def xy_pad_image(x, y, thumbs, names, layout=PadLayout()):
    """The pad with its four corners around it: a PIL image of :func:`xy_pad_rgb` at (x, y) between
    two columns holding each corner's spectrogram thumbnail (RGB arrays) and name, in
    ops.xy_weights order (bottom-left, bottom-right, top-left, top-right)."""
    from PIL import Image, ImageDraw

    L = layout
    img = Image.new("RGB", L.size, BACKGROUND)
    img.paste(Image.fromarray(xy_pad_rgb(x, y, size=L.pad)), (L.side, 0))
    draw, font = ImageDraw.Draw(img), _font()
    for k, (thumb, name) in enumerate(zip(thumbs, names)):
        right, top = k % 2 == 1, k >= 2
        left = L.side + L.pad + 4 if right else 0
        width = L.side - 4
        ty = 14 if top else L.pad - 14 - L.thumb
        picture = _image(thumb, width).resize((width, L.thumb))
        img.paste(picture, (left, ty))
        colour = tuple(int(c) for c in PAD_COLOURS[k])
        draw.rectangle([left, ty, left + width - 1, ty + L.thumb - 1], outline=colour, width=2)
        label = fit_text(name, width, draw, font)
        draw.text((left, 1 if top else L.pad - 12), label, fill=INK, font=font)
    return img
